//! Redis cluster mode under the faults the PostgreSQL cluster tests
//! stage (issue 28). The leader's agent frozen (SIGSTOP) longer than its
//! lease while its `redis-server` keeps running: the watchdog stops that
//! server (SIGKILL) before the lease can expire, a replica is promoted,
//! and no write is acknowledged by two primaries at once; the agent,
//! resumed, finds the watchdog's record and its server rejoins as a
//! replica of the new leader. etcd losing one member changes nothing;
//! losing its quorum stops the leader's server within the lease, and
//! nobody is promoted (no one can be sure of anything).

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::redis_ha::{RedisHa, overlaps_between, runs};

#[test]
fn a_frozen_leader_agent_is_fenced_by_its_watchdog_and_a_replica_takes_over() {
    let ha = RedisHa::start();
    let writer = ha.writers();
    let watched = Instant::now();
    wait_for("writes acknowledged by node1", PATIENCE, || {
        (writer.count() > 20).then_some(())
    });
    let old_pid = ha.nodes[0].pid().expect("node1's redis-server runs");
    let frozen = Instant::now();
    ha.agents[0].signal(libc::SIGSTOP);
    let primary = wait_for("a replica promoted", Duration::from_secs(60), || {
        (1..3).find(|i| {
            ha.code(*i, "/v1/role/primary") == 200
                && ha.nodes[*i].role().as_deref() == Some("master")
        })
    });
    let took = ha
        .first_write(primary, frozen, Duration::from_secs(60))
        .expect("a SET on the new primary");
    eprintln!(
        "redis cluster, leader's agent frozen: node{} takes writes {took:?} after the SIGSTOP",
        primary + 1
    );
    // Fenced while its agent was still frozen.
    let record = ha.agents[0].state_dir().join("cluster-watchdog.json");
    wait_for("the watchdog's record", PATIENCE, || {
        record.exists().then_some(())
    });
    // Gone, or a zombie no one reaped yet (its parent is the init
    // process, which may be slow to reap in a container).
    let stat = std::fs::read_to_string(format!("/proc/{old_pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().chars().next());
    assert!(
        matches!(state, None | Some(Some('Z'))),
        "node1's server still runs under a frozen agent ({stat}): {}",
        std::fs::read_to_string(&record).unwrap_or_default()
    );
    ha.agents[0].signal(libc::SIGCONT);
    ha.wait_replicas_of(primary, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(500));
    let acks = writer.stop();
    assert_eq!(
        overlaps_between(&acks, watched, None),
        vec![],
        "writes acknowledged by two primaries; runs (port, writes, first sent ms, last acked ms): {:?}; frozen at {} ms",
        runs(&acks, watched),
        frozen.duration_since(watched).as_millis()
    );
    assert!(
        !ha.records("demoted").iter().all(|(i, _)| *i != 0),
        "node1's resumed agent recorded no stop: {:?}",
        ha.records("demoted")
    );
}

#[test]
fn losing_etcd_quorum_stops_the_redis_leader_and_promotes_nobody() {
    // A lease etcd's own failover fits in on a loaded machine (an etcd
    // Raft election took 2 s in CI, the whole window of the default 3 s
    // lease); the member lost is etcd's Raft leader, the worst case.
    let ttl = Duration::from_secs(6);
    let mut ha = RedisHa::start_with(&format!("ttl = \"{}s\"", ttl.as_secs()));
    ha.etcd.kill_raft_leader();
    std::thread::sleep(ttl * 2);
    assert_eq!(
        ha.code(0, "/v1/role/primary"),
        200,
        "{}",
        ha.agents[0].log()
    );
    assert!(
        ha.records("lost-lease").is_empty(),
        "{:?}",
        ha.records("lost-lease")
    );
    assert!(ha.nodes[0].writable());
    ha.etcd.kill_all();
    let cut = Instant::now();
    wait_for("the leader to stop its server", PATIENCE, || {
        ha.agents[0]
            .audit_of("cluster", "demoted")
            .into_iter()
            .next()
    });
    eprintln!(
        "redis cluster, etcd quorum lost: the leader stopped its server {:?} later",
        cut.elapsed()
    );
    assert!(!ha.nodes[0].writable(), "node1 still takes writes");
    assert_eq!(ha.code(0, "/v1/role/primary"), 503);
    std::thread::sleep(ttl);
    for i in 1..3 {
        assert_eq!(
            ha.nodes[i].role().as_deref(),
            Some("slave"),
            "node{} is no longer a replica:\n{}",
            i + 1,
            ha.agents[i].log()
        );
        assert!(!ha.nodes[i].writable(), "node{} takes writes", i + 1);
    }
}
