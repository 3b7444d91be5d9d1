//! The `mysql` target kind on a real MariaDB (issue 27): the agent's
//! database service keeps the PostgreSQL driver's promises. A probe on an
//! account that could write cannot (every statement in `START TRANSACTION
//! READ ONLY`); a user variable, a `GET_LOCK` lock or a temporary table
//! does not reach the next run on the same pooled session
//! (`COM_RESET_CONNECTION`); lock waits and statements are bounded; rows
//! count against the probe's memory cap; errors keep MySQL's number; the
//! engine is MariaDB; a dead pooled session is replaced; an account with
//! `ALL PRIVILEGES` is refused with `strict_privileges`. Through the
//! `sqlrun` test probe, the same from inside the sandbox.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use watchpost::sql::{Error, Rows, SqlTargets, TargetSpec, Value};
use watchpost_e2e::mariadb::{ADMIN_USER, Mariadb, PASSWORD, PASSWORD_USER};
use watchpost_e2e::probes;
use watchpost_e2e::report::{check, sets};

struct Service {
    targets: SqlTargets,
    runtime: tokio::runtime::Runtime,
}

impl Service {
    fn new(specs: &[(&str, TargetSpec)]) -> Service {
        let specs: BTreeMap<String, TargetSpec> = specs
            .iter()
            .map(|(name, spec)| (name.to_string(), spec.clone()))
            .collect();
        Service {
            targets: SqlTargets::new(&specs).expect("targets"),
            runtime: tokio::runtime::Runtime::new().expect("a tokio runtime"),
        }
    }

    /// One statement as one probe run would, within `within`.
    fn run_within(
        &self,
        target: &str,
        statement: &str,
        params: &[Value],
        within: Duration,
    ) -> Result<Rows, Error> {
        let deadline = Instant::now() + within;
        self.runtime.block_on(
            self.targets
                .query(target, statement, params, deadline, 1 << 20),
        )
    }

    fn run(&self, target: &str, statement: &str) -> Result<Rows, Error> {
        self.run_within(target, statement, &[], Duration::from_secs(10))
    }

    /// The single value `statement` returns.
    fn value(&self, target: &str, statement: &str) -> Value {
        match self.run(target, statement) {
            Ok(rows) => rows.rows[0][0].clone(),
            Err(error) => panic!("`{statement}` failed: {error:?}"),
        }
    }
}

/// A write refused as read-only: by the agent before it is sent (SQLSTATE
/// 25006, the statement is not on the read-only list) or by the server
/// (ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, 1792).
fn refused_as_read_only(outcome: Result<Rows, Error>) {
    match outcome {
        Err(Error::Query(q)) if q.code == "25006" || q.number == Some(1792) => {}
        other => panic!("expected a read-only refusal, got {other:?}"),
    }
}

/// The error number of a failed statement.
fn number(outcome: Result<Rows, Error>) -> u32 {
    match outcome {
        Err(error) => error
            .number()
            .unwrap_or_else(|| panic!("no error number in {error:?}")),
        Ok(rows) => panic!("expected an error, got {rows:?}"),
    }
}

