//! The `sql` capability against a real server, through a test probe that
//! runs one statement from its config (`tests/probes/sqlrun`): typed values
//! both ways, read-only sessions, the statement timeout bounded by the
//! run's deadline, pooled sessions, and the result size limit.

use std::time::Duration;
use watchpost_e2e::pg::{PgPair, wait_until};
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn run(pair: &PgPair, settings: &[(&str, &str)], extra: &[&str]) -> Checked {
    let mut args = pair.target_args();
    args.extend(sets(settings));
    args.extend(extra.iter().map(|s| s.to_string()));
    check(&probes::path("sqlrun"), &args)
}

/// The rendered value of `column` in row 0 of the first run.
fn cell(report: &Checked, column: &str) -> String {
    report
        .measurements("sql.cell")
        .into_iter()
        .find(|m| m["attributes"]["column"] == column && m["attributes"]["run"] == "0")
        .and_then(|m| m["attributes"]["value"].as_str().map(String::from))
        .unwrap_or_else(|| panic!("no column {column} in {:#}", report.json))
}

#[test]
fn values_arrive_typed() {
    let pair = PgPair::start();
    let report = run(
        &pair,
        &[(
            "sql",
            "SELECT 1::int2 AS a, 2::int4 AS b, 3::int8 AS c, 1.5::float8 AS d, 2.5::float4 AS e, \
             'x'::text AS f, NULL::int AS g, true AS h, '\\x00ff'::bytea AS i, \
             -12.345::numeric AS j, '0/16B3748'::pg_lsn AS k, '1 day 02:00:03.5'::interval AS l, \
             42::oid AS m, 'abc'::varchar AS n, '2024-05-06'::date AS o, pg_sleep(0) AS p",
        )],
        &[],
    );
    assert_eq!(report.status(), "ok", "{:#}", report.json);
    let expected = [
        ("a", "int:1"),
        ("b", "int:2"),
        ("c", "int:3"),
        ("d", "float:1.5"),
        ("e", "float:2.5"),
        ("f", "text:x"),
        ("g", "null"),
        ("h", "bool:true"),
        ("i", "bytes:00ff"),
        ("j", "text:-12.345"),
        ("k", "text:0/16B3748"),
        ("l", "text:1 day 02:00:03.5"),
        ("m", "int:42"),
        ("n", "text:abc"),
        ("o", "text:2024-05-06"),
        ("p", "null"),
    ];
    for (column, value) in expected {
        assert_eq!(cell(&report, column), value, "column {column}");
    }
}

#[test]
fn parameters_bind_to_the_placeholders_types() {
    let pair = PgPair::start();
    let report = run(
        &pair,
        &[
            (
                "sql",
                "SELECT $1::int8 + 1 AS a, $2::text AS b, $3::numeric * 2 AS c, $4::float8 AS d, \
                 $5::bool AS e, $6::bytea AS f, $7::int4 AS g, $8::numeric AS h",
            ),
            (
                "params",
                "int:41|text:hi|int:21|float:0.25|bool:true|bytes:00ff|null|float:-1.5",
            ),
        ],
        &[],
    );
    assert_eq!(report.status(), "ok", "{:#}", report.json);
    assert_eq!(cell(&report, "a"), "int:42");
    assert_eq!(cell(&report, "b"), "text:hi");
    assert_eq!(cell(&report, "c"), "text:42");
    assert_eq!(cell(&report, "d"), "float:0.25");
    assert_eq!(cell(&report, "e"), "bool:true");
    assert_eq!(cell(&report, "f"), "bytes:00ff");
    assert_eq!(cell(&report, "g"), "null");
    assert_eq!(cell(&report, "h"), "text:-1.5");

    let mismatch = run(
        &pair,
        &[("sql", "SELECT $1::pg_lsn AS a"), ("params", "int:5")],
        &[],
    );
    assert_eq!(mismatch.status(), "critical", "{:#}", mismatch.json);
    assert!(
        mismatch.message().contains("cast the placeholder"),
        "{}",
        mismatch.message()
    );
}

#[test]
fn sessions_are_read_only() {
    let pair = PgPair::start();
    let report = run(&pair, &[("sql", "CREATE TABLE sneaky (id int)")], &[]);
    assert_eq!(report.status(), "critical", "{:#}", report.json);
    assert!(
        report.message().starts_with("error query:"),
        "{}",
        report.message()
    );
    assert!(report.message().contains("25006"), "{}", report.message());
    assert!(
        report.message().contains("read-only transaction"),
        "{}",
        report.message()
    );
    assert_eq!(
        pair.primary.value("SELECT to_regclass('sneaky') IS NULL"),
        "t"
    );
}

#[test]
fn statements_are_bounded_by_the_runs_deadline() {
    let pair = PgPair::start();
    let shown = run(
        &pair,
        &[("sql", "SHOW statement_timeout")],
        &["--timeout", "3s"],
    );
    let text = cell(&shown, "statement_timeout");
    let ms: f64 = text
        .trim_start_matches("text:")
        .trim_end_matches("ms")
        .parse()
        .unwrap_or_else(|_| panic!("statement_timeout {text}"));
    assert!(ms > 0.0 && ms <= 3000.0, "statement_timeout {text}");

    let slow = run(
        &pair,
        &[("sql", "SELECT pg_sleep(30)")],
        &["--timeout", "1s"],
    );
    assert_ne!(slow.status(), "ok", "{:#}", slow.json);
    assert!(
        slow.duration_ms() < 1100.0,
        "ended after {} ms",
        slow.duration_ms()
    );
    // The server gave up too: no session is left sleeping.
    wait_until(
        Duration::from_secs(5),
        "the server to cancel pg_sleep",
        || {
            pair.primary.value(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'",
        ) == "0"
        },
    );
}

#[test]
fn a_run_reuses_its_pooled_session() {
    let pair = PgPair::start();
    let report = run(
        &pair,
        &[("sql", "SELECT pg_backend_pid() AS pid"), ("repeat", "3")],
        &[],
    );
    let pids: Vec<&str> = report
        .measurements("sql.cell")
        .iter()
        .filter_map(|m| m["attributes"]["value"].as_str())
        .collect();
    assert_eq!(pids.len(), 3, "{:#}", report.json);
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");
}

#[test]
fn oversized_results_and_unsupported_types_are_query_errors() {
    let pair = PgPair::start();
    let big = run(
        &pair,
        &[("sql", "SELECT generate_series(1, 200000) AS n")],
        &[],
    );
    assert!(
        big.message().starts_with("error query:"),
        "{}",
        big.message()
    );
    assert!(big.message().contains("too large"), "{}", big.message());
    let point = run(&pair, &[("sql", "SELECT point(1, 2) AS p")], &[]);
    assert!(
        point.message().contains("cast the column to text"),
        "{}",
        point.message()
    );
}
