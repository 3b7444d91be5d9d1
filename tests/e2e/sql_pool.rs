//! The agent's database service across runs, which `watchpost check` (one
//! run per process) cannot show: a target's pooled session serves one run
//! after another, and after the server restarts, the dead pooled session
//! is replaced without the next statement failing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use watchpost::sql::{Error, Rows, SqlTargets, TargetSpec, Value};
use watchpost_e2e::pg::PgPair;

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
    let specs = BTreeMap::from([("primary".to_string(), TargetSpec::new(pair.primary.dsn()))]);
    let targets = SqlTargets::new(&specs).expect("targets");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    // Each call stands for one probe run, with its own deadline.
    let run = |statement: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        runtime.block_on(targets.query("primary", statement, &[], deadline, 1 << 20))
    };

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
