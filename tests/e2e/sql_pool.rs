//! The agent's database service across runs, which `watchpost check` (one
//! run per process) cannot show: a target's pooled session serves one run
//! after another, and after the server restarts, the dead pooled session
//! is replaced without the next statement failing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use watchpost::sql::{Error, Rows, SqlTargets, TargetSpec, Value};
use watchpost_e2e::pg::PgPair;

/// The agent's database service with one target, `primary`.
struct Service {
    targets: SqlTargets,
    runtime: tokio::runtime::Runtime,
}

impl Service {
    fn on(dsn: &str) -> Service {
        let specs = BTreeMap::from([("primary".to_string(), TargetSpec::new(dsn.to_string()))]);
        Service {
            targets: SqlTargets::new(&specs).expect("targets"),
            runtime: tokio::runtime::Runtime::new().expect("a tokio runtime"),
        }
    }

    /// `statement` as one probe run would send it: its own deadline
    /// (10 s) and a memory budget of 8 MiB.
    fn run(&self, statement: &str) -> Result<Rows, Error> {
        let deadline = Instant::now() + Duration::from_secs(10);
        self.runtime.block_on(
            self.targets
                .query("primary", statement, &[], deadline, 8 << 20),
        )
    }
}

fn backend_pid(rows: Result<Rows, Error>) -> i64 {
    match rows {
        Ok(rows) => match rows.rows.first().and_then(|row| row.first()) {
            Some(Value::Int(pid)) => *pid,
            other => panic!("not a pid: {other:?}"),
        },
        Err(error) => panic!("the statement failed: {error:?}"),
    }
}

#[test]
fn pooled_sessions_serve_run_after_run_and_survive_a_restart() {
    let mut pair = PgPair::start();
    let service = Service::on(&pair.primary.dsn());
    let run = |statement: &str| service.run(statement);

    let first = backend_pid(run("SELECT pg_backend_pid()"));
    let second = backend_pid(run("SELECT pg_backend_pid()"));
    assert_eq!(first, second, "the second run got a new session");

    pair.primary.stop();
    pair.primary.start();
    let after_restart = backend_pid(run("SELECT pg_backend_pid()"));
    assert_ne!(after_restart, first);
    assert_eq!(backend_pid(run("SELECT pg_backend_pid()")), after_restart);

    // A target whose server is gone is unreachable, not an error of the pool.
    pair.primary.stop();
    match run("SELECT 1") {
        Err(Error::Unreachable(message)) => {
            assert!(message.contains("target `primary`"), "{message}")
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

/// A statement prepared with SQL `PREPARE` could take the name of one the
/// driver cached and forge another probe's result: a session that holds
/// one is closed, never pooled; a session that held a large row too (its
/// read buffer stays grown). Ordinary sessions stay pooled.
#[test]
fn sessions_that_a_statement_changed_for_good_are_not_pooled() {
    let pair = PgPair::start();
    let service = Service::on(&pair.primary.dsn());
    let run = |statement: &str| service.run(statement);
    let first = backend_pid(run("SELECT pg_backend_pid()"));
    assert_eq!(backend_pid(run("SELECT pg_backend_pid()")), first);
    run("PREPARE forged AS SELECT true AS in_recovery").expect("PREPARE runs");
    let next = backend_pid(run("SELECT pg_backend_pid()"));
    assert_ne!(
        next, first,
        "the session with a SQL-prepared statement was pooled"
    );
    match run("SELECT count(*) FROM pg_prepared_statements WHERE from_sql") {
        Ok(rows) => assert!(matches!(rows.rows[0][0], Value::Int(0)), "{rows:?}"),
        Err(error) => panic!("{error:?}"),
    }
    // A 2 MB row: returned, then its session is closed.
    let same = backend_pid(run("SELECT pg_backend_pid()"));
    run("SELECT repeat('x', 2000000)").expect("a 2 MB row within the budget");
    assert_ne!(backend_pid(run("SELECT pg_backend_pid()")), same);
}

/// A probe's cached statement whose result type a schema change altered
/// fails on the server with SQLSTATE 0A000 ("cached plan must not change
/// result type", a message the server translates under its
/// `lc_messages`): the agent prepares it again and the run succeeds,
/// deciding on the code alone.
#[test]
fn a_statement_a_schema_change_made_stale_is_prepared_again() {
    let pair = PgPair::start();
    pair.primary.execute(&format!(
        "CREATE TABLE stale_plan (a int); INSERT INTO stale_plan VALUES (1); \
             GRANT SELECT ON stale_plan TO {}",
        watchpost_e2e::pg::MONITOR_USER
    ));
    let service = Service::on(&pair.primary.dsn());
    let run = |statement: &str| service.run(statement);
    let before = run("SELECT * FROM stale_plan").expect("the first run");
    assert_eq!(before.columns, ["a"]);
    pair.primary
        .execute("ALTER TABLE stale_plan ADD COLUMN b int DEFAULT 2");
    let after = run("SELECT * FROM stale_plan").expect("the run after the schema change");
    assert_eq!(after.columns, ["a", "b"]);
    assert_eq!(after.rows.len(), 1);
}
