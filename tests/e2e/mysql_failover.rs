//! The MariaDB failover of a primary/replica pair by GTID (issue 27,
//! item 3), on real `mariadbd` servers: a `kill -9` of the primary
//! promotes the replica once, which takes a write, the other replica is
//! repointed to it and the old primary rejoins as a replica when it comes
//! back; relay log received but not applied is applied before the
//! promotion; a replica with an errant GTID is refused (also when
//! replication passed it, with `log_slave_updates` off); an old primary
//! with a write the new one lacks cannot rejoin (1236) and is recorded as
//! needing a rebuild; a primary that is alive is never failed over,
//! whether its replica's IO thread was merely stopped or cut off from a
//! primary that still answers the agent; an operator's switchover trades
//! the two places.

use std::time::Duration;
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for, wasm};
use watchpost_e2e::mariadb::pair::{Pair, slave_status, wait_replicating};
use watchpost_e2e::mariadb::{Mariadb, Server};

/// An agent watching the pair: `SELECT 1` on the primary every 250 ms
/// (critical when it fails), the failover on three failures;
/// `statement` replaces `SELECT 1`, `extra` is added to the action.
fn start_agent(pair: &Pair, others: &[&Mariadb], statement: &str, extra: &str) -> Agent {
    let target = |name: &str, server: &Server| {
        format!(
            "[targets.{name}]\nkind = \"mysql\"\ndsn = \"{}\"\nadmin_dsn = \"{}\"\n\n",
            server.dsn(),
            server.dsn_as("root")
        )
    };
    let mut config = target("primary", &pair.primary) + &target("replica", &pair.replica);
    let mut names = Vec::new();
    for (i, other) in others.iter().enumerate() {
        let name = format!("replica{}", i + 2);
        config += &target(&name, other);
        names.push(format!("\"{name}\""));
    }
    config += &format!(
        "[[probe]]\nname = \"alive-primary\"\nwasm = \"{}\"\nevery = \"250ms\"\ntimeout = \"400ms\"\n\
         targets = [\"primary\"]\nfor = 3\nflapping = {{ enabled = false }}\n\
         config = {{ sql = \"{statement}\", target = \"primary\" }}\n\n\
         [[remediation]]\nname = \"failover\"\non = {{ probe = \"alive-primary\", status = \"critical\" }}\n\
         action = {{ failover = \"replica\", primary = \"primary\", fence = \"none\", write_within = \"10s\", \
         block_for = \"1h\", apply_within = \"20s\", rejoin_within = \"2m\", replicas = [{}]{extra} }}\n\
         cooldown = \"1s\"\n",
        wasm("sqlrun"),
        names.join(", ")
    );
    let agent = Agent::start(&config);
    wait_for("the agent's first runs", PATIENCE, || {
        agent
            .probe("alive-primary")
            .filter(|p| p["counters"]["runs"].as_u64() >= Some(2))
    });
    agent
}

/// The first record of the failover with `decision`.
fn first(agent: &Agent, decision: &str) -> serde_json::Value {
    agent.first_record("failover", decision, PATIENCE * 2)
}

/// Step records named `name` (the record's `reason`).
fn steps(agent: &Agent, name: &str) -> Vec<serde_json::Value> {
    agent.steps("failover", name)
}

fn rejoin_record(agent: &Agent) -> serde_json::Value {
    wait_for("a rejoin record", PATIENCE * 2, || {
        agent.audit().into_iter().find(|r| r["reason"] == "rejoin")
    })
}

