//! `pg-consistency` on a real primary and standby: ok on a healthy pair
//! (also while the primary is being written to); after the standby is
//! promoted and rows are changed on it, the table, the key range and the
//! keys are reported; bad `tables` settings say what is wrong.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use watchpost_e2e::pg::PgPair;
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

/// Tables of several shapes: an integer key, a composite key with text,
/// and two the probe must leave alone (no primary key, unlogged).
const SCHEMA: &str = "
CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12, 2), note text, opened timestamptz);
INSERT INTO accounts SELECT g, g * 1.25, 'account ' || g, '2024-01-01'::timestamptz + g * interval '1 hour'
  FROM generate_series(1, 5000) g;
CREATE TABLE order_lines (order_id int, line int, sku text, qty float8, PRIMARY KEY (order_id, line));
INSERT INTO order_lines SELECT g / 4, g % 4, 'sku-' || g, g / 3.0 FROM generate_series(1, 3000) g;
CREATE TABLE no_key (v int);
INSERT INTO no_key SELECT generate_series(1, 100);
CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);
INSERT INTO scratch SELECT generate_series(1, 100);
ANALYZE;
";

fn consistency(pair: &PgPair, settings: &[(&str, &str)]) -> Checked {
    let mut args = pair.target_args();
    args.extend(sets(settings));
    args.extend(["--timeout".to_string(), "20s".to_string()]);
    check(&probes::path("pg-consistency"), &args)
}

fn prepared_pair() -> PgPair {
    let pair = PgPair::start();
    pair.primary.execute(SCHEMA);
    pair.primary.execute("GRANT pg_read_all_data TO watchpost");
    pair.wait_for_replay();
    pair
}

#[test]
fn a_healthy_pair_is_consistent() {
    let pair = prepared_pair();
    let report = consistency(&pair, &[("rows_per_chunk", "400"), ("time_budget", "10s")]);
    // Every table is compared but the one without a key, which is named:
    // "all tables" never silently means "some".
    assert_eq!(
        (report.code, report.status()),
        (1, "warning"),
        "{:#}",
        report.json
    );
    assert_eq!(
        report.message(),
        "public.no_key not compared: no primary key to compare it chunk by chunk"
    );
    assert_eq!(report.value("postgresql.consistency.skipped_tables"), 1.0);
    for (table, rows) in [("public.accounts", 5000.0), ("public.order_lines", 3000.0)] {
        let value = |name| {
            report
                .value_where(name, "table", table)
                .unwrap_or_else(|| panic!("no {name} for {table}: {:#}", report.json))
        };
        assert_eq!(value("postgresql.consistency.mismatched_chunks"), 0.0);
        assert_eq!(value("postgresql.consistency.compared_rows"), rows);
        assert_eq!(value("postgresql.consistency.complete"), 1.0);
    }
    // Unlogged tables are not replicated, so not compared (nor named).
    let tables: Vec<&str> = report
        .measurements("postgresql.consistency.compared_rows")
        .iter()
        .filter_map(|m| m["attributes"]["table"].as_str())
        .collect();
    assert_eq!(tables.len(), 2, "{tables:?}");
}

#[test]
fn a_table_with_row_level_security_is_named_as_not_compared() {
    let pair = prepared_pair();
    pair.primary.execute(
        "CREATE TABLE secret (id int PRIMARY KEY, owner text); \
         INSERT INTO secret VALUES (1, 'a'), (2, 'b'); \
         ALTER TABLE secret ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY own ON secret USING (owner = current_user)",
    );
    pair.wait_for_replay();
    let report = consistency(&pair, &[("tables", "accounts, secret")]);
    assert_eq!(report.status(), "warning", "{:#}", report.json);
    assert!(
        report.message().contains(
            "secret not compared: row-level security hides rows from the probe's role: \
             use a role with BYPASSRLS"
        ),
        "{:#}",
        report.json
    );
    assert_eq!(report.value("postgresql.consistency.skipped_tables"), 1.0);
    assert!(
        report
            .value_where(
                "postgresql.consistency.compared_rows",
                "table",
                "public.secret"
            )
            .is_none()
    );
    // A role that bypasses row-level security compares it.
    pair.primary.execute("ALTER ROLE watchpost BYPASSRLS");
    let report = consistency(&pair, &[("tables", "accounts, secret")]);
    assert_eq!(report.status(), "ok", "{:#}", report.json);
    assert_eq!(
        report.value_where(
            "postgresql.consistency.compared_rows",
            "table",
            "public.secret"
        ),
        Some(2.0)
    );
}

