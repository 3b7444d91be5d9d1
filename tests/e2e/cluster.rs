//! Cluster mode with real parts: a 3-member etcd, three PostgreSQL servers
//! (a primary and two streaming standbys) and one agent per server. Node
//! loss, an old primary started by hand, a lagging standby, etcd losing a
//! member and its quorum, freezes that must not fail over, and a crash of
//! the leader's server with its node alive.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::ha::{HaCluster, watchdogs};

const TTL: Duration = Duration::from_secs(3);

#[test]
fn the_shipped_cluster_examples_validate() {
    for node in 1..=3 {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../examples/cluster/node{node}.toml"));
        let outcome = watchpost_e2e::cli::watchpost_run(["validate", "-c", path.to_str().unwrap()]);
        assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    }
}

fn code(ha: &HaCluster, i: usize, path: &str) -> u16 {
    ha.agents[i].get(path).map(|(c, _)| c).unwrap_or(0)
}

/// The index of the member that holds the key, as agent `i` reads it.
fn leader_seen_by(ha: &HaCluster, i: usize) -> Option<String> {
    ha.view(i)["leader"].as_str().map(String::from)
}

#[test]
fn node_loss_promotes_one_standby_and_the_old_primary_never_returns_read_write() {
    let mut ha = HaCluster::start("");
    ha.pg.nodes[0].execute("CREATE TABLE before_loss (id int); INSERT INTO before_loss VALUES (1)");
    std::thread::sleep(Duration::from_secs(1));
    // The node is lost: its agent and its server die together.
    ha.agents[0].kill9();
    let lost = Instant::now();
    ha.pg.nodes[0].kill();
    let new = wait_for("a promotion", PATIENCE, || {
        ha.records("promoted").into_iter().map(|(i, _)| i).next()
    });
    let took = ha
        .first_write(new, lost, PATIENCE)
        .expect("a write on the new primary");
    eprintln!(
        "cluster node loss: write accepted on node{} {took:?} after the loss",
        new + 1
    );
    assert!(took < TTL + Duration::from_secs(4), "{took:?}");
    let other = if new == 1 { 2 } else { 1 };
    wait_for(
        "the other standby to follow the new leader",
        PATIENCE,
        || (code(&ha, other, "/v1/role/replica") == 200).then_some(()),
    );
    assert_eq!(code(&ha, new, "/v1/role/primary"), 200);
    assert_eq!(code(&ha, other, "/v1/role/primary"), 503);
    assert_eq!(
        ha.records("promoted").len(),
        1,
        "{:#?}",
        ha.records("promoted")
    );
    assert_eq!(
        ha.pg.nodes[new].value("SELECT count(*) FROM before_loss"),
        "1"
    );

    // Started by hand with its agent dead (once the watchdog the agent
    // left has fired): it does not take writes.
    ha.agents[0].wait_watchdog_fired();
    if ha.pg.nodes[0].try_start() {
        assert_eq!(
            ha.pg.nodes[0]
                .try_value("SELECT pg_is_in_recovery()")
                .as_deref(),
            Ok("t"),
            "the old primary came back read-write"
        );
        assert!(
            ha.pg.nodes[0]
                .try_value("CREATE TABLE split_brain (x int); SELECT 1")
                .is_err()
        );
    }
    // Its agent starts: it rewinds and streams from the new leader.
    ha.agents[0].spawn();
    wait_for(
        "the old primary to stream from the new leader",
        Duration::from_secs(60),
        || (code(&ha, 0, "/v1/role/replica") == 200).then_some(()),
    );
    assert!(
        !ha.agents[0].audit_of("cluster", "following").is_empty(),
        "{:#?}",
        ha.agents[0].audit()
    );
    assert_eq!(
        leader_seen_by(&ha, 0).as_deref(),
        Some(format!("node{}", new + 1).as_str())
    );
}

