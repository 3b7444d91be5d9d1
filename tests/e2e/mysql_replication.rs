//! `mysql-replication` on a real MariaDB primary and GTID replica, with
//! `pt-heartbeat` writing the heartbeat row: healthy, semi-sync fallen
//! back, IO thread stopped, SQL thread stopped on a duplicate key (1062
//! named), an errant GTID on the replica (also one that replication
//! passed, with `log_slave_updates` off), and a frozen primary (SIGSTOP:
//! the heartbeat delay grows while `Seconds_Behind_Master` says 0).

use std::time::{Duration, Instant};
use watchpost_e2e::mariadb::{HeartbeatWriter, MariadbPair};
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

const HEARTBEAT: &[(&str, &str)] = &[
    ("heartbeat_table", "app.heartbeat"),
    ("delay_warning", "2"),
    ("delay_critical", "4"),
];

fn args(pair: &MariadbPair, settings: &[(&str, &str)]) -> Vec<String> {
    let mut args = pair.target_args();
    args.extend(sets(settings));
    args
}

fn replication(pair: &MariadbPair, settings: &[(&str, &str)]) -> Checked {
    check(&probes::path("mysql-replication"), &args(pair, settings))
}

/// Run the probe until `done` holds for its report; panic after `limit`.
fn poll(
    pair: &MariadbPair,
    settings: &[(&str, &str)],
    limit: Duration,
    done: impl Fn(&Checked) -> bool,
) -> Checked {
    poll_args(&args(pair, settings), limit, done)
}