#[test]
fn mysql_probe_statements_cannot_write_or_leave_anything_in_the_session() {
    let db = Mariadb::start();
    db.execute(
        "CREATE TABLE app.t (id int PRIMARY KEY, v varchar(10)); INSERT INTO app.t VALUES (1, 'a')",
    );
    // An account that may write (its grants only warned about): the
    // transaction is what stops it.
    let mut writer = TargetSpec::new(db.dsn_as(ADMIN_USER));
    writer.read_only = false;
    let service = Service::new(&[
        ("primary", TargetSpec::new(db.dsn_as(ADMIN_USER))),
        ("writer", writer),
    ]);
    let engine = service.runtime.block_on(
        service
            .targets
            .engine("primary", Instant::now() + Duration::from_secs(10)),
    );
    assert_eq!(engine, Ok("mariadb"));
    let session = service.value("primary", "SELECT CONNECTION_ID()");

    // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, also after the session's
    // default was switched to read-write by the run before.
    refused_as_read_only(service.run("primary", "INSERT INTO app.t VALUES (2, 'b')"));
    service
        .run("primary", "SET SESSION TRANSACTION READ WRITE")
        .expect("the SET itself runs");
    refused_as_read_only(service.run("primary", "UPDATE app.t SET v = 'z'"));
    // What could end the read-only transaction inside the statement is
    // not run (a compound statement writes on MariaDB otherwise).
    for hostile in [
        "COMMIT",
        "BEGIN NOT ATOMIC COMMIT; SET SESSION TRANSACTION READ WRITE; \
         INSERT INTO app.t VALUES (3, 'c'); END",
        "/*!100000 BEGIN NOT ATOMIC COMMIT; DELETE FROM app.t; END */",
        "CALL mysql.nothing()",
    ] {
        match service.run("primary", hostile) {
            Err(Error::Query(q)) => assert_eq!(q.code, "25006", "{hostile}: {q:?}"),
            other => panic!("{hostile}: expected a refusal, got {other:?}"),
        }
    }
    refused_as_read_only(service.run("primary", "DELETE FROM app.t"));
    assert_eq!(db.value("SELECT GROUP_CONCAT(id, v) FROM app.t"), "1a");

    // A user variable is gone by the next run.
    service.run("primary", "SET @leak = 42").expect("SET @leak");
    assert_eq!(service.value("primary", "SELECT @leak"), Value::Null);
    // A GET_LOCK lock is released when the run ends.
    assert_eq!(
        service.value("primary", "SELECT GET_LOCK('watchpost_test', 0)"),
        Value::Int(1)
    );
    assert_eq!(db.value("SELECT IS_FREE_LOCK('watchpost_test')"), "1");
    // A read-only transaction takes no temporary table; on a read-write
    // target the one a run makes is gone by the next run.
    refused_as_read_only(service.run("primary", "CREATE TEMPORARY TABLE app.shadow (id int)"));
    let writer_session = service.value("writer", "SELECT CONNECTION_ID()");
    service
        .run("writer", "CREATE TEMPORARY TABLE app.shadow (id int)")
        .expect("a temporary table on a read-write target");
    assert_eq!(
        number(service.run("writer", "SELECT * FROM app.shadow")),
        1146
    );
    assert_eq!(
        service.value("writer", "SELECT CONNECTION_ID()"),
        writer_session
    );
    // A session variable (here the statement bound) is back to its default.
    service
        .run("primary", "SET SESSION sql_mode = 'ANSI_QUOTES'")
        .expect("SET sql_mode");
    assert_ne!(
        service.value("primary", "SELECT @@session.sql_mode"),
        Value::Text("ANSI_QUOTES".into())
    );
    // All of it on the one pooled session.
    assert_eq!(service.value("primary", "SELECT CONNECTION_ID()"), session);
}

