//! `pg-performance` on a real server: the canary's latency and the load
//! numbers are reported; a latency limit below the canary's latency, or
//! a transaction held open past its limit, makes it a warning; the slowest
//! statements come from pg_stat_statements.

use std::time::Duration;
use watchpost_e2e::pg::PgPair;
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn performance(pair: &PgPair, settings: &[(&str, &str)]) -> Checked {
    let mut args = pair.target_args();
    args.extend(sets(settings));
    check(&probes::path("pg-performance"), &args)
}

fn canary(report: &Checked, statistic: &str) -> f64 {
    let series = report
        .measurements("postgresql.canary.duration")
        .into_iter()
        .find(|m| m["attributes"]["statistic"] == statistic)
        .unwrap_or_else(|| panic!("no {statistic} canary in {:#}", report.json));
    assert_eq!(series["unit"], "s");
    series["value"].as_f64().expect("a number")
}

#[test]
fn the_canary_latency_and_load_are_reported() {
    let pair = PgPair::start();
    let report = performance(&pair, &[]);
    assert_eq!(
        (report.code, report.status()),
        (0, "ok"),
        "{:#}",
        report.json
    );
    let (p50, max) = (canary(&report, "p50"), canary(&report, "max"));
    assert!(p50 > 0.0 && p50 <= max, "p50 {p50}, max {max}");
    // Each of the 5 tries is one sample of the semantic convention's
    // histogram, the largest of them the max.
    let tries = report.measurements("db.client.operation.duration");
    assert_eq!(tries.len(), 5, "{:#}", report.json);
    for t in &tries {
        assert_eq!(t["attributes"]["db.system.name"], "postgresql");
        assert_eq!(t["unit"], "s");
    }
    let longest = tries
        .iter()
        .filter_map(|t| t["value"].as_f64())
        .fold(0.0, f64::max);
    assert_eq!(longest, max);
    let used = report.value("postgresql.connections.used_ratio");
    // This probe's own session counts, out of max_connections = 20.
    assert!((0.05..=1.0).contains(&used), "{used}");
    assert!(report.value("postgresql.xid.age") > 0.0);
    assert!(report.value("postgresql.transaction.oldest_age") >= 0.0);
    let hit = report.value("postgresql.cache.hit_ratio");
    assert!((0.0..=1.0).contains(&hit), "{hit}");
    assert!(
        report.message().contains("canary p50"),
        "{}",
        report.message()
    );
}

#[test]
fn a_latency_limit_below_the_canary_is_a_warning() {
    let pair = PgPair::start();
    let report = performance(
        &pair,
        &[
            ("latency_warning", "0.0000001"),
            ("latency_critical", "10"),
            ("tries", "3"),
        ],
    );
    assert_eq!(
        (report.code, report.status()),
        (1, "warning"),
        "{:#}",
        report.json
    );
    assert!(canary(&report, "p50") > 0.0000001);
    assert!(
        report.message().contains("over 3 tries (limits"),
        "{}",
        report.message()
    );
}

#[test]
fn a_transaction_held_open_is_a_warning_past_its_limit() {
    let pair = PgPair::start();
    let mut holder = pair.primary.connect();
    holder
        .batch_execute("BEGIN; SELECT txid_current();")
        .expect("open a transaction");
    std::thread::sleep(Duration::from_millis(1500));
    let report = performance(
        &pair,
        &[
            ("transaction_warning", "1"),
            ("transaction_critical", "600"),
        ],
    );
    assert_eq!(report.status(), "warning", "{:#}", report.json);
    assert!(report.value("postgresql.transaction.oldest_age") >= 1.0);
    holder.batch_execute("COMMIT").expect("commit");
}

#[test]
fn the_slowest_statements_come_from_pg_stat_statements() {
    let pair = PgPair::start();
    let without = performance(&pair, &[]);
    assert!(
        without
            .message()
            .contains("pg_stat_statements is not installed"),
        "{}",
        without.message()
    );
    pair.primary.execute("CREATE EXTENSION pg_stat_statements");
    pair.primary.execute("SELECT pg_sleep(0.3)");
    let report = performance(
        &pair,
        &[("statement_warning", "0.2"), ("statement_critical", "5")],
    );
    let sleep = report
        .measurements("postgresql.statement.mean_duration")
        .into_iter()
        .find(|m| m["attributes"]["db.query.text"] == "SELECT pg_sleep($1)")
        .unwrap_or_else(|| panic!("no pg_sleep statement in {:#}", report.json));
    assert!(sleep["value"].as_f64().unwrap() >= 0.3, "{sleep}");
    assert_eq!(report.status(), "warning", "{:#}", report.json);
    assert!(
        report.message().contains("SELECT pg_sleep($1)"),
        "{}",
        report.message()
    );
}
