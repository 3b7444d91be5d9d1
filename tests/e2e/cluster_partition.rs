//! Split brain under partitions and freezes, measured: the cluster of
//! `cluster.rs` in network namespaces (`watchpost_e2e::partition`), the
//! shipped 3 s lease, and the split-brain detector writing to every server
//! every 50 ms throughout, from the server's own side of any cut (as a
//! client next to it would). Each test is one episode: the leader cut off
//! for 20 s, a standby cut off, the leader's agent frozen (SIGSTOP) for
//! twice the lease while its server runs, and 500 ms of added round trip
//! between the leader and etcd for 30 s. In every one, no two servers
//! acknowledge writes in overlapping time spans after the fault. The
//! leader cut and the freeze run again with `synchronous = true`: then
//! the cut-off leader acknowledges no write sent after the cut, and no
//! acknowledged write is missing from the new leader.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::partition::NetCluster;
use watchpost_e2e::splitbrain::{self, Report, Writer};

const TTL: Duration = Duration::from_secs(3);

/// A cluster (`extra` in its `[cluster]`) with the detector's table and
/// writers running, acknowledged.
fn start(extra: &str) -> (NetCluster, Writer) {
    let ha = NetCluster::start(extra);
    ha.pg.nodes[0].execute(splitbrain::TABLE);
    // The table reaches the standbys before the writers start.
    std::thread::sleep(Duration::from_millis(500));
    let writer = Writer::start(&ha.writer_targets(), Duration::from_millis(50));
    wait_for("writes acknowledged", PATIENCE, || {
        (writer.count() >= 20).then_some(())
    });
    (ha, writer)
}

/// The acknowledgments of `ha`'s node `i` after `since`: (count, first
/// sent, last acknowledged).
fn acks_of(
    ha: &NetCluster,
    report: &Report,
    i: usize,
    since: Instant,
) -> (usize, Option<Instant>, Option<Instant>) {
    let port = ha.pg.nodes[i].port();
    let mine: Vec<_> = report
        .acks
        .iter()
        .filter(|a| a.server == port && a.sent >= since)
        .collect();
    (
        mine.len(),
        mine.iter().map(|a| a.sent).min(),
        mine.iter().map(|a| a.acked).max(),
    )
}

/// Zero overlapping acknowledged writes after `since`; a summary line.
fn no_overlap(ha: &NetCluster, report: &Report, since: Instant, episode: &str) {
    let overlaps = report.overlaps(since);
    let per_node: Vec<String> = (0..3)
        .map(|i| {
            let (n, _, _) = acks_of(ha, report, i, since);
            format!("node{} {n}", i + 1)
        })
        .collect();
    eprintln!(
        "partition episode `{episode}`: {} writes acknowledged in all, after the fault: {}; overlapping acknowledged writes: {}",
        report.acks.len(),
        per_node.join(", "),
        overlaps.len()
    );
    assert_eq!(
        overlaps,
        vec![],
        "two servers acknowledged writes at once ({episode})"
    );
}

/// With `synchronous = true`: wait until node1 waits for both standbys
/// and etcd's set names just them (no longer node1 itself, with which no
/// standby could be proven to hold every acknowledged write).
fn wait_synchronous(ha: &NetCluster) {
    wait_for(
        "node1 to wait for its synchronous standbys",
        PATIENCE,
        || {
            (ha.pg.nodes[0].value("SHOW synchronous_standby_names")
                == "ANY 1 (\"node2\", \"node3\")")
                .then_some(())
        },
    );
    wait_for(
        "the synchronous set to be the two standbys",
        PATIENCE,
        || {
            let view = ha.agents[0].json("/v1/cluster");
            (view["synchronous"]["members"] == serde_json::json!(["node2", "node3"])).then_some(())
        },
    );
}

/// What `synchronous = true` adds: no acknowledged write is missing from
/// the new leader `new`.
fn none_lost(ha: &NetCluster, report: &Report, new: usize, episode: &str) {
    let missing = report.missing(&splitbrain::present(&ha.dsn(new)));
    eprintln!(
        "{episode} (synchronous): {} writes acknowledged, {} missing from the new leader",
        report.acks.len(),
        missing.len()
    );
    assert_eq!(
        missing,
        Vec::<i64>::new(),
        "acknowledged writes lost ({episode})"
    );
}