#[test]
fn a_former_primary_started_read_write_by_hand_is_demoted_and_rewound() {
    let mut ha = HaCluster::start("");
    ha.agents[0].kill9();
    ha.pg.nodes[0].kill();
    let new = wait_for("a promotion", PATIENCE, || {
        ha.records("promoted").into_iter().map(|(i, _)| i).next()
    });
    if ha.first_write(new, Instant::now(), PATIENCE).is_none() {
        panic!(
            "the new primary takes no writes:\n{}\n{}",
            ha.pg.nodes[new].log_tail(),
            ha.agents[new].log()
        );
    }
    // An operator removes the safety and starts the old primary by hand
    // (once the watchdog its killed agent left has fired, which would stop
    // it): it runs read-write on the old timeline and takes a write there.
    ha.agents[0].wait_watchdog_fired();
    std::fs::remove_file(ha.pg.nodes[0].data_dir().join("standby.signal")).unwrap();
    assert!(ha.pg.nodes[0].try_start(), "{}", ha.pg.nodes[0].log_tail());
    assert_eq!(
        ha.pg.nodes[0]
            .try_value("CREATE TABLE diverged (x int); SELECT 1")
            .as_deref(),
        Ok("1")
    );
    // Its agent starts: it demotes the server and rewinds it.
    ha.agents[0].spawn();
    let deadline = Instant::now() + Duration::from_secs(90);
    while code(&ha, 0, "/v1/role/replica") != 200 {
        assert!(
            Instant::now() < deadline,
            "not rejoined:\n{}",
            ha.agents[0].log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !ha.agents[0].audit_of("cluster", "rewound").is_empty(),
        "no rewound record: {:#?}",
        ha.agents[0].audit()
    );
    // Twice in full runs on a loaded machine (never alone) the restarted
    // agent rewound the server without a `demoted` record first, as if it
    // had found it already stopped or a standby; not yet explained (open
    // in issue 30's note). Said loudly, with the agent's log, until it is.
    if ha.agents[0].audit_of("cluster", "demoted").is_empty() {
        // Written to the process's stderr itself, not through `eprintln!`,
        // which the test harness captures and drops for a passing test:
        // CI's log keeps it.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr().lock(),
            "UNEXPLAINED: rewound without a demoted record: {:#?}\n{}",
            ha.agents[0].audit(),
            ha.agents[0].log()
        );
    }
    assert_eq!(
        ha.pg.nodes[0].value("SELECT pg_is_in_recovery()"),
        "t",
        "{}\n{:#?}",
        ha.pg.nodes[0].log_tail(),
        ha.agents[0].audit()
    );
    assert_eq!(
        ha.pg.nodes[0].value("SELECT count(*) FROM pg_class WHERE relname = 'diverged'"),
        "0",
        "the diverged write was rewound away: {:#?}",
        ha.agents[0].audit()
    );
}

#[test]
fn a_lagging_standby_is_never_promoted() {
    let mut ha = HaCluster::start("");
    ha.pg.nodes[2].pause_replay();
    ha.pg.nodes[0].execute(
        "CREATE TABLE bulk AS SELECT g AS id, repeat('x', 1000) AS pad FROM generate_series(1, 20000) g",
    );
    std::thread::sleep(Duration::from_secs(1));
    ha.agents[0].kill9();
    ha.pg.nodes[0].kill();
    let new = wait_for("a promotion", PATIENCE, || {
        ha.records("promoted").into_iter().map(|(i, _)| i).next()
    });
    assert_eq!(new, 1, "node3 (replay paused) was promoted");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ha.records("promoted").len(), 1);
    assert_eq!(ha.pg.nodes[2].value("SELECT pg_is_in_recovery()"), "t");
}

#[test]
fn with_only_a_lagging_standby_left_nobody_is_promoted() {
    let mut ha = HaCluster::start("");
    // node2 is gone first; node3 stops replaying; the primary writes 20 MB.
    ha.agents[1].kill9();
    ha.pg.nodes[1].kill();
    ha.pg.nodes[2].pause_replay();
    ha.pg.nodes[0].execute(
        "CREATE TABLE bulk AS SELECT g AS id, repeat('x', 1000) AS pad FROM generate_series(1, 20000) g",
    );
    std::thread::sleep(Duration::from_secs(1));
    ha.agents[0].kill9();
    ha.pg.nodes[0].kill();
    let why = wait_for("node3 to say why it does not take over", PATIENCE, || {
        ha.agents[2]
            .audit_of("cluster", "no-candidate")
            .into_iter()
            .next()
    });
    assert!(
        why["message"]
            .as_str()
            .unwrap()
            .contains("not a healthy standby"),
        "{why:#}"
    );
    std::thread::sleep(TTL * 2);
    assert!(
        ha.records("promoted").is_empty(),
        "{:#?}",
        ha.records("promoted")
    );
    assert_eq!(ha.pg.nodes[2].value("SELECT pg_is_in_recovery()"), "t");
}

