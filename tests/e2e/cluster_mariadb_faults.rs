//! MariaDB cluster mode under the freeze the PostgreSQL and Redis cluster
//! tests stage (issue 27): the leader's agent frozen (SIGSTOP) longer
//! than its lease while its `mariadbd` keeps running. Its watchdog stops
//! that server before the lease can expire, while the agent is still
//! frozen; a replica is promoted and takes writes; no write is
//! acknowledged by two primaries at once; the agent, resumed, records
//! that it lost the lead and its server does not take writes again.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::mariadb::cluster::MariadbCluster;
use watchpost_e2e::splitbrain::mysql::TABLE;

#[test]
fn a_frozen_mariadb_leader_agent_is_fenced_by_its_watchdog_and_a_replica_takes_over() {
    let ha = MariadbCluster::start();
    ha.nodes[0].value(TABLE);
    let writer = ha.writers();
    wait_for("writes acknowledged by the leader", PATIENCE, || {
        (writer.count() >= 20).then_some(())
    });
    let old_pid = ha.nodes[0].pid().expect("node1's mariadbd runs");
    let frozen = Instant::now();
    ha.agents[0].signal(libc::SIGSTOP);
    let new = wait_for("a promotion", Duration::from_secs(60), || {
        ha.records("promoted")
            .into_iter()
            .map(|(i, _)| i)
            .find(|i| *i != 0)
    });
    let took = ha
        .first_write(new, frozen, Duration::from_secs(60))
        .expect("a write on the new primary");
    eprintln!(
        "mariadb cluster, leader's agent frozen: node{} takes writes {took:?} after the SIGSTOP",
        new + 1
    );
    // Fenced while its agent was still frozen.
    let record = ha.agents[0].state_dir().join("cluster-watchdog.json");
    wait_for("the watchdog's record", PATIENCE, || {
        record.exists().then_some(())
    });
    assert_ne!(
        ha.nodes[0].pid(),
        Some(old_pid),
        "node1's mariadbd still runs under a frozen agent: {}",
        std::fs::read_to_string(&record).unwrap_or_default()
    );
    ha.agents[0].signal(libc::SIGCONT);
    let other = if new == 1 { 2 } else { 1 };
    wait_for(
        "the other replica to follow the new leader",
        PATIENCE,
        || ha.is_replica(other).then_some(()),
    );
    // The resumed agent records the stop and brings its server back
    // read-only (a replica of the new leader, or, holding transactions the
    // new leader never received, waiting for a rebuild), the writer still
    // writing to every node.
    wait_for("node1's resumed agent to record the stop", PATIENCE, || {
        ha.records("demoted").into_iter().find(|(i, _)| *i == 0)
    });
    wait_for("node1's server back, read-only", PATIENCE, || {
        (ha.nodes[0]
            .try_execute("SELECT @@global.read_only")
            .ok()?
            .trim()
            == "1")
            .then_some(())
    });
    let before = writer.count_via(&format!("node{}", new + 1));
    wait_for("writes on the new leader", PATIENCE, || {
        (writer.count_via(&format!("node{}", new + 1)) >= before + 10).then_some(())
    });
    assert!(!ha.is_primary(0), "node1 serves as a primary again");
    let report = writer.stop();
    assert_eq!(
        report.overlaps(frozen - Duration::from_secs(5)),
        vec![],
        "two servers acknowledged writes at the same time"
    );
}
