//! The cluster-mode failover benchmark, with the peers' clock
//! (`../shared/peers`): three PostgreSQL nodes, a 3-member etcd and one
//! agent per node with the shipped `[cluster]` defaults (a 3 s lease); the
//! time from the failure to the first successful `CREATE TABLE ...;
//! INSERT` on the new primary, polled every 100 ms.
//!
//! 1. node loss: `kill -9` of the leader's agent, then `pg_ctl stop -m
//!    immediate` of its server;
//! 2. crash, fail over at once (`restart_timeout = "0s"`): the leader's
//!    server stopped (immediate), its agent alive;
//! 3. crash, restart in place (the default): the same, until the same node
//!    takes a write again;
//! 4. planned switchover (`watchpost cluster switchover --to node2`) under
//!    a writer every 50 ms through HAProxy routing on the role endpoints:
//!    the longest time the client went without an acknowledged write,
//!    from the command to 20 writes on the new leader.
//!
//! ```sh
//! cargo run --release -p watchpost-e2e --example cluster_bench -- 3
//! ```
//!
//! The argument is the number of rounds of each (default 3). Prints one
//! JSON line per round and a summary line per scenario; `cargo xtask
//! bench` runs it.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::cli::watchpost_run;
use watchpost_e2e::ha::HaCluster;
use watchpost_e2e::haproxy::HaProxy;
use watchpost_e2e::pg::SUPERUSER;
use watchpost_e2e::splitbrain::{self, Writer};

/// Poll the standbys until one takes a write: the time since `since`.
fn first_write_on_a_standby(ha: &HaCluster, since: Instant) -> Duration {
    loop {
        for node in 1..3 {
            let ok = ha.pg.nodes[node]
                .try_value("CREATE TABLE IF NOT EXISTS failover_clock (x int); INSERT INTO failover_clock VALUES (1); SELECT 1")
                .is_ok();
            if ok {
                return since.elapsed();
            }
        }
        assert!(since.elapsed() < PATIENCE, "no standby took a write");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn node_loss() -> Duration {
    let mut ha = HaCluster::start("");
    ha.agents[0].kill9();
    let lost = Instant::now();
    ha.pg.nodes[0].kill();
    first_write_on_a_standby(&ha, lost)
}

fn crash_at_once() -> Duration {
    let mut ha = HaCluster::start("restart_timeout = \"0s\"");
    let crashed = Instant::now();
    ha.pg.nodes[0].kill();
    first_write_on_a_standby(&ha, crashed)
}

fn crash_restart_in_place() -> Duration {
    let mut ha = HaCluster::start("");
    let crashed = Instant::now();
    ha.pg.nodes[0].kill();
    ha.first_write(0, crashed, PATIENCE)
        .expect("the leader's server back and writable")
}

fn switchover() -> Duration {
    let ha = HaCluster::start("");
    ha.pg.nodes[0].execute(splitbrain::TABLE);
    let proxy = HaProxy::start(&ha.backends());
    let writer = Writer::start(
        &[("haproxy".to_string(), proxy.dsn(SUPERUSER))],
        Duration::from_millis(50),
    );
    wait_for("writes through HAProxy", PATIENCE, || {
        (writer.count() >= 20).then_some(())
    });
    let asked = Instant::now();
    let config = ha.config(0);
    let outcome = watchpost_run([
        "cluster",
        "switchover",
        "--to",
        "node2",
        "-c",
        config.to_str().unwrap(),
    ]);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    ha.wait_leader("node2");
    let before = writer.count();
    wait_for("writes on the new leader", PATIENCE, || {
        (writer.count() >= before + 20).then_some(())
    });
    let ended = Instant::now();
    let report = writer.stop();
    report.longest_gap(Some("haproxy"), asked, ended)
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
    type Scenario = (&'static str, fn() -> Duration);
    let scenarios: [Scenario; 4] = [
        ("cluster-node-loss", node_loss),
        ("cluster-crash-at-once", crash_at_once),
        ("cluster-crash-restart", crash_restart_in_place),
        ("cluster-switchover", switchover),
    ];
    let mut summaries = Vec::new();
    for (name, scenario) in scenarios {
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
