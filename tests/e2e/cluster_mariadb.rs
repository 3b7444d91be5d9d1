//! Cluster mode on MariaDB (issue 27, item 4), with real parts: a 3-member
//! etcd, three `mariadbd` started by their agents (each member's option
//! file says `read_only = ON`), one agent per node. Node loss under the
//! split-brain writer (one new primary, taking writes within the lease,
//! never two acknowledging at once; the others follow it; the old leader
//! started by hand comes back read-only and rejoins by GTID when its agent
//! returns), and a planned switchover (the new leader writable, the old
//! one a read-only replica of it, no acknowledged write lost).

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{PATIENCE, wait_for};
use watchpost_e2e::cli::watchpost_run;
use watchpost_e2e::mariadb::cluster::MariadbCluster;
use watchpost_e2e::splitbrain::mysql::TABLE;

const TTL: Duration = Duration::from_secs(3);

/// The shipped MariaDB cluster examples validate (their password files
/// replaced by ones that exist, mode 0600).
#[test]
fn the_shipped_mariadb_cluster_examples_validate() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let secret = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, "secret\n").expect("write a password");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    };
    let files = [
        ("/etc/watchpost/mysql-monitor-password", secret("monitor")),
        ("/etc/watchpost/mysql-admin-password", secret("admin")),
        ("/etc/watchpost/mysql-repl-password", secret("repl")),
    ];
    for node in 1..=3 {
        let mut example = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../examples/cluster/mariadb-node{node}.toml")),
        )
        .expect("read the example");
        for (shipped, here) in &files {
            example = example.replace(shipped, here);
        }
        let config = dir.path().join(format!("mariadb-node{node}.toml"));
        std::fs::write(&config, example).unwrap();
        let outcome = watchpost_run(["validate", "-c", config.to_str().unwrap()]);
        assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    }
}

/// The sequence numbers of the split-brain writes node `i` holds.
fn present(ha: &MariadbCluster, i: usize) -> Vec<i64> {
    ha.nodes[i]
        .value("SELECT seq FROM app.sb_writes")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn mariadb_node_loss_promotes_one_replica_and_the_old_leader_comes_back_read_only() {
    let ha = MariadbCluster::start();
    ha.nodes[0].value(TABLE);
    ha.nodes[0].value(
        "CREATE TABLE app.before_loss (id int PRIMARY KEY); INSERT INTO app.before_loss VALUES (1)",
    );
    // The writer runs against every node: only the leader acknowledges.
    let writer = ha.writers();
    wait_for("writes acknowledged by the leader", PATIENCE, || {
        (writer.count() >= 20).then_some(())
    });
    assert_eq!(writer.count_via("node2") + writer.count_via("node3"), 0);
    let mut ha = ha;
    // The node is lost: its agent and its server die together.
    ha.agents[0].kill9();
    let lost = Instant::now();
    ha.nodes[0].kill();
    // node1's own promotion at the start is not this one.
    let new = wait_for("a promotion", PATIENCE, || {
        ha.records("promoted")
            .into_iter()
            .map(|(i, _)| i)
            .find(|i| *i != 0)
    });
    let took = ha
        .first_write(new, lost, PATIENCE)
        .expect("a write on the new primary");
    eprintln!(
        "mariadb cluster node loss: write accepted on node{} {took:?} after the SIGKILL",
        new + 1
    );
    assert!(took < TTL + Duration::from_secs(4), "{took:?}");
    assert_eq!(ha.nodes[new].value("SELECT @@global.read_only"), "0");
    let other = if new == 1 { 2 } else { 1 };
    wait_for(
        "the other replica to follow the new leader",
        PATIENCE,
        || ha.is_replica(other).then_some(()),
    );
    assert!(ha.is_primary(new));
    assert!(!ha.is_primary(other));
    assert_eq!(ha.nodes[other].value("SELECT @@global.read_only"), "1");
    let later: Vec<_> = ha
        .records("promoted")
        .into_iter()
        .filter(|(i, _)| *i != 0)
        .collect();
    assert_eq!(later.len(), 1, "{later:#?}");
    assert_eq!(
        ha.nodes[new].value("SELECT count(*) FROM app.before_loss"),
        "1"
    );
    // The new leader's writes reach the other member.
    let before = writer.count_via(&format!("node{}", new + 1));
    wait_for("writes on the new leader", PATIENCE, || {
        (writer.count_via(&format!("node{}", new + 1)) >= before + 10).then_some(())
    });
    let report = writer.stop();
    assert_eq!(
        report.overlaps(lost - Duration::from_secs(5)),
        vec![],
        "two servers acknowledged writes at the same time"
    );
    let missing = report.missing(&present(&ha, new));
    eprintln!(
        "mariadb cluster node loss: {} writes acknowledged, {} of them missing from the new primary (asynchronous replication: acknowledged by the lost node, not yet sent)",
        report.acks.len(),
        missing.len()
    );

    // Started by hand with its agent dead (once the watchdog it left has
    // fired): read-only, the application's write refused.
    ha.agents[0].wait_watchdog_fired();
    ha.nodes[0].start_by_hand();
    assert_eq!(ha.nodes[0].value("SELECT @@global.read_only"), "1");
    let refused =
        ha.nodes[0].try_execute_as_app("INSERT INTO app.sb_writes VALUES (-1, 'by-hand', 0)");
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("read-only") || e.contains("1290")),
        "the old leader took a write: {refused:?}"
    );
    // Whether it holds transactions the new leader never received (the
    // lost node's last ones, written after the new leader's IO thread
    // read its binary log): its own last GTID against the new leader's
    // binary-log state for its server id.
    let own = ha.nodes[0].value("SELECT @@global.gtid_binlog_pos");
    let (_, own_sequence) = own.rsplit_once('-').expect("node1 wrote GTIDs");
    let own_sequence: u64 = own_sequence.parse().unwrap();
    let theirs = ha.nodes[new].value("SELECT @@global.gtid_binlog_state");
    let has_all = theirs.split(',').any(|g| {
        let parts: Vec<&str> = g.trim().split('-').collect();
        parts.len() == 3
            && parts[1] == "101"
            && parts[2].parse::<u64>().unwrap_or(0) >= own_sequence
    });
    eprintln!(
        "mariadb cluster node loss: old leader at {own}, new leader's state {theirs}: has all = {has_all}"
    );
    // Its agent starts: it follows the new leader by GTID, or (it holds
    // transactions the new leader lacks) stays read-only, not replicating,
    // recorded as needing a rebuild.
    ha.agents[0].spawn();
    if has_all {
        wait_for(
            "the old leader to replicate from the new one",
            Duration::from_secs(60),
            || ha.is_replica(0).then_some(()),
        );
        assert_eq!(
            ha.view(0)["leader"].as_str(),
            Some(format!("node{}", new + 1).as_str())
        );
        ha.nodes[new].value("INSERT INTO app.before_loss VALUES (2)");
        wait_for(
            "the old leader to apply the new leader's write",
            PATIENCE,
            || (ha.nodes[0].value("SELECT count(*) FROM app.before_loss") == "2").then_some(()),
        );
    } else {
        let record = wait_for("a rebuild-required record", Duration::from_secs(60), || {
            ha.agents[0]
                .audit_of("cluster", "failed")
                .into_iter()
                .find(|r| {
                    r["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("rebuild required")
                })
        });
        assert!(
            record["message"].as_str().unwrap().contains(&own),
            "{record:#}"
        );
        assert!(!ha.is_replica(0));
    }
    assert_eq!(ha.nodes[0].value("SELECT @@global.read_only"), "1");
    assert!(!ha.is_primary(0));
}

