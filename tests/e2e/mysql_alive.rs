//! `mysql-alive` on a real MariaDB: up and writable as a primary; the
//! wrong role is critical; every connection taken (1040) and a bad
//! password (1045) are warnings with the server up; `kill -9` is critical;
//! an unanswered server whose process just started is "starting", not down.

use std::process::{Child, Command, Stdio};
use std::time::Duration;
use watchpost_e2e::mariadb::{Mariadb, PASSWORD_USER, program};
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn alive(dsn: &str, settings: &[(&str, &str)]) -> Checked {
    let mut args = vec!["--target".to_string(), format!("primary={dsn}")];
    args.extend(sets(settings));
    check(&probes::path("mysql-alive"), &args)
}

/// A root session on `db`'s socket that holds a connection for a minute.
fn sleeper(db: &Mariadb) -> Child {
    Command::new(program("mariadb"))
        .arg("--no-defaults")
        .arg(format!("--socket={}", db.socket().display()))
        .args(["-uroot", "-e", "SELECT SLEEP(60)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn a mariadb client")
}

#[test]
fn mysql_alive_reports_a_writable_primary_and_a_wrong_role() {
    let db = Mariadb::start();
    let up = alive(&db.dsn(), &[("role", "primary")]);
    assert_eq!((up.code, up.status()), (0, "ok"), "{:#}", up.json);
    assert_eq!(up.value("mysql.up"), 1.0);
    assert_eq!(up.value("mysql.accepting_connections"), 1.0);
    assert_eq!(up.value("mysql.read_only"), 0.0);
    assert_eq!(up.value("mysql.is_replica"), 0.0);
    assert!(up.value("mysql.connect.duration") > 0.0);
    assert!(up.message().contains("writable"), "{}", up.message());

    let wrong = alive(&db.dsn(), &[("role", "replica")]);
    assert_eq!(wrong.status(), "critical", "{:#}", wrong.json);
    assert!(
        wrong.message().contains("no replication source"),
        "{}",
        wrong.message()
    );

    db.execute("SET GLOBAL read_only = 1");
    let read_only = alive(&db.dsn(), &[("role", "primary")]);
    assert_eq!(read_only.status(), "critical", "{:#}", read_only.json);
    assert_eq!(read_only.value("mysql.read_only"), 1.0);
    assert!(
        read_only.message().contains("read-only"),
        "{}",
        read_only.message()
    );

    let bad = alive(&db.dsn(), &[("role", "leader")]);
    assert_eq!(bad.status(), "unknown", "{:#}", bad.json);
    assert!(bad.message().contains("role"), "{}", bad.message());
}

#[test]
fn mysql_alive_refusals_are_warnings_with_the_server_up() {
    // MariaDB's smallest max_connections is 10.
    let db = Mariadb::with_settings(&["max_connections=10"]);
    // A bad password: ER_ACCESS_DENIED (1045), up but refusing.
    let denied = alive(
        &format!("mysql://{PASSWORD_USER}:wrong@127.0.0.1:{}/app", db.port()),
        &[],
    );
    assert_eq!(
        (denied.code, denied.status()),
        (1, "warning"),
        "{:#}",
        denied.json
    );
    assert_eq!(denied.value("mysql.up"), 1.0);
    assert_eq!(denied.value("mysql.accepting_connections"), 0.0);
    assert!(denied.message().contains("1045"), "{}", denied.message());

    // Every connection taken: ER_CON_COUNT_ERROR (1040).
    let mut sleepers: Vec<Child> = (0..10).map(|_| sleeper(&db)).collect();
    db.wait_for_value(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(60)'",
        "10",
        Duration::from_secs(20),
    );
    let full = alive(&db.dsn(), &[]);
    for child in &mut sleepers {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(
        (full.code, full.status()),
        (1, "warning"),
        "{:#}",
        full.json
    );
    assert_eq!(full.value("mysql.up"), 1.0);
    assert_eq!(full.value("mysql.accepting_connections"), 0.0);
    assert!(full.message().contains("1040"), "{}", full.message());
    assert!(!full.message().contains("down"), "{}", full.message());
}

#[test]
fn mysql_alive_kill_9_is_down_unless_the_process_is_starting() {
    let mut db = Mariadb::start();
    let dsn = db.dsn();
    db.kill();
    let down = alive(&dsn, &[]);
    assert_eq!(
        (down.code, down.status()),
        (2, "critical"),
        "{:#}",
        down.json
    );
    assert_eq!(down.value("mysql.up"), 0.0);
    assert!(down.message().contains("down"), "{}", down.message());

    // A process of the configured name that started a moment ago: the
    // server is starting (`sleep` run through a link of its own name, which
    // the kernel takes for the process's name, stands for a mariadbd still
    // recovering). A link, not a copy: a copy's write descriptor, inherited
    // by a child another test thread forks meanwhile, fails the exec with
    // "Text file busy".
    let dir = tempfile::tempdir().expect("a temporary directory");
    let fake = dir.path().join("wpstarting");
    std::os::unix::fs::symlink("/bin/sleep", &fake).expect("link sleep");
    let mut starting = Command::new(&fake)
        .arg("60")
        .spawn()
        .expect("spawn the stand-in process");
    let young = alive(&dsn, &[("process", "wpstarting")]);
    let past_grace = alive(&dsn, &[("process", "wpstarting"), ("starting_grace", "0")]);
    let _ = starting.kill();
    let _ = starting.wait();
    assert_eq!(young.status(), "warning", "{:#}", young.json);
    assert!(young.message().contains("starting"), "{}", young.message());
    assert_eq!(young.value("mysql.up"), 0.0);
    assert_eq!(past_grace.status(), "critical", "{:#}", past_grace.json);
}
