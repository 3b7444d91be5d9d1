//! Fail closed with real parts (the cluster of `cluster.rs`): a leader
//! whose `postmaster.pid` cannot be used — a second hard link, which the
//! agent's safe reader rightly refuses — still sees its running primary
//! (found in `/proc`), keeps the key and never lets a standby be promoted
//! while its server takes writes. The split-brain detector writes to every
//! server throughout.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::ha::HaCluster;
use watchpost_e2e::splitbrain;

const TTL: Duration = Duration::from_secs(3);
const RESTART_TIMEOUT: Duration = Duration::from_secs(2);

#[test]
fn a_second_hard_link_on_the_leaders_postmaster_pid_never_gives_two_writers() {
    let ha = HaCluster::start("restart_timeout = \"2s\"");
    ha.pg.nodes[0].execute(splitbrain::TABLE);
    std::thread::sleep(Duration::from_millis(500));
    let writer = ha.writers(None);
    wait_for("writes acknowledged", PATIENCE, || {
        (writer.count() >= 20).then_some(())
    });
    let data = ha.pg.nodes[0].data_dir();
    let link = data.parent().unwrap().join("postmaster.pid.second-link");
    std::fs::hard_link(data.join("postmaster.pid"), &link).unwrap();
    let linked = Instant::now();
    // The fault is named.
    let record = wait_for("a record naming the fault", PATIENCE, || {
        ha.agents[0]
            .audit_of("cluster", "failed")
            .into_iter()
            .find(|r| r.to_string().contains("hard link"))
    });
    eprintln!("fail closed: recorded {record}");
    // Well past what released the key before (restart_timeout, then a
    // lease for a standby to take it).
    std::thread::sleep((RESTART_TIMEOUT + TTL) * 3);
    let primary = ha.agents[0].get("/v1/role/primary").map(|(c, _)| c).ok();
    std::fs::remove_file(&link).unwrap();
    let report = writer.stop();
    let overlaps = report.overlaps(linked);
    let port = ha.pg.nodes[0].port();
    let on_leader = report
        .acks
        .iter()
        .filter(|a| a.server == port && a.sent >= linked)
        .count();
    eprintln!(
        "fail closed: {on_leader} writes acknowledged by the leader with its postmaster.pid linked twice, overlaps {overlaps:?}"
    );
    assert!(overlaps.is_empty(), "two writers: {overlaps:?}");
    for i in 1..3 {
        let promoted = ha.agents[i].audit_of("cluster", "promoted");
        assert!(promoted.is_empty(), "node{} promoted: {promoted:?}", i + 1);
    }
    assert!(
        ha.agents[0].audit_of("cluster", "released").is_empty(),
        "{}",
        ha.agents[0].log()
    );
    assert_eq!(primary, Some(200), "{}", ha.agents[0].log());
    assert!(on_leader > 20, "the leader kept taking writes: {on_leader}");
}