#[test]
fn etcd_losing_a_member_changes_nothing_and_losing_quorum_demotes_the_leader() {
    // A lease that etcd's own failover fits in on a loaded machine (an
    // etcd Raft election took 2 s in CI, the whole window of the default
    // 3 s lease: the manual's etcd page, "Timing"); the member lost is
    // etcd's Raft leader, the worst case.
    let ttl = Duration::from_secs(6);
    let mut ha = HaCluster::start(&format!("ttl = \"{}s\"", ttl.as_secs()));
    ha.etcd.kill_raft_leader();
    std::thread::sleep(ttl * 2);
    assert_eq!(
        code(&ha, 0, "/v1/role/primary"),
        200,
        "{}",
        ha.agents[0].log()
    );
    assert!(ha.records("promoted").is_empty());
    assert!(ha.records("lost-lease").is_empty());
    // Quorum gone: nobody may be sure of anything.
    ha.etcd.kill_all();
    let cut = Instant::now();
    wait_for("the leader to demote itself", PATIENCE, || {
        ha.agents[0]
            .audit_of("cluster", "demoted")
            .into_iter()
            .next()
    });
    let took = cut.elapsed();
    eprintln!("etcd quorum lost: the leader stopped its server {took:?} later");
    assert!(
        ha.pg.nodes[0]
            .try_value("CREATE TABLE after_quorum (x int); SELECT 1")
            .is_err()
    );
    assert_eq!(code(&ha, 0, "/v1/role/primary"), 503);
    std::thread::sleep(ttl);
    assert!(
        ha.records("promoted").is_empty(),
        "{:#?}",
        ha.records("promoted")
    );
    for i in 1..3 {
        assert_eq!(ha.pg.nodes[i].value("SELECT pg_is_in_recovery()"), "t");
    }
}