#[test]
fn rows_being_written_on_the_primary_are_not_reported() {
    let pair = prepared_pair();
    let writing = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut client = pair.primary.connect();
            let started = Instant::now();
            let mut i = 0;
            while writing.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                i += 1;
                client
                    .batch_execute(&format!(
                        "UPDATE accounts SET balance = balance + 1 WHERE id = {}",
                        1 + (i * 37) % 5000
                    ))
                    .expect("update on the primary");
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let report = consistency(
            &pair,
            &[
                ("rows_per_chunk", "200"),
                ("time_budget", "10s"),
                ("tables", "accounts, order_lines"),
            ],
        );
        writing.store(false, Ordering::Relaxed);
        assert_eq!(report.status(), "ok", "{:#}", report.json);
        assert_eq!(
            report.value_where(
                "postgresql.consistency.mismatched_chunks",
                "table",
                "public.accounts"
            ),
            Some(0.0)
        );
    });
}

/// `(lower, upper]` of the range reported before `marker` in `message`,
/// with `start`/`end` for open ends.
fn reported_range(message: &str, column: &str, marker: &str) -> (Option<i64>, Option<i64>) {
    let at = message
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {message}"));
    let prefix = format!("{column} in ");
    let start = message[..at]
        .rfind(&prefix)
        .unwrap_or_else(|| panic!("no range before {marker:?} in {message}"))
        + prefix.len();
    let range = &message[start..];
    let end = range.find(']').expect("a range ends with ]");
    let (lower, upper) = range[1..end].split_once(", ").expect("two bounds");
    (lower.parse().ok(), upper.parse().ok())
}

#[test]
fn rows_changed_on_a_promoted_standby_are_reported_with_their_key_range() {
    let mut pair = prepared_pair();
    pair.standby.promote();
    pair.standby.execute(
        "UPDATE accounts SET balance = balance + 1 WHERE id = 2345;
         DELETE FROM order_lines WHERE order_id = 100 AND line = 2;",
    );
    let report = consistency(&pair, &[("rows_per_chunk", "400"), ("time_budget", "10s")]);
    assert_eq!(
        (report.code, report.status()),
        (2, "critical"),
        "{:#}",
        report.json
    );
    assert_eq!(
        report.value_where(
            "postgresql.consistency.mismatched_chunks",
            "table",
            "public.accounts"
        ),
        Some(1.0),
        "{:#}",
        report.json
    );
    assert_eq!(
        report.value_where(
            "postgresql.consistency.mismatched_chunks",
            "table",
            "public.order_lines"
        ),
        Some(1.0)
    );
    let message = report.message();
    assert!(message.contains("public.accounts: 1 of "), "{message}");
    assert!(message.contains("id=2345 changed"), "{message}");
    let (lower, upper) = reported_range(message, "id", "id=2345 changed");
    assert!(
        lower.is_none_or(|l| l < 2345) && upper.is_none_or(|u| u >= 2345),
        "{message}"
    );
    assert!(message.contains("public.order_lines: 1 of "), "{message}");
    assert!(
        message.contains("order_id=100, line=2 missing on standby"),
        "{message}"
    );
}

#[test]
fn tables_that_cannot_be_compared_are_named() {
    let pair = prepared_pair();
    let missing = consistency(&pair, &[("tables", "accounts, nope")]);
    assert_eq!(missing.status(), "unknown", "{:#}", missing.json);
    assert!(
        missing.message().contains("table nope does not exist"),
        "{}",
        missing.message()
    );
    let keyless = consistency(&pair, &[("tables", "no_key")]);
    assert!(
        keyless
            .message()
            .contains("no_key not compared: no primary key"),
        "{}",
        keyless.message()
    );
    let one = consistency(&pair, &[("tables", "public.order_lines")]);
    assert_eq!(one.status(), "ok", "{:#}", one.json);
    assert_eq!(
        one.measurements("postgresql.consistency.compared_rows")
            .len(),
        1
    );
}