#[test]
fn a_cut_off_leader_stops_taking_writes_before_a_standby_is_promoted_and_rejoins_after_healing() {
    leader_cut(false);
}

#[test]
fn with_synchronous_replication_a_cut_off_leader_acknowledges_nothing_and_nothing_is_lost() {
    leader_cut(true);
}

fn leader_cut(synchronous: bool) {
    let (ha, writer) = start(if synchronous {
        "synchronous = true"
    } else {
        ""
    });
    if synchronous {
        wait_synchronous(&ha);
    }
    let cut = Instant::now();
    ha.net.cut(0);
    let new = ha.wait_new_leader(0, PATIENCE);
    let promoted_after = cut.elapsed();
    // The old leader fenced itself (its agent, on its own deadline).
    wait_for("the old leader to record its lost lease", PATIENCE, || {
        ha.agents[0]
            .audit_of("cluster", "lost-lease")
            .into_iter()
            .next()
    });
    wait_for(
        "the old leader to stop saying it is the primary",
        PATIENCE,
        || (ha.code(0, "/v1/role/primary") != 200).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(20).saturating_sub(cut.elapsed()));
    ha.net.heal(0);
    let healed = Instant::now();
    ha.wait_replica(0, Duration::from_secs(90));
    let rejoined_after = healed.elapsed();
    let report = writer.stop();
    let (old_n, _, old_last) = acks_of(&ha, &report, 0, cut);
    let (_, new_first, _) = acks_of(&ha, &report, new, cut);
    let (old_last, new_first) = (
        old_last.unwrap_or(cut),
        new_first.expect("writes on the new leader"),
    );
    assert!(
        old_last < new_first,
        "the old leader acknowledged a write {:?} after the new one took its first",
        old_last - new_first
    );
    eprintln!(
        "leader partition: node{} promoted {promoted_after:?} after the cut; the old leader's last acknowledged write {:?} after the cut ({old_n} after it), {:?} before the new leader's first; rejoined as a standby {rejoined_after:?} after healing",
        new + 1,
        old_last - cut,
        new_first - old_last
    );
    let fenced_by: Vec<String> = ha.agents[0]
        .audit_of("cluster", "demoted")
        .iter()
        .map(|r| r["message"].as_str().unwrap_or("").to_string())
        .collect();
    eprintln!("leader partition: the old leader's stop: {fenced_by:?}");
    no_overlap(&ha, &report, cut, "leader cut off for 20 s");
    if synchronous {
        // A write sent after the cut needs a standby's flush: none can come.
        let port = ha.pg.nodes[0].port();
        let late: Vec<_> = report
            .acks
            .iter()
            .filter(|a| a.server == port && a.sent >= cut + Duration::from_millis(100))
            .collect();
        assert!(late.is_empty(), "the cut-off leader acknowledged {late:?}");
        none_lost(&ha, &report, new, "leader cut off for 20 s");
    } else {
        let present = splitbrain::present(&ha.dsn(new));
        eprintln!(
            "leader partition: acknowledged writes missing from the new leader (asynchronous replication): {}",
            report.missing(&present).len()
        );
    }
}

#[test]
fn a_cut_off_standby_changes_nothing_on_the_leader_and_rejoins() {
    let (ha, writer) = start("");
    let cut = Instant::now();
    ha.net.cut(2);
    std::thread::sleep(TTL * 4);
    assert_eq!(
        ha.code(0, "/v1/role/primary"),
        200,
        "{}",
        ha.agents[0].log()
    );
    ha.net.heal(2);
    ha.wait_replica(2, Duration::from_secs(60));
    let report = writer.stop();
    assert!(
        ha.records("promoted").is_empty(),
        "{:#?}",
        ha.records("promoted")
    );
    assert!(
        ha.records("lost-lease").is_empty(),
        "{:#?}",
        ha.records("lost-lease")
    );
    assert_eq!(ha.leader(), Some(0));
    let gap = report.longest_gap(Some("node1"), cut, Instant::now());
    eprintln!(
        "standby partition: the leader kept its role; longest gap between its acknowledged writes {gap:?}"
    );
    assert!(gap < TTL, "the leader stopped taking writes for {gap:?}");
    no_overlap(&ha, &report, cut, "standby cut off for 12 s");
}

