//! Redis cluster mode with real parts: a 3-member etcd, three
//! `redis-server` processes and one agent per server (the harness:
//! [`watchpost_e2e::redis_ha`]). Node loss (agent and server SIGKILLed):
//! one replica is promoted, takes a `SET`, the other replicates from it;
//! the old primary started by hand comes back a read-only replica and
//! follows the new leader once its agent runs. A planned switchover: the
//! new leader is writable, the old one replicates from it; also from a
//! primary with no write since its replicas attached (its stream ends at
//! offset 0), whose successor's term then survives an agent restart. In
//! both, a writer on every server sees no write acknowledged by two
//! primaries.
//! A crash of the leader's `redis-server` alone after a switchover (its
//! agent alive, no persistence): no acknowledged write is lost, never a
//! full resync from a stale or empty node; `CONFIG REWRITE` on the leader
//! does not leave its file starting a primary.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::redis_ha::{RedisHa, overlaps, overlaps_between, runs};

/// The Redis key holding the term (`watchpost::cluster::redis::info`).
const TERM_KEY: &str = "watchpost:cluster:term";

/// The members that promoted after node1's loss (not node1's bootstrap).
fn promoted_after_loss(ha: &RedisHa) -> Vec<usize> {
    ha.records("promoted")
        .into_iter()
        .map(|(i, _)| i)
        .filter(|i| *i != 0)
        .collect()
}

#[test]
fn redis_node_loss_promotes_one_replica_and_the_old_primary_returns_as_a_replica() {
    let mut ha = RedisHa::start();
    assert_eq!(
        ha.nodes[0].cli(&["SET", "before_loss", "1"]).as_deref(),
        Some("OK")
    );
    for i in 1..3 {
        wait_for("the replicas to hold the write", PATIENCE, || {
            (ha.nodes[i].cli(&["GET", "before_loss"]).as_deref() == Some("1")).then_some(())
        });
    }
    let writer = ha.writers();
    let watched = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    // The node is lost: its agent and its server die together.
    ha.agents[0].kill9();
    let lost = Instant::now();
    ha.nodes[0].kill9();
    let new = wait_for("a promotion", PATIENCE, || {
        promoted_after_loss(&ha).into_iter().next()
    });
    let took = ha
        .first_write(new, lost, PATIENCE)
        .expect("a SET on the new primary");
    eprintln!(
        "redis cluster node loss: first SET accepted on node{} {took:?} after the SIGKILL",
        new + 1
    );
    let other = if new == 1 { 2 } else { 1 };
    let new_port = ha.nodes[new].port;
    wait_for(
        "the other replica to follow the new leader",
        PATIENCE,
        || ha.nodes[other].replicates_from(new_port).then_some(()),
    );
    ha.wait_code(other, "/v1/role/replica", 200);
    ha.wait_code(new, "/v1/role/primary", 200);
    assert_eq!(ha.code(other, "/v1/role/primary"), 503);
    assert!(!ha.nodes[other].writable(), "two primaries");
    assert_eq!(
        promoted_after_loss(&ha),
        vec![new],
        "{:#?}",
        ha.records("promoted")
    );
    assert_eq!(
        ha.nodes[new].cli(&["GET", "before_loss"]).as_deref(),
        Some("1")
    );

    // Started by hand with its agent dead (once the watchdog it left has
    // fired): it comes back a read-only replica (its own config says
    // `replicaof`), not a second primary.
    ha.agents[0].wait_watchdog_fired();
    ha.nodes[0].start_by_hand();
    assert_eq!(ha.nodes[0].role().as_deref(), Some("slave"));
    assert!(
        !ha.nodes[0].writable(),
        "the old primary came back writable"
    );
    // Its agent starts: it follows the new leader.
    ha.agents[0].spawn();
    wait_for(
        "the old primary to replicate from the new leader",
        Duration::from_secs(60),
        || ha.nodes[0].replicates_from(new_port).then_some(()),
    );
    ha.wait_code(0, "/v1/role/replica", 200);
    wait_for(
        "the old primary to hold the new leader's data",
        PATIENCE,
        || (ha.nodes[0].cli(&["GET", "before_loss"]).as_deref() == Some("1")).then_some(()),
    );
    let acks = writer.stop();
    assert!(
        acks.iter().any(|a| a.port == new_port && a.acked > lost),
        "no write acknowledged by the new primary"
    );
    assert_eq!(
        overlaps(&acks, watched),
        vec![],
        "writes acknowledged by two primaries; runs (port, writes, first sent ms, last acked ms): {:?}",
        runs(&acks, watched)
    );
    assert_eq!(
        ha.nodes
            .iter()
            .filter(|n| n.role().as_deref() == Some("master"))
            .count(),
        1
    );
}

