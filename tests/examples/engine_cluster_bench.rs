//! The MariaDB and Redis cluster-mode node-loss benchmark, with the peers'
//! clock: three servers, a 3-member etcd and one agent per node with the
//! shipped `[cluster]` defaults (a 3 s lease), started by the harnesses
//! the e2e cluster tests use (`watchpost_e2e::mariadb::cluster`,
//! `watchpost_e2e::redis_ha`). The leader's node is lost (`kill -9` of its
//! agent, then of its server), and the benchmark polls both other nodes
//! every 100 ms with an application's write until one takes it:
//!
//! - MariaDB: an `INSERT` as the application's account (no `SUPER`, so
//!   `read_only` refuses it on a replica);
//! - Redis: a `SET` (a replica refuses it: `replica-read-only`).
//!
//! ```sh
//! cargo run --release -p watchpost-e2e --example engine_cluster_bench -- 3 [mysql|redis]
//! ```
//!
//! The first argument is the number of rounds (default 3); a second one
//! runs only the engines whose benchmark name contains it. Prints one
//! JSON line per round and a summary line per engine; `cargo xtask bench
//! --only mysql-cluster,redis-cluster` runs it.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::mariadb::cluster::MariadbCluster;
use watchpost_e2e::redis_ha::RedisHa;

/// The clock's table, made on the leader before the loss.
const CLOCK: &str = "CREATE TABLE IF NOT EXISTS app.failover_clock (x int)";

/// Poll `writable` on nodes 1 and 2 every 100 ms: the time since `lost`
/// until one of them takes a write.
fn first_write(lost: Instant, writable: impl Fn(usize) -> bool) -> Duration {
    loop {
        for node in 1..3 {
            if writable(node) {
                return lost.elapsed();
            }
        }
        assert!(
            lost.elapsed() < PATIENCE,
            "no node took a write within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mariadb_node_loss() -> Duration {
    let mut ha = MariadbCluster::start();
    ha.nodes[0].value(CLOCK);
    // Both replicas hold the table before the loss (else a refusal would
    // be "no such table", not read_only).
    for i in 1..3 {
        wait_for("the clock's table on the replicas", PATIENCE, || {
            ha.nodes[i]
                .try_execute("SELECT 1 FROM app.failover_clock LIMIT 1")
                .ok()
        });
    }
    ha.agents[0].kill9();
    let lost = Instant::now();
    ha.nodes[0].kill();
    first_write(lost, |i| {
        ha.nodes[i]
            .try_execute_as_app("INSERT INTO app.failover_clock VALUES (1)")
            .is_ok()
    })
}

fn redis_node_loss() -> Duration {
    let mut ha = RedisHa::start();
    ha.agents[0].kill9();
    let lost = Instant::now();
    ha.nodes[0].kill9();
    first_write(lost, |i| ha.nodes[i].writable())
}

fn summary(name: &str, rounds: &[Duration]) -> String {
    let mut ms: Vec<f64> = rounds.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    format!(
        "{{\"benchmark\":\"{name}\",\"rounds\":{},\"median_ms\":{:.0},\"min_ms\":{:.0},\"max_ms\":{:.0}}}",
        ms.len(),
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1]
    )
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("rounds: a number"))
        .unwrap_or(3);
    let only = std::env::args().nth(2).unwrap_or_default();
    type Scenario = (&'static str, fn() -> Duration);
    let scenarios: [Scenario; 2] = [
        ("mysql-cluster-node-loss", mariadb_node_loss),
        ("redis-cluster-node-loss", redis_node_loss),
    ];
    let mut summaries = Vec::new();
    for (name, scenario) in scenarios.into_iter().filter(|(n, _)| n.contains(&only)) {
        let mut taken = Vec::new();
        for round in 0..rounds {
            let took = scenario();
            println!(
                "{{\"benchmark\":\"{name}\",\"round\":{round},\"ms\":{}}}",
                took.as_millis()
            );
            taken.push(took);
        }
        summaries.push(summary(name, &taken));
    }
    for line in summaries {
        println!("{line}");
    }
}
