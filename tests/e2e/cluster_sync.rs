//! Quorum synchronous replication kept by the agents (`synchronous = true`)
//! on the loopback cluster of `cluster.rs`: the leader names the standbys
//! in `synchronous_standby_names` and in etcd's `sync` key; with the leader
//! and one of two synchronous standbys lost at once, the survivor is not
//! promoted (it cannot know whether the other held commits it lacks);
//! once the other reports its final position, the more advanced one is,
//! and every acknowledged write is on it.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::ha::HaCluster;
use watchpost_e2e::splitbrain;

const TTL: Duration = Duration::from_secs(3);

/// The synchronous set as agent `i` last read it.
fn set_seen_by(ha: &HaCluster, i: usize) -> Option<Vec<String>> {
    ha.view(i)["synchronous"]["members"].as_array().map(|m| {
        m.iter()
            .filter_map(|n| n.as_str().map(String::from))
            .collect()
    })
}

#[test]
fn a_synchronous_standby_is_promoted_only_when_proven_to_hold_every_acknowledged_write() {
    let mut ha = HaCluster::start("synchronous = true");
    ha.pg.nodes[0].execute(splitbrain::TABLE);
    wait_for("node1 to name both standbys synchronous", PATIENCE, || {
        (ha.pg.nodes[0].value("SHOW synchronous_standby_names") == "ANY 1 (\"node2\", \"node3\")")
            .then_some(())
    });
    wait_for("the set in etcd to be the two standbys", PATIENCE, || {
        (set_seen_by(&ha, 0)? == ["node2", "node3"]).then_some(())
    });
    let writer = ha.writers(None);
    wait_for("writes acknowledged", PATIENCE, || {
        (writer.count() >= 40).then_some(())
    });
    // The leader's node and node3's are lost at once.
    ha.agents[0].kill9();
    ha.agents[2].kill9();
    let lost = Instant::now();
    ha.pg.nodes[0].kill();
    ha.pg.nodes[2].kill();
    let why = wait_for("node2 to say why it does not take over", PATIENCE, || {
        ha.agents[1]
            .audit_of("cluster", "no-candidate")
            .into_iter()
            .find(|r| r["message"].as_str().unwrap_or("").contains("synchronous"))
    });
    eprintln!("cluster synchronous: node2 alone: {}", why["message"]);
    std::thread::sleep(TTL * 2);
    assert!(
        ha.records("promoted").is_empty(),
        "{:#?}",
        ha.records("promoted")
    );
    assert_eq!(ha.pg.nodes[1].value("SELECT pg_is_in_recovery()"), "t");
    // node3 comes back (its server as the standby it was, then its agent):
    // with both final positions known, the more advanced one leads.
    ha.pg.nodes[2].start();
    ha.agents[2].spawn();
    let deadline = Instant::now() + PATIENCE * 2;
    let new = loop {
        if let Some((i, _)) = ha.records("promoted").into_iter().next() {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no promotion once node3 was back: {:#?}\n{:#?}\n{:#}",
            ha.records("no-candidate"),
            ha.records("failed"),
            ha.view(1)["members"]
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = lost.elapsed();
    let report = writer.stop();
    let missing = report.missing(&splitbrain::present(&ha.tcp_dsn(new)));
    eprintln!(
        "cluster synchronous: node{} promoted {took:?} after the loss; {} writes acknowledged, {} missing from it",
        new + 1,
        report.acks.len(),
        missing.len()
    );
    assert_eq!(missing, Vec::<i64>::new(), "acknowledged writes lost");
    // The new leader makes the other its synchronous standby.
    let other = 3 - new;
    let other_name = format!("node{}", other + 1);
    wait_for(
        "the new leader's set to be the other standby",
        PATIENCE,
        || (set_seen_by(&ha, new)? == [other_name.clone()]).then_some(()),
    );
    assert_eq!(
        ha.pg.nodes[new].value("SHOW synchronous_standby_names"),
        format!("ANY 1 (\"{other_name}\")")
    );
    // A write on the new leader is acknowledged (the other streams).
    ha.pg.nodes[new].execute("INSERT INTO sb_writes VALUES (-1, 'after', 0)");
}