#[test]
fn freezes_shorter_than_the_lease_fail_nobody_over() {
    let ha = HaCluster::start("");
    // The postmaster frozen for 3 s: the leader's agent still holds the key.
    let pid = ha.pg.nodes[0].postmaster_pid().unwrap();
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    // The leader's agent frozen for less than ttl minus the renewal interval.
    let agent = ha.agents[0].pid() as i32;
    unsafe { libc::kill(agent, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(agent, libc::SIGCONT) };
    std::thread::sleep(TTL * 2);
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
    assert_eq!(code(&ha, 0, "/v1/role/primary"), 200);
    assert_eq!(leader_seen_by(&ha, 1).as_deref(), Some("node1"));
    // The status page shows the cluster as this node sees it.
    let page = ha.agents[1].get("/").unwrap().1;
    assert!(page.contains("id=\"cluster\""), "{page}");
    assert!(page.contains("<strong>node1</strong>"), "{page}");
}

#[test]
fn a_crashed_leader_server_is_restarted_in_place() {
    let mut ha = HaCluster::start("");
    ha.pg.nodes[0].kill();
    wait_for(
        "the leader's server to be back as the primary",
        PATIENCE,
        || {
            ha.agents[0]
                .audit_of("cluster", "promoted")
                .into_iter()
                .next()
        },
    );
    assert!(!ha.agents[0].audit_of("cluster", "restarted").is_empty());
    ha.wait_leader("node1");
    let write = ha.pg.nodes[0].try_value("CREATE TABLE after_restart (x int); SELECT 1");
    assert_eq!(write.as_deref(), Ok("1"), "{}", ha.agents[0].log());
    for i in 1..3 {
        assert!(ha.agents[i].audit_of("cluster", "promoted").is_empty());
    }
}

#[test]
fn with_restart_timeout_zero_a_crash_fails_over_at_once() {
    let mut ha = HaCluster::start("restart_timeout = \"0s\"");
    let crashed = Instant::now();
    ha.pg.nodes[0].kill();
    let new = wait_for("a promotion", PATIENCE, || {
        ha.records("promoted").into_iter().map(|(i, _)| i).next()
    });
    let took = ha
        .first_write(new, crashed, PATIENCE)
        .expect("a write on the new primary");
    eprintln!("cluster crash, fail over at once: write accepted {took:?} after the crash");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(!ha.agents[0].audit_of("cluster", "released").is_empty());
    // The old leader's agent brings its server back as a follower.
    let deadline = Instant::now() + Duration::from_secs(60);
    while code(&ha, 0, "/v1/role/replica") != 200 {
        assert!(
            Instant::now() < deadline,
            "the old leader does not follow:\n{}",
            ha.agents[0].log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn only_the_leader_runs_a_watchdog_and_a_clean_stop_ends_it_without_firing() {
    let mut ha = HaCluster::start("");
    let leader = watchdogs(ha.pg.nodes[0].data_dir());
    assert_eq!(leader.len(), 1, "the leader's watchdog: {leader:?}");
    for i in 1..3 {
        assert!(watchdogs(ha.pg.nodes[i].data_dir()).is_empty());
    }
    // A separate process in a session of its own: not the agent's child
    // thread, not in its process group.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", leader[0])).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(fields[3], leader[0].to_string(), "its own session: {stat}");
    // A clean stop (SIGTERM): the agent stops its server and releases the
    // key itself; the watchdog exits without firing.
    ha.agents[0].signal(libc::SIGTERM);
    assert_eq!(ha.agents[0].wait_exit(), 0, "{}", ha.agents[0].log());
    wait_for("the watchdog to exit", PATIENCE, || {
        watchdogs(ha.pg.nodes[0].data_dir())
            .is_empty()
            .then_some(())
    });
    assert!(
        !ha.agents[0]
            .state_dir()
            .join("cluster-watchdog.json")
            .exists(),
        "the watchdog fired on a clean stop"
    );
    // The new leader runs one.
    let new = wait_for("a new leader", PATIENCE, || {
        (1..3).find(|i| code(&ha, *i, "/v1/role/primary") == 200)
    });
    wait_for("the new leader's watchdog", PATIENCE, || {
        (watchdogs(ha.pg.nodes[new].data_dir()).len() == 1).then_some(())
    });
}

/// Issue 30: an agent killed while it leads leaves its watchdog armed
/// (its job: fence the server before the lease can expire). Back before
/// that deadline, the agent takes its key back under a new lease and arms
/// a watchdog of its own; the earlier run's is then stopped: never two
/// armed, and the server the new run leads is never fenced at the old
/// run's deadline (before, it was: SIGQUIT to a healthy leader).
#[test]
fn a_restarted_leader_agent_stops_the_watchdog_its_earlier_run_left() {
    let mut ha = HaCluster::start("ttl = \"6s\"");
    let data_dir = ha.pg.nodes[0].data_dir().to_path_buf();
    let postmaster = || {
        std::fs::read_to_string(data_dir.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_string))
    };
    let before = postmaster().expect("the leader's postmaster.pid");
    let old = watchdogs(&data_dir);
    assert_eq!(old.len(), 1, "the leader's watchdog: {old:?}");
    ha.agents[0].kill9();
    ha.agents[0].spawn();
    wait_for("the restarted agent to take its key back", PATIENCE, || {
        ha.agents[0]
            .audit_of("cluster", "acquired")
            .iter()
            .any(|r| r.to_string().contains("earlier run"))
            .then_some(())
    });
    let new = wait_for("one watchdog, this run's", PATIENCE, || {
        let now = watchdogs(&data_dir);
        (now.len() == 1 && now != old).then_some(now)
    });
    // Past the earlier run's deadline (under a lease of 6 s).
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(watchdogs(&data_dir), new, "{}", ha.agents[0].log());
    assert_eq!(
        postmaster().as_deref(),
        Some(before.as_str()),
        "the leader's server was restarted:\n{}",
        ha.agents[0].log()
    );
    assert!(
        !ha.agents[0]
            .state_dir()
            .join("cluster-watchdog.json")
            .exists(),
        "a watchdog fired:\n{}",
        ha.agents[0].log()
    );
    assert_eq!(code(&ha, 0, "/v1/role/primary"), 200);
}