#[test]
fn a_mariadb_switchover_makes_the_target_writable_and_the_old_leader_a_read_only_replica() {
    let ha = MariadbCluster::start();
    ha.nodes[0].value(TABLE);
    let writer = ha.writers();
    wait_for("writes acknowledged", PATIENCE, || {
        (writer.count() >= 20).then_some(())
    });
    let config = ha.agents[0].config_path();
    let asked = Instant::now();
    let outcome = watchpost_run([
        "cluster",
        "switchover",
        "-c",
        config.to_str().unwrap(),
        "--to",
        "node2",
    ]);
    let took = asked.elapsed();
    assert_eq!(
        outcome.code,
        0,
        "{}\n{}",
        outcome.all_output(),
        ha.agents[0].log()
    );
    eprintln!("mariadb cluster switchover: done in {took:?}");
    ha.wait_leader(1);
    assert_eq!(ha.nodes[1].value("SELECT @@global.read_only"), "0");
    wait_for(
        "the old leader to replicate from the new one",
        Duration::from_secs(60),
        || ha.is_replica(0).then_some(()),
    );
    assert_eq!(ha.nodes[0].value("SELECT @@global.read_only"), "1");
    wait_for("node3 to follow the new leader", PATIENCE, || {
        ha.is_replica(2).then_some(())
    });
    let before = writer.count_via("node2");
    wait_for("writes on the new leader", PATIENCE, || {
        (writer.count_via("node2") >= before + 20).then_some(())
    });
    let report = writer.stop();
    assert_eq!(report.overlaps(asked), vec![]);
    // The old leader stopped taking writes before the new one started:
    // every acknowledged write is on the new leader.
    let missing = report.missing(&present(&ha, 1));
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    // node1's promotion at the start, then node2's only.
    let promoted: Vec<usize> = ha.records("promoted").into_iter().map(|(i, _)| i).collect();
    assert_eq!(promoted, vec![0, 1], "{:#?}", ha.records("promoted"));
}