#[test]
fn a_redis_switchover_makes_the_target_writable_and_the_old_leader_its_replica() {
    let ha = RedisHa::start();
    let writer = ha.writers();
    let watched = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let config = ha.agents[0].config_path();
    let asked = Instant::now();
    let outcome = watchpost_e2e::cli::watchpost_run([
        "cluster",
        "switchover",
        "-c",
        config.to_str().unwrap(),
        "--to",
        "node2",
    ]);
    assert_eq!(
        outcome.code,
        0,
        "{}\n{}\n{}",
        outcome.all_output(),
        ha.agents[0].log(),
        ha.agents[1].log()
    );
    ha.wait_code(1, "/v1/role/primary", 200);
    let took = ha
        .first_write(1, asked, PATIENCE)
        .expect("a SET on the new leader");
    eprintln!("redis cluster switchover: first SET on node2 {took:?} after the request");
    let port = ha.nodes[1].port;
    for i in [0, 2] {
        wait_for(
            "the others to replicate from node2",
            Duration::from_secs(60),
            || ha.nodes[i].replicates_from(port).then_some(()),
        );
        ha.wait_code(i, "/v1/role/replica", 200);
        assert!(!ha.nodes[i].writable(), "node{} still takes writes", i + 1);
    }
    let acks = writer.stop();
    assert!(
        acks.iter().any(|a| a.port == port),
        "node2 acknowledged nothing"
    );
    assert_eq!(
        overlaps(&acks, watched),
        vec![],
        "writes acknowledged by two primaries; runs (port, writes, first sent ms, last acked ms): {:?}",
        runs(&acks, watched)
    );
}

/// Issue 28: a primary that never wrote since its replicas attached ends
/// its stream at offset 0 (Redis counts the offset only once a replica
/// has a backlog to feed; pings, every `repl-ping-replica-period`, are
/// put off here for an hour). The hand-over asks the target to reach 0,
/// which it has: before, it asked for a position past the one before 0,
/// which no replica reaches, and the switchover was abandoned. Then the
/// new leader's agent restarts and its term key is removed: it is written
/// back with the same term (the term is in the server's file, not only in
/// the agent's memory).
#[test]
fn a_switchover_from_a_primary_that_never_wrote_completes() {
    // A 6 s lease: node2's agent is restarted below, and its earlier run's
    // watchdog must not fence before the new run takes over. An idle
    // replica's link is not timed out meanwhile (`repl-timeout`).
    let mut ha = RedisHa::start_configured(
        "ttl = \"6s\"\n",
        "repl-ping-replica-period 3600\nrepl-timeout 7200\n",
    );
    ha.wait_replicas_of(0, Duration::from_secs(60));
    assert_eq!(
        ha.nodes[0].replication("master_repl_offset").as_deref(),
        Some("0"),
        "the idle primary's offset (this test's premise)"
    );
    let before: u64 = ha.nodes[0]
        .cli(&["GET", TERM_KEY])
        .and_then(|t| t.parse().ok())
        .expect("node1's term");
    switchover(&ha, "node2");
    ha.wait_code(1, "/v1/role/primary", 200);
    ha.wait_replicas_of(1, Duration::from_secs(60));
    assert!(ha.nodes[1].writable(), "node2 takes no write");
    assert!(!ha.nodes[0].writable(), "node1 still takes writes");

    // The new leader's term survives its agent's restart: its key,
    // removed while the agent is down (FLUSHALL), is written back with
    // that term by the new run, which has it only from the file's
    // "promoted here" line, so that its replicas stay on its history.
    let term = ha.nodes[1]
        .cli(&["GET", TERM_KEY])
        .expect("node2's term key");
    assert_eq!(term, (before + 1).to_string(), "the switchover's term");
    ha.agents[1].kill9();
    assert_eq!(ha.nodes[1].cli(&["FLUSHALL"]).as_deref(), Some("OK"));
    ha.agents[1].spawn();
    wait_for(
        "the restarted agent to write the term key back",
        PATIENCE,
        || (ha.nodes[1].cli(&["GET", TERM_KEY]).as_deref() == Some(term.as_str())).then_some(()),
    );
}

/// The shipped Redis cluster examples validate (their password files
/// replaced by ones that exist, mode 0600).
#[test]
fn the_shipped_redis_cluster_examples_validate() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let text_of = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, "secret\n").expect("write a password");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    };
    let probe = text_of("probe.password");
    let admin = text_of("admin.password");
    for node in 1..=3 {
        let example = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../examples/cluster/redis-node{node}.toml")),
        )
        .expect("read the example");
        let config = dir.path().join(format!("redis-node{node}.toml"));
        std::fs::write(
            &config,
            example
                .replace("/etc/watchpost/redis-probe.password", &probe)
                .replace("/etc/watchpost/redis-admin.password", &admin),
        )
        .unwrap();
        let outcome =
            watchpost_e2e::cli::watchpost_run(["validate", "-c", config.to_str().unwrap()]);
        assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    }
}