#[test]
fn kill_9_promotes_the_replica_once_repoints_the_other_and_the_old_primary_rejoins() {
    // Durable commits, as in production: the harness's default
    // (innodb_flush_log_at_trx_commit = 0) lets kill -9 lose the old
    // primary's last commits that its binary log still names, and then
    // its rejoin rightly skips them.
    let mut pair = Pair::with_settings(&["innodb-flush-log-at-trx-commit=1", "sync-binlog=1"]);
    let other = pair.add_replica();
    pair.primary
        .execute("CREATE TABLE app.t (id int PRIMARY KEY); INSERT INTO app.t VALUES (1)");
    pair.wait_caught_up(&pair.replica);
    pair.wait_caught_up(&other);
    let agent = start_agent(&pair, &[&other], "SELECT 1", "");
    pair.primary.kill();
    let done = first(&agent, "succeeded");
    assert!(
        done["message"]
            .as_str()
            .unwrap()
            .contains("promoted `replica`"),
        "{done:#}"
    );
    let promotions = steps(&agent, "promote");
    assert_eq!(promotions.len(), 1, "{promotions:#?}");
    assert_eq!(steps(&agent, "verify-write")[0]["detail"]["ok"], true);
    assert_eq!(pair.replica.value("SELECT @@read_only"), "0");
    assert!(slave_status(&pair.replica).is_empty(), "still a replica");
    assert_eq!(
        pair.replica
            .value("SELECT count(*) FROM watchpost.failover_check"),
        "1"
    );
    // The other replica follows the new primary.
    let repoint = steps(&agent, "repoint");
    assert_eq!(repoint[0]["detail"]["ok"], true, "{repoint:#?}");
    pair.replica.execute("INSERT INTO app.t VALUES (2)");
    other.wait_for_value("SELECT count(*) FROM app.t", "2", PATIENCE);
    // The old primary comes back and rejoins, read-only.
    pair.primary.start();
    let rejoin = rejoin_record(&agent);
    assert_eq!(rejoin["decision"], "step", "{rejoin:#}");
    assert_eq!(pair.primary.value("SELECT @@read_only"), "1");
    pair.primary
        .wait_for_value("SELECT count(*) FROM app.t", "2", PATIENCE);
    // Still one promotion: the block holds.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(steps(&agent, "promote").len(), 1);
}

#[test]
fn relay_received_but_not_applied_is_applied_before_the_promotion() {
    let mut pair = Pair::start();
    pair.primary
        .execute("CREATE TABLE app.t (id int PRIMARY KEY)");
    pair.wait_caught_up(&pair.replica);
    pair.replica.execute("STOP SLAVE SQL_THREAD");
    pair.primary.execute(
        "INSERT INTO app.t SELECT seq FROM app.seq_1_to_500; INSERT INTO app.t VALUES (1000)",
    );
    let last = pair.primary.value("SELECT @@gtid_binlog_pos");
    wait_for("the replica to receive the inserts", PATIENCE, || {
        (slave_status(&pair.replica).get("Gtid_IO_Pos") == Some(&last)).then_some(())
    });
    assert_eq!(pair.replica.value("SELECT count(*) FROM app.t"), "0");
    let agent = start_agent(&pair, &[], "SELECT 1", "");
    pair.primary.kill();
    first(&agent, "succeeded");
    let applied = &steps(&agent, "apply-relay")[0];
    assert_eq!(applied["detail"]["ok"], true, "{applied:#}");
    assert_eq!(applied["detail"]["detail"]["started_sql_thread"], true);
    assert_eq!(pair.replica.value("SELECT count(*) FROM app.t"), "501");
}

#[test]
fn a_replica_with_an_errant_gtid_is_refused() {
    let mut pair = Pair::start();
    pair.primary
        .execute("CREATE TABLE app.t (id int PRIMARY KEY)");
    pair.wait_caught_up(&pair.replica);
    // A write on the replica itself: a GTID the primary never had.
    pair.replica.execute("INSERT INTO app.t VALUES (99)");
    let errant = pair.replica.value("SELECT @@gtid_binlog_pos");
    let agent = start_agent(&pair, &[], "SELECT 1", "");
    pair.primary.kill();
    let refused = first(&agent, "failed");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("errant GTIDs"), "{message}");
    assert!(message.contains(&errant), "{message} (expected {errant})");
    assert!(steps(&agent, "promote").is_empty());
    assert!(
        !slave_status(&pair.replica).is_empty(),
        "the replica was changed"
    );
}

/// `log_slave_updates` off: the replica's own write, then the primary's
/// next transactions applied after it (MariaDB does not stop on them, and
/// its sequence number is the primary's next one's): neither
/// `gtid_binlog_pos`'s sequence nor `gtid_current_pos` shows it as
/// ahead, and the failover still refuses, naming it.
#[test]
fn a_replica_whose_errant_gtid_replication_passed_is_refused() {
    let mut pair = Pair::with_settings(&["log-slave-updates=0"]);
    pair.primary
        .execute("CREATE TABLE app.t (id int PRIMARY KEY)");
    pair.wait_caught_up(&pair.replica);
    pair.replica.execute("INSERT INTO app.t VALUES (99)");
    let errant = pair.replica.value("SELECT @@gtid_binlog_pos");
    pair.primary
        .execute("INSERT INTO app.t VALUES (1); INSERT INTO app.t VALUES (2)");
    pair.wait_caught_up(&pair.replica);
    let agent = start_agent(&pair, &[], "SELECT 1", "");
    pair.primary.kill();
    let refused = first(&agent, "failed");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("errant GTIDs"), "{message}");
    assert!(message.contains(&errant), "{message} (expected {errant})");
    assert!(steps(&agent, "promote").is_empty());
    assert_eq!(pair.replica.value("SELECT @@read_only"), "1");
}