fn poll_args(args: &[String], limit: Duration, done: impl Fn(&Checked) -> bool) -> Checked {
    let started = Instant::now();
    loop {
        let report = check(&probes::path("mysql-replication"), args);
        if done(&report) {
            return report;
        }
        assert!(
            started.elapsed() < limit,
            "gave up after {limit:?}: {:#}",
            report.json
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn sql_error(report: &Checked) -> Option<f64> {
    report
        .measurements("mysql.replica.last_error_number")
        .into_iter()
        .find(|m| m["attributes"]["thread"] == "sql")
        .and_then(|m| m["value"].as_f64())
}

#[test]
fn mysql_replication_healthy_semi_sync_fallen_back_and_io_thread_stopped() {
    let pair = MariadbPair::start();
    let _writer = HeartbeatWriter::start(&pair.primary);
    pair.sync();
    let healthy = poll(&pair, HEARTBEAT, Duration::from_secs(20), |r| {
        r.status() == "ok"
    });
    assert_eq!(healthy.value("mysql.replica.io_running"), 1.0);
    assert_eq!(healthy.value("mysql.replica.sql_running"), 1.0);
    assert_eq!(healthy.value("mysql.replica.errant_gtids"), 0.0);
    assert_eq!(healthy.value("mysql.replication.replicas"), 1.0);
    assert_eq!(healthy.value("mysql.replica.time_behind_source"), 0.0);
    assert!(
        healthy.value("mysql.replica.heartbeat_delay") < 2.0,
        "{:#}",
        healthy.json
    );
    assert!(healthy.value("mysql.replica.transactions_not_applied") >= 0.0);

    // Semi-sync enabled on the primary with no replica acknowledging: it
    // falls back to asynchronous replication after its timeout.
    pair.primary.execute(
        "SET GLOBAL rpl_semi_sync_master_timeout = 100; \
         SET GLOBAL rpl_semi_sync_master_enabled = 1; \
         CREATE TABLE app.semi (id int PRIMARY KEY); INSERT INTO app.semi VALUES (1)",
    );
    let fallen = poll(&pair, HEARTBEAT, Duration::from_secs(20), |r| {
        r.value_where("mysql.semi_sync.active", "side", "primary") == Some(0.0)
    });
    assert_eq!(fallen.status(), "warning", "{:#}", fallen.json);
    assert!(
        fallen.message().contains("semi-sync"),
        "{}",
        fallen.message()
    );
    pair.primary
        .execute("SET GLOBAL rpl_semi_sync_master_enabled = 0");

    pair.replica.execute("STOP SLAVE IO_THREAD");
    let stopped = replication(&pair, HEARTBEAT);
    assert_eq!(
        (stopped.code, stopped.status()),
        (2, "critical"),
        "{:#}",
        stopped.json
    );
    assert_eq!(stopped.value("mysql.replica.io_running"), 0.0);
    assert!(
        stopped.message().contains("IO thread"),
        "{}",
        stopped.message()
    );
    pair.replica.execute("START SLAVE IO_THREAD");
    poll(&pair, HEARTBEAT, Duration::from_secs(20), |r| {
        r.status() == "ok"
    });
}

#[test]
fn mysql_replication_sql_thread_stopped_on_a_duplicate_key_names_1062() {
    let pair = MariadbPair::start();
    pair.primary
        .execute("CREATE TABLE app.t (id int PRIMARY KEY)");
    pair.sync();
    // The row exists on the replica only (not logged), then the primary
    // inserts the same key.
    pair.replica
        .execute("SET SESSION sql_log_bin = 0; INSERT INTO app.t VALUES (5)");
    pair.primary.execute("INSERT INTO app.t VALUES (5)");
    let broken = poll(&pair, &[], Duration::from_secs(20), |r| {
        sql_error(r) == Some(1062.0)
    });
    assert_eq!(
        (broken.code, broken.status()),
        (2, "critical"),
        "{:#}",
        broken.json
    );
    assert_eq!(broken.value("mysql.replica.sql_running"), 0.0);
    assert_eq!(broken.value("mysql.replica.io_running"), 1.0);
    assert!(
        broken.message().contains("SQL thread"),
        "{}",
        broken.message()
    );
    assert!(broken.message().contains("1062"), "{}", broken.message());
}

#[test]
fn mysql_replication_errant_gtid_on_the_replica_is_critical() {
    let pair = MariadbPair::start();
    pair.primary
        .execute("CREATE TABLE app.t (id int PRIMARY KEY)");
    pair.sync();
    let before = replication(&pair, &[]);
    assert_eq!(before.status(), "ok", "{:#}", before.json);
    assert_eq!(before.value("mysql.replica.errant_gtids"), 0.0);
    // A write on the replica that is logged there (root passes read_only).
    pair.replica.execute("INSERT INTO app.t VALUES (99)");
    let errant = replication(&pair, &[]);
    assert_eq!(
        (errant.code, errant.status()),
        (2, "critical"),
        "{:#}",
        errant.json
    );
    assert_eq!(errant.value("mysql.replica.errant_gtids"), 1.0);
    assert!(errant.message().contains("errant"), "{}", errant.message());
    let replica_gtid = pair.replica.value("SELECT @@global.gtid_binlog_pos");
    assert!(
        errant.message().contains(&replica_gtid),
        "{} / {replica_gtid}",
        errant.message()
    );
    // Without the primary the errant write cannot be told apart.
    let alone = check(
        &probes::path("mysql-replication"),
        &[
            "--target".to_string(),
            format!("replica={}", pair.replica.dsn()),
        ],
    );
    assert_eq!(alone.status(), "ok", "{:#}", alone.json);
    assert!(
        alone.message().contains("errant GTIDs not checked"),
        "{}",
        alone.message()
    );
}

/// `log_slave_updates` off: the replica's binary log holds only its own
/// writes, and the primary's later transactions applied after an errant
/// write move `gtid_slave_pos` and `gtid_current_pos` past it (MariaDB
/// does not stop on them). The write is still named, by its own GTID.
#[test]
fn mysql_replication_errant_gtid_passed_by_replication_is_critical() {
    let pair = MariadbPair::with_settings(&["log-slave-updates=0"]);
    pair.primary
        .execute("CREATE TABLE app.t (id int PRIMARY KEY)");
    pair.sync();
    pair.replica.execute("INSERT INTO app.t VALUES (99)");
    let written = pair.replica.value("SELECT @@global.gtid_binlog_pos");
    pair.primary
        .execute("INSERT INTO app.t VALUES (1); INSERT INTO app.t VALUES (2)");
    pair.sync();
    let current = pair.replica.value("SELECT @@global.gtid_current_pos");
    assert!(!current.contains(&written), "{current} / {written}");
    let errant = replication(&pair, &[]);
    assert_eq!(
        (errant.code, errant.status()),
        (2, "critical"),
        "{:#}",
        errant.json
    );
    assert_eq!(errant.value("mysql.replica.errant_gtids"), 1.0);
    assert!(
        errant.message().contains(&written),
        "{} / {written}",
        errant.message()
    );
}

#[test]
fn mysql_replication_frozen_primary_heartbeat_delay_grows_while_seconds_behind_says_0() {
    let pair = MariadbPair::start();
    let _writer = HeartbeatWriter::start(&pair.primary);
    pair.sync();
    poll(&pair, HEARTBEAT, Duration::from_secs(20), |r| {
        r.status() == "ok"
    });
    pair.primary.set_paused(true);
    // The primary's side waits for the frozen server until the run's
    // deadline; the replica's side has reported by then.
    let mut frozen_args = args(&pair, HEARTBEAT);
    frozen_args.extend(["--timeout".to_string(), "3s".to_string()]);
    let frozen = poll_args(&frozen_args, Duration::from_secs(30), |r| {
        r.measurements("mysql.replica.heartbeat_delay")
            .first()
            .and_then(|m| m["value"].as_f64())
            .is_some_and(|d| d > 4.0)
    });
    pair.primary.set_paused(false);
    assert_eq!(frozen.status(), "critical", "{:#}", frozen.json);
    assert_eq!(frozen.value("mysql.replica.time_behind_source"), 0.0);
    assert_eq!(frozen.value("mysql.replica.io_running"), 1.0);
    assert!(
        frozen.message().contains("heartbeat row"),
        "{}",
        frozen.message()
    );
}

/// Apply lag: the replica's SQL thread holds each event back
/// `MASTER_DELAY` seconds while its IO thread keeps up. The heartbeat
/// row it applied is then at least the delay old (less the second the
/// binary log's timestamps round off): past a 3 s warning limit and below
/// a 60 s critical one it is a warning, with a 4.5 s critical limit
/// critical; both threads run and the configured delay is reported.
#[test]
fn mysql_replication_apply_lag_from_master_delay_is_judged_by_the_heartbeat() {
    const DELAY: f64 = 6.0;
    let pair = MariadbPair::start();
    let _writer = HeartbeatWriter::start(&pair.primary);
    pair.sync();
    pair.replica
        .execute("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 6; START SLAVE");
    let lagging_at = |settings: &[(&str, &str)]| {
        poll(&pair, settings, Duration::from_secs(60), |r| {
            r.measurements("mysql.replica.heartbeat_delay")
                .first()
                .and_then(|m| m["value"].as_f64())
                .is_some_and(|d| d >= DELAY - 1.0)
        })
    };
    let limits = |critical: &'static str| {
        [
            ("heartbeat_table", "app.heartbeat"),
            ("delay_warning", "3"),
            ("delay_critical", critical),
        ]
    };
    let warning = lagging_at(&limits("60"));
    assert_eq!(
        (warning.code, warning.status()),
        (1, "warning"),
        "{:#}",
        warning.json
    );
    assert_eq!(warning.value("mysql.replica.sql_delay"), DELAY);
    assert_eq!(warning.value("mysql.replica.io_running"), 1.0);
    assert_eq!(warning.value("mysql.replica.sql_running"), 1.0);
    let delay = warning.value("mysql.replica.heartbeat_delay");
    assert!((DELAY - 1.0..60.0).contains(&delay), "{delay}");
    assert!(
        warning.message().contains("heartbeat row"),
        "{}",
        warning.message()
    );
    let critical = lagging_at(&limits("4.5"));
    assert_eq!(
        (critical.code, critical.status()),
        (2, "critical"),
        "{:#}",
        critical.json
    );
}