/// Ask the agents (through node1's config) for a switchover to `to`.
fn switchover(ha: &RedisHa, to: &str) {
    let config = ha.agents[0].config_path();
    let outcome = watchpost_e2e::cli::watchpost_run([
        "cluster",
        "switchover",
        "-c",
        config.to_str().unwrap(),
        "--to",
        to,
    ]);
    assert_eq!(
        outcome.code,
        0,
        "{}\n{}\n{}",
        outcome.all_output(),
        ha.agents[0].log(),
        ha.agents[1].log()
    );
}

/// Issue 28 (1, 2): after a switchover to node2 (a promoted server, whose
/// file followed node1 before), `CONFIG REWRITE` on it drops its
/// `replicaof` line: the agent writes it back. Then only node2's
/// `redis-server` is SIGKILLed, its agent alive, a writer on every
/// server. Without persistence it would come back empty: it is not
/// restarted in place nor promoted again (which would make its replicas
/// fully resync to nothing), the key moves to a replica that holds the
/// data, and node2 returns as its replica. Every write any server
/// acknowledged is on the new primary; no two primaries took writes
/// (checked in two windows, as node1 may be the primary twice: an earlier
/// check over one window took that for a split brain).
#[test]
fn a_crash_of_the_leader_s_redis_server_alone_loses_no_acknowledged_write() {
    let ha = RedisHa::start_with("restart_timeout = \"2s\"\n");
    let writer = ha.writers();
    let watched = Instant::now();
    wait_for("writes acknowledged by node1", PATIENCE, || {
        (writer.count() > 20).then_some(())
    });
    switchover(&ha, "node2");
    ha.wait_code(1, "/v1/role/primary", 200);
    let switched = Instant::now();
    let port = ha.nodes[1].port;
    ha.wait_replicas_of(1, Duration::from_secs(60));
    // The promoted server's file follows nobody; CONFIG REWRITE on the
    // primary drops the line, and the agent's loop puts it back.
    assert_eq!(
        ha.nodes[1].cli(&["CONFIG", "REWRITE"]).as_deref(),
        Some("OK")
    );
    wait_for("the agent to write replicaof back", PATIENCE, || {
        let text = std::fs::read_to_string(ha.nodes[1].conf()).ok()?;
        (text.contains("\nreplicaof 127.0.0.1 1\n")
            && text.contains("# watchpost: promoted here at term "))
        .then_some(())
    });

    let before = writer.count();
    wait_for("writes acknowledged by node2", PATIENCE, || {
        (writer.count() > before + 50).then_some(())
    });
    let crashed = Instant::now();
    ha.nodes[1].kill9();
    let primary = wait_for(
        "a primary taking writes again",
        Duration::from_secs(90),
        || {
            (0..3).find(|i| {
                ha.code(*i, "/v1/role/primary") == 200
                    && ha.nodes[*i].role().as_deref() == Some("master")
                    && ha.nodes[*i].pid().is_some()
            })
        },
    );
    let took = ha
        .first_write(primary, crashed, Duration::from_secs(60))
        .expect("a SET on the primary");
    eprintln!(
        "redis cluster, leader's server killed alone: node{} takes writes {took:?} after the SIGKILL",
        primary + 1
    );
    std::thread::sleep(Duration::from_millis(500));
    let acks = writer.stop();
    ha.wait_replicas_of(primary, Duration::from_secs(90));
    let held = ha.nodes[primary].keys("sb:*");
    let lost: Vec<String> = acks
        .iter()
        .map(|a| format!("sb:{}", a.seq))
        .filter(|k| !held.contains(k))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost (first: {:?}); node2's log:\n{}\nagent:\n{}",
        lost.len(),
        acks.len(),
        lost.first(),
        ha.nodes[1].log_tail(),
        ha.agents[1].log()
    );
    assert!(
        acks.iter().any(|a| a.port == port && a.acked < crashed),
        "node2 acknowledged nothing before its crash"
    );
    // Two windows, in each of which a server is the primary at most once:
    // node1 then node2 (the switchover), node2 then the new primary (the
    // crash; node1 may be the primary again).
    for (from, until) in [(watched, Some(crashed)), (switched, None)] {
        assert_eq!(
            overlaps_between(&acks, from, until),
            vec![],
            "writes acknowledged by two primaries; runs (port, writes, first sent ms, last acked ms): {:?}; switchover done at {} ms, crash at {} ms",
            runs(&acks, watched),
            switched.duration_since(watched).as_millis(),
            crashed.duration_since(watched).as_millis()
        );
    }
    for i in (0..3).filter(|i| *i != primary) {
        wait_for("the replicas to hold the primary's data", PATIENCE, || {
            (ha.nodes[i].keys("sb:*").len() >= held.len()).then_some(())
        });
    }
    assert_eq!(
        ha.nodes
            .iter()
            .filter(|n| n.role().as_deref() == Some("master"))
            .count(),
        1
    );
}