#[test]
fn an_old_primary_with_a_write_the_new_one_lacks_is_recorded_as_needing_a_rebuild() {
    let mut pair = Pair::start();
    pair.primary
        .execute("CREATE TABLE app.t (id int PRIMARY KEY)");
    pair.wait_caught_up(&pair.replica);
    // The replica stops receiving; the primary writes once more and dies.
    pair.replica.execute("STOP SLAVE IO_THREAD");
    pair.primary.execute("INSERT INTO app.t VALUES (7)");
    let lost = pair.primary.value("SELECT @@gtid_binlog_pos");
    let agent = start_agent(&pair, &[], "SELECT 1", "");
    pair.primary.kill();
    pair.replica.execute("START SLAVE IO_THREAD");
    first(&agent, "succeeded");
    pair.primary.start();
    let rejoin = rejoin_record(&agent);
    assert_eq!(rejoin["decision"], "failed", "{rejoin:#}");
    let message = rejoin["message"].as_str().unwrap();
    assert!(message.contains("rebuild required"), "{message}");
    assert!(message.contains("1236"), "{message}");
    assert!(message.contains(&lost), "{message} (expected {lost})");
    assert_eq!(rejoin["detail"]["detail"]["rebuild_required"], true);
    assert_eq!(
        rejoin["detail"]["detail"]["extra_gtids"],
        serde_json::json!([lost])
    );
    // Left read-only and not replicating, never silently taken back.
    assert_eq!(pair.primary.value("SELECT @@read_only"), "1");
    let status = slave_status(&pair.primary);
    assert_eq!(
        status.get("Slave_IO_Running").map(String::as_str),
        Some("No")
    );
}

#[test]
fn an_alive_primary_whose_replica_stopped_its_io_thread_is_not_failed_over() {
    let pair = Pair::start();
    pair.replica.execute("STOP SLAVE IO_THREAD");
    // The trigger fires (the probe's statement fails) while the primary lives.
    let agent = start_agent(&pair, &[], "SELECT * FROM app.missing", "");
    let refused = first(&agent, "failed");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("IO thread was stopped"), "{message}");
    assert!(steps(&agent, "promote").is_empty());
    assert_eq!(pair.primary.value("SELECT @@read_only"), "0");
}

#[test]
fn a_replica_cut_off_from_a_primary_that_answers_is_not_promoted() {
    let pair = Pair::start();
    // The replica loses the primary (a wrong port: as a partition between
    // the two would), but the primary answers the agent.
    let closed = watchpost_e2e::port::free_port();
    pair.replica.execute(&format!(
        "STOP SLAVE; CHANGE MASTER TO MASTER_PORT = {closed}; START SLAVE"
    ));
    wait_for("the replica's IO thread to fail", PATIENCE, || {
        let status = slave_status(&pair.replica);
        (status.get("Last_IO_Errno").map(String::as_str) == Some("2003")).then_some(())
    });
    let agent = start_agent(&pair, &[], "SELECT * FROM app.missing", "");
    let refused = first(&agent, "failed");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("the primary `primary` answers"),
        "{message}"
    );
    assert!(steps(&agent, "promote").is_empty());
    assert!(!slave_status(&pair.replica).is_empty());
    assert_eq!(pair.primary.value("SELECT @@read_only"), "0");
}

#[test]
fn a_switchover_asked_by_an_operator_trades_the_places() {
    let pair = Pair::start();
    pair.primary
        .execute("CREATE TABLE app.t (id int PRIMARY KEY); INSERT INTO app.t VALUES (1)");
    pair.wait_caught_up(&pair.replica);
    let agent = start_agent(&pair, &[], "SELECT 1", "");
    let (status, body) = agent.post("/v1/remediations/failover/switchover");
    assert_eq!(status, 202, "{body}");
    let done = wait_for("the switchover's outcome", PATIENCE * 2, || {
        agent.audit().into_iter().find(|r| {
            r["action"] == "switchover"
                && (r["decision"] == "succeeded" || r["decision"] == "failed")
        })
    });
    assert_eq!(done["decision"], "succeeded", "{:#?}", agent.audit());
    assert_eq!(pair.replica.value("SELECT @@read_only"), "0");
    assert!(slave_status(&pair.replica).is_empty());
    assert_eq!(pair.primary.value("SELECT @@read_only"), "1");
    wait_replicating(&pair.primary);
    pair.replica.execute("INSERT INTO app.t VALUES (2)");
    pair.primary
        .wait_for_value("SELECT count(*) FROM app.t", "2", PATIENCE);
}