#[test]
fn mysql_statements_are_bounded_typed_and_keep_their_error_numbers() {
    let db = Mariadb::start();
    db.execute("CREATE TABLE app.t (id int PRIMARY KEY)");
    let service = Service::new(&[("primary", TargetSpec::new(db.dsn()))]);

    // Parameters (`?`) and values both ways.
    let rows = service
        .run_within(
            "primary",
            "SELECT ? + 1 AS a, ? AS b, 1.5e0 AS c, CAST(2.50 AS DECIMAL(4,2)) AS d, NULL AS e, \
             x'00ff' AS f, DATE '2026-12-06' AS g",
            &[Value::Int(41), Value::Text("hi".into())],
            Duration::from_secs(10),
        )
        .expect("typed values");
    assert_eq!(
        rows.rows[0],
        [
            Value::Int(42),
            Value::Text("hi".into()),
            Value::Float(1.5),
            Value::Text("2.50".into()),
            Value::Null,
            Value::Bytes(vec![0, 255]),
            Value::Text("2026-12-06".into()),
        ]
    );
    assert_eq!(rows.columns[0], "a");

    // A query error keeps MySQL's number and SQLSTATE.
    match service.run("primary", "SELECT * FROM app.missing") {
        Err(Error::Query(q)) => {
            assert_eq!((q.number, q.code.as_str()), (Some(1146), "42S02"), "{q:?}")
        }
        other => panic!("expected a query error, got {other:?}"),
    }

    // A statement longer than the run is stopped (by the server's
    // max_statement_time or the agent's deadline) and the session closed.
    let slow = service.run_within("primary", "SELECT SLEEP(30)", &[], Duration::from_secs(1));
    assert!(matches!(slow, Err(Error::Timeout(_))), "{slow:?}");
    service
        .run("primary", "SELECT 1")
        .expect("the next run works");

    // A lock wait is bounded well inside a long run: ER_LOCK_WAIT_TIMEOUT.
    let mut holder = std::process::Command::new(watchpost_e2e::mariadb::program("mariadb"))
        .arg("--no-defaults")
        .arg(format!("--socket={}", db.socket().display()))
        .args(["-uroot", "-e", "LOCK TABLES app.t WRITE; SELECT SLEEP(20)"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn the lock holder");
    db.wait_for_value(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(20)'",
        "1",
        Duration::from_secs(10),
    );
    let waited = service.run_within(
        "primary",
        "SELECT * FROM app.t",
        &[],
        Duration::from_secs(15),
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(number(waited), 1205);

    // Rows count against the probe's memory cap.
    let deadline = Instant::now() + Duration::from_secs(10);
    let big = service.runtime.block_on(service.targets.query(
        "primary",
        "SELECT REPEAT('x', 100000)",
        &[],
        deadline,
        10_000,
    ));
    assert!(matches!(big, Err(Error::TooLarge { .. })), "{big:?}");
    service
        .run("primary", "SELECT 1")
        .expect("the next run works");
}

#[test]
fn mysql_refusals_restarts_passwords_and_strict_privileges() {
    let mut db = Mariadb::start();
    let mut with_password = TargetSpec::new(db.dsn_as(PASSWORD_USER));
    with_password.password = Some(PASSWORD.to_string());
    let mut wrong_password = with_password.clone();
    wrong_password.password = Some("wrong".to_string());
    let mut strict_admin = TargetSpec::new(db.dsn_as(ADMIN_USER));
    strict_admin.strict_privileges = true;
    let mut strict_monitor = TargetSpec::new(db.dsn());
    strict_monitor.strict_privileges = true;
    let service = Service::new(&[
        ("password", with_password),
        ("wrong", wrong_password),
        ("admin", strict_admin),
        ("monitor", strict_monitor),
    ]);
    assert_eq!(service.value("password", "SELECT 1"), Value::Int(1));
    match service.run("wrong", "SELECT 1") {
        Err(Error::Refused(message)) => assert!(message.contains("1045"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match service.run("admin", "SELECT 1") {
        Err(Error::Refused(message)) => {
            assert!(message.contains("ALL PRIVILEGES"), "{message}");
            assert!(message.contains("strict_privileges"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let before = service.value("monitor", "SELECT CONNECTION_ID()");

    // Down is unreachable; after a restart the dead pooled session is
    // replaced without the run failing.
    db.kill();
    let down = service.run("monitor", "SELECT 1");
    assert!(matches!(down, Err(Error::Unreachable(_))), "{down:?}");
    db.start();
    assert_ne!(service.value("monitor", "SELECT CONNECTION_ID()"), before);
}

#[test]
fn mysql_through_a_probe_reads_and_cannot_write() {
    let db = Mariadb::start();
    db.execute("CREATE TABLE app.t (id int PRIMARY KEY)");
    let target = vec![
        "--target".to_string(),
        format!("primary={}", db.dsn_as(ADMIN_USER)),
    ];
    let run = |sql: &str| {
        let mut args = target.clone();
        args.extend(sets(&[("sql", sql)]));
        check(&probes::path("sqlrun"), &args)
    };
    let read = run("SELECT COUNT(*) AS n, @@version LIKE '%MariaDB%' AS maria FROM app.t");
    assert_eq!(read.status(), "ok", "{:#}", read.json);
    let write = run("INSERT INTO app.t VALUES (1)");
    assert_eq!(write.status(), "critical", "{:#}", write.json);
    let said = write.message().to_lowercase();
    assert!(
        said.contains("read-only") || said.contains("read only"),
        "{}",
        write.message()
    );
    assert_eq!(db.value("SELECT COUNT(*) FROM app.t"), "0");
}
