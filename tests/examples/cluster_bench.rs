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
//!    from the command to 20 writes on the new leader;
//! 5. rolling restart (`watchpost cluster restart`: every standby, then
//!    the leader by a switchover) under the same writer: the same gap;
//! 6. commit latency on the leader, asynchronous and with `synchronous =
//!    true` (quorum 1 of 2 standbys): the median of 1,000 autocommit
//!    single-row INSERTs, `synchronous_commit = on` in both (the test
//!    servers run with `fsync = off`: the figure is what waiting for a
//!    standby adds, not a disk's flush).
//!
//! ```sh
//! cargo run --release -p watchpost-e2e --example cluster_bench -- 3
//! ```
//!
//! The argument is the number of rounds of each (default 3); a second one
//! runs only the scenarios whose name contains it. Prints one
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
    gap_through_haproxy(&ha, || {
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
    })
}

/// The longest gap between writes acknowledged through HAProxy while
/// `operation` runs, until 20 more writes after it.
fn gap_through_haproxy(ha: &HaCluster, operation: impl FnOnce()) -> Duration {
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
    operation();
    let before = writer.count();
    wait_for("writes after the operation", PATIENCE, || {
        (writer.count() >= before + 20).then_some(())
    });
    let ended = Instant::now();
    let report = writer.stop();
    report.longest_gap(Some("haproxy"), asked, ended)
}

fn rolling_restart() -> Duration {
    let ha = HaCluster::start("");
    gap_through_haproxy(&ha, || {
        let config = ha.config(0);
        let outcome = watchpost_run(["cluster", "restart", "-c", config.to_str().unwrap()]);
        assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    })
}

/// The median time of 1,000 autocommit single-row INSERTs on the leader
/// of a cluster with `extra`, once it waits for `standby_names`.
fn commit_latency(extra: &str, standby_names: &str) -> Duration {
    let ha = HaCluster::start(extra);
    let leader = &ha.pg.nodes[0];
    leader.execute("ALTER SYSTEM SET synchronous_commit = on");
    leader.execute("SELECT pg_reload_conf()");
    wait_for("the leader's synchronous standbys", PATIENCE, || {
        (leader.value("SHOW synchronous_standby_names") == standby_names).then_some(())
    });
    let mut client = postgres::Client::connect(&ha.tcp_dsn(0), postgres::NoTls).expect("connect");
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS commit_clock (id bigint)")
        .expect("create the table");
    let mut took: Vec<Duration> = (0..1000)
        .map(|i| {
            let started = Instant::now();
            client
                .batch_execute(&format!("INSERT INTO commit_clock VALUES ({i})"))
                .expect("insert");
            started.elapsed()
        })
        .collect();
    took.sort();
    took[took.len() / 2]
}

fn commit_async() -> Duration {
    commit_latency("", "")
}

fn commit_synchronous() -> Duration {
    commit_latency("synchronous = true", "ANY 1 (\"node2\", \"node3\")")
}

fn summary(name: &str, rounds: &[Duration]) -> String {
    let mut ms: Vec<f64> = rounds.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    // Commit latencies are fractions of a millisecond.
    let digits = if ms[ms.len() - 1] < 10.0 { 3 } else { 0 };
    format!(
        "{{\"benchmark\":\"{name}\",\"rounds\":{},\"median_ms\":{:.digits$},\"min_ms\":{:.digits$},\"max_ms\":{:.digits$}}}",
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
    let scenarios: [Scenario; 7] = [
        ("cluster-node-loss", node_loss),
        ("cluster-crash-at-once", crash_at_once),
        ("cluster-crash-restart", crash_restart_in_place),
        ("cluster-switchover", switchover),
        ("cluster-rolling-restart", rolling_restart),
        ("cluster-commit-async", commit_async),
        ("cluster-commit-synchronous", commit_synchronous),
    ];
    let mut summaries = Vec::new();
    let only = std::env::args().nth(2).unwrap_or_default();
    for (name, scenario) in scenarios.into_iter().filter(|(n, _)| n.contains(&only)) {
        let mut taken = Vec::new();
        for round in 0..rounds {
            let took = scenario();
            println!(
                "{{\"benchmark\":\"{name}\",\"round\":{round},\"ms\":{:.3}}}",
                took.as_secs_f64() * 1000.0
            );
            taken.push(took);
        }
        summaries.push(summary(name, &taken));
    }
    for line in summaries {
        println!("{line}");
    }
}
