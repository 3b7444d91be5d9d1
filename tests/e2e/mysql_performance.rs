//! `mysql-performance` on a real MariaDB: a quiet server is ok with every
//! part measured; a transaction left open is past its limit with its
//! session named, also while another client reads
//! `information_schema.INNODB_TRX` so often that InnoDB never refreshes
//! its cached snapshot of it (it does only after 0.1 s without a read:
//! that table stayed empty for the whole test before the probe stopped
//! reading it); an account without `PROCESS` leaves that part `unknown`
//! naming the grant while the others report.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use watchpost_e2e::mariadb::{Mariadb, program};
use watchpost_e2e::pg::wait_until;
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn performance(dsn: &str, settings: &[(&str, &str)]) -> Checked {
    let mut args = vec!["--target".to_string(), format!("primary={dsn}")];
    args.extend(sets(settings));
    check(&probes::path("mysql-performance"), &args)
}

/// A root session on `db` running `sql`, its output read line by line
/// into the returned list; killed on drop.
struct Client {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Client {
    fn start(db: &Mariadb, sql: &str) -> Client {
        let mut child = Command::new(program("mariadb"))
            .arg("--no-defaults")
            .arg(format!("--socket={}", db.socket().display()))
            .args(["-uroot", "--batch", "--skip-column-names", "--unbuffered"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the mariadb client");
        // The statements on standard input (too long for an argument),
        // written while the client runs them.
        let mut input = child.stdin.take().expect("piped stdin");
        let sql = sql.to_string();
        std::thread::spawn(move || {
            let _ = input.write_all(sql.as_bytes());
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Client { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

    // A client reading INNODB_TRX every 20 ms, from before the
    // transaction opens until after the probe ran.
    let poll = "SELECT COUNT(*) FROM information_schema.INNODB_TRX; DO SLEEP(0.02);".repeat(3000);
    let reader = Client::start(&db, &poll);
    wait_until(Duration::from_secs(20), "the reader's first count", || {
        !reader.lines().is_empty()
    });
    // A transaction that wrote a row and stays open.
    let _holder = Client::start(
        &db,
        "START TRANSACTION; UPDATE app.t SET id = 2 WHERE id = 1; SELECT SLEEP(60)",
    );
    let sleeping = "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(60)'";
    wait_until(Duration::from_secs(20), "the holder's SLEEP", || {
        db.try_execute(sleeping)
            .is_ok_and(|id| !id.trim().is_empty())
    });
    let session = db.value(sleeping);
    // InnoDB prints whole seconds: past the critical limit of 2 s.
    std::thread::sleep(Duration::from_millis(3500));
    let long = performance(
        &db.dsn(),
        &[("transaction_warning", "1"), ("transaction_critical", "2")],
    );
    let seen = reader.lines();
    // Without PROCESS the transactions cannot be seen: unknown, named.
    db.execute(
        "CREATE USER 'noprocess'@'%'; GRANT SELECT, SLAVE MONITOR ON *.* TO 'noprocess'@'%'",
    );
    let blind = performance(&db.dsn_as("noprocess"), &[]);
    assert_eq!(
        (long.code, long.status()),
        (2, "critical"),
        "{:#}\nINNODB_TRX counts the reader saw: {seen:?}",
        long.json
    );
    let age = long.value("mysql.transaction.oldest_age");
    assert!((3.0..30.0).contains(&age), "{age}: {:#}", long.json);
    assert!(
        long.message().contains(&format!("session {session}")),
        "{} / {session}",
        long.message()
    );
    assert!(
        long.message().contains("idle in transaction") || long.message().contains("SLEEP(60)"),
        "{}",
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
