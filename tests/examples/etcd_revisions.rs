//! How fast cluster mode makes etcd's store grow: etcd's revision (the
//! `header.revision` of any answer, one more for every write) read before
//! and after 30 s of a three-node cluster with the shipped `[cluster]`
//! defaults, idle, and then under a steady write load on the leader (an
//! INSERT every 100 ms, so that the leader's optime moves). Each revision
//! stays in etcd's database until it is compacted; at its quota etcd
//! refuses every write (NOSPACE). Patroni is measured the same way by
//! `xtask/peers/patroni_revisions.sh` (0.10 revisions/s for three idle
//! members on 2026-12-06: its leader key renewed every 10 s loop).
//!
//! ```sh
//! cargo run --release -p watchpost-e2e --example etcd_revisions -- 30
//! ```
//!
//! The argument is the length of each window in seconds (default 30).
//! Prints one JSON line per window; `cargo xtask bench` runs it.

use std::time::{Duration, Instant};
use watchpost_e2e::ha::HaCluster;

/// Revisions per second over `window`, while `during` runs every 100 ms.
fn rate(ha: &HaCluster, window: Duration, mut during: impl FnMut()) -> (i64, f64) {
    let first = ha.etcd.revision();
    let start = Instant::now();
    while start.elapsed() < window {
        during();
        std::thread::sleep(Duration::from_millis(100));
    }
    let revisions = ha.etcd.revision() - first;
    (revisions, revisions as f64 / start.elapsed().as_secs_f64())
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let window = Duration::from_secs(seconds);
    let ha = HaCluster::start("");
    // Settle: every member published once, replication streaming.
    std::thread::sleep(Duration::from_secs(5));
    let (idle, idle_rate) = rate(&ha, window, || {});
    println!(
        "{}",
        serde_json::json!({"benchmark": "etcd-revisions-idle", "revisions": idle, "seconds": seconds, "per_second": idle_rate})
    );
    ha.pg.nodes[0].execute("CREATE TABLE load (id serial, at timestamptz default now())");
    let (busy, busy_rate) = rate(&ha, window, || {
        ha.pg.nodes[0].execute("INSERT INTO load DEFAULT VALUES");
    });
    println!(
        "{}",
        serde_json::json!({"benchmark": "etcd-revisions-writes", "revisions": busy, "seconds": seconds, "per_second": busy_rate})
    );
}
