//! `builtin:mysql-alive` on a real MariaDB (issue 27): up as a writable
//! primary; `max_connections` exhausted is a warning with the server up,
//! never down; `kill -9` of the server is critical, down.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use watchpost_e2e::mariadb::{Mariadb, program};
use watchpost_e2e::report::{Checked, check, sets};

fn alive(db: &Mariadb, settings: &[(&str, &str)]) -> Checked {
    let mut args = vec!["--target".to_string(), format!("primary={}", db.dsn())];
    args.extend(sets(settings));
    check(Path::new("builtin:mysql-alive"), &args)
}

/// A root session over the socket that sleeps, holding a connection.
fn hold_connection(db: &Mariadb) -> Child {
    Command::new(program("mariadb"))
        .arg("--no-defaults")
        .arg(format!("--socket={}", db.socket().display()))
        .args(["-uroot", "-e", "SELECT SLEEP(60)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn a session holder")
}

#[test]
fn mysql_alive_up_full_and_killed() {
    let mut db = Mariadb::with_settings(&["max_connections=3"]);
    let up = alive(&db, &[("role", "primary")]);
    assert_eq!(up.status(), "ok", "{:#}", up.json);
    assert!(up.message().contains("mariadb"), "{}", up.message());
    assert_eq!(up.value("mysql.up"), 1.0);
    assert_eq!(up.value("mysql.read_only"), 0.0);
    assert_eq!(up.value("mysql.is_replica"), 0.0);
    let wrong_role = alive(&db, &[("role", "replica")]);
    assert_eq!(wrong_role.status(), "critical", "{:#}", wrong_role.json);

    // Every connection taken (root may take one past max_connections).
    let mut holders: Vec<Child> = (0..4).map(|_| hold_connection(&db)).collect();
    db.wait_for_value(
        "SELECT COUNT(*) >= 3 FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(60)'",
        "1",
        Duration::from_secs(10),
    );
    let full = alive(&db, &[]);
    for holder in &mut holders {
        let _ = holder.kill();
        let _ = holder.wait();
    }
    assert_eq!(full.status(), "warning", "{:#}", full.json);
    assert!(full.message().contains("1040"), "{}", full.message());
    assert_eq!(full.value("mysql.up"), 1.0);
    assert_eq!(full.value("mysql.accepting_connections"), 0.0);

    db.kill();
    let down = alive(&db, &[]);
    assert_eq!(down.status(), "critical", "{:#}", down.json);
    assert_eq!(down.value("mysql.up"), 0.0);
}