#[test]
fn a_frozen_leader_agent_is_fenced_by_its_watchdog_before_a_standby_takes_over() {
    frozen_leader(false);
}

#[test]
fn with_synchronous_replication_a_frozen_leader_agent_loses_no_acknowledged_write() {
    frozen_leader(true);
}

fn frozen_leader(synchronous: bool) {
    let (ha, writer) = start(if synchronous {
        "synchronous = true"
    } else {
        ""
    });
    if synchronous {
        wait_synchronous(&ha);
    }
    let agent = ha.agents[0].pid() as i32;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(agent, libc::SIGSTOP) };
    let frozen = Instant::now();
    let new = ha.wait_new_leader(0, PATIENCE);
    let promoted_after = frozen.elapsed();
    // The server is down while the agent is still frozen.
    let down = ha.pg.nodes[0].try_value("SELECT 1").is_err();
    std::thread::sleep((TTL * 2).saturating_sub(frozen.elapsed()));
    // SAFETY: as above.
    unsafe { libc::kill(agent, libc::SIGCONT) };
    assert!(down, "the old leader's server still answers");
    let record = ha.agents[0].state_dir().join("cluster-watchdog.json");
    let fenced: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).expect("the watchdog's record"))
            .unwrap();
    assert_eq!(fenced["stopped"], true, "{fenced:#}");
    wait_for(
        "the agent to record what its watchdog did",
        PATIENCE,
        || {
            ha.agents[0]
                .audit_of("cluster", "demoted")
                .into_iter()
                .find(|r| r["message"].as_str().unwrap_or("").contains("watchdog"))
        },
    );
    ha.wait_replica(0, Duration::from_secs(90));
    let report = writer.stop();
    let (_, _, old_last) = acks_of(&ha, &report, 0, frozen);
    let (_, new_first, _) = acks_of(&ha, &report, new, frozen);
    let new_first = new_first.expect("writes on the new leader");
    let old_last = old_last.unwrap_or(frozen);
    assert!(old_last < new_first);
    eprintln!(
        "agent frozen for {:?}: {}; the old server's last acknowledged write {:?} after the freeze, {:?} before node{}'s first (promoted {promoted_after:?} after the freeze)",
        TTL * 2,
        fenced["message"].as_str().unwrap_or(""),
        old_last - frozen,
        new_first - old_last,
        new + 1
    );
    no_overlap(&ha, &report, frozen, "leader's agent frozen for 2 x ttl");
    if synchronous {
        none_lost(&ha, &report, new, "leader's agent frozen for 2 x ttl");
    }
}

#[test]
fn slow_network_between_the_leader_and_etcd_never_gives_two_writers() {
    let (ha, writer) = start("");
    let slow = Instant::now();
    // 250 ms each way: 500 ms more round trip, as `netem delay 500ms` on
    // the leader's interface would add.
    ha.delay_to_etcd(0, Duration::from_millis(250));
    std::thread::sleep(Duration::from_secs(30));
    ha.delay_to_etcd(0, Duration::ZERO);
    let leader = wait_for(
        "one leader after the slow network",
        Duration::from_secs(60),
        || ha.leader(),
    );
    for i in (0..3).filter(|i| *i != leader) {
        ha.wait_replica(i, Duration::from_secs(90));
    }
    let report = writer.stop();
    let promotions = ha.records("promoted").len();
    eprintln!(
        "slow network (+500 ms round trip leader-etcd for 30 s, ttl {TTL:?}): {} (node{} leads after it); lost-lease records {}",
        if promotions == 0 {
            "no failover".to_string()
        } else {
            format!("{promotions} failover(s)")
        },
        leader + 1,
        ha.records("lost-lease").len()
    );
    no_overlap(
        &ha,
        &report,
        slow,
        "500 ms more round trip to etcd for 30 s",
    );
}
