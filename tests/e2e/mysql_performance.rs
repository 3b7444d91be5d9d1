//! `mysql-performance` on a real MariaDB: a quiet server is ok with every
//! part measured; a transaction left open is past its limit with its
//! session named; an account without `PROCESS` leaves that part
//! `unknown` naming the grant while the others report.

use std::process::{Command, Stdio};
use std::time::Duration;
use watchpost_e2e::mariadb::{Mariadb, program};
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn performance(dsn: &str, settings: &[(&str, &str)]) -> Checked {
    let mut args = vec!["--target".to_string(), format!("primary={dsn}")];
    args.extend(sets(settings));
    check(&probes::path("mysql-performance"), &args)
}

#[test]
fn mysql_performance_names_a_long_transaction() {
    let db = Mariadb::start();
    db.execute("CREATE TABLE app.t (id int PRIMARY KEY); INSERT INTO app.t VALUES (1)");
    let quiet = performance(&db.dsn(), &[]);
    assert_eq!(quiet.status(), "ok", "{:#}", quiet.json);
    assert!(
        quiet
            .value_where("mysql.canary.duration", "statistic", "p50")
            .is_some()
    );
    let ratio = quiet.value("mysql.connections.used_ratio");
    assert!(ratio > 0.0 && ratio < 0.5, "{ratio}");
    assert_eq!(quiet.value("mysql.transaction.oldest_age"), 0.0);
    assert!(quiet.value("mysql.innodb.history_list_length") >= 0.0);
    let hit = quiet.value("mysql.buffer_pool.hit_ratio");
    assert!((0.0..=1.0).contains(&hit), "{hit}");
    assert!(quiet.value("mysql.query.slow.count") >= 0.0);
    assert!(
        quiet.message().contains("performance_schema is off"),
        "{}",
        quiet.message()
    );

    // A transaction that wrote a row and stays open.
    let mut holder = Command::new(program("mariadb"))
        .arg("--no-defaults")
        .arg(format!("--socket={}", db.socket().display()))
        .args([
            "-uroot",
            "-e",
            "START TRANSACTION; UPDATE app.t SET id = 2 WHERE id = 1; SELECT SLEEP(60)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the transaction holder");
    db.wait_for_value(
        "SELECT COUNT(*) FROM information_schema.INNODB_TRX",
        "1",
        Duration::from_secs(20),
    );
    let session = db.value("SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX");
    std::thread::sleep(Duration::from_millis(2500));
    let long = performance(
        &db.dsn(),
        &[("transaction_warning", "1"), ("transaction_critical", "2")],
    );
    // Without PROCESS the transactions cannot be seen: unknown, named.
    db.execute(
        "CREATE USER 'noprocess'@'%'; GRANT SELECT, SLAVE MONITOR ON *.* TO 'noprocess'@'%'",
    );
    let blind = performance(&db.dsn_as("noprocess"), &[]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(
        (long.code, long.status()),
        (2, "critical"),
        "{:#}",
        long.json
    );
    assert!(
        long.value("mysql.transaction.oldest_age") >= 2.0,
        "{:#}",
        long.json
    );
    assert!(
        long.message().contains(&format!("session {session}")),
        "{} / {session}",
        long.message()
    );
    assert_eq!(blind.status(), "unknown", "{:#}", blind.json);
    assert!(blind.message().contains("PROCESS"), "{}", blind.message());
    assert!(
        blind
            .measurements("mysql.transaction.oldest_age")
            .is_empty()
    );
    assert!(blind.value("mysql.connections.used_ratio") > 0.0);
}
