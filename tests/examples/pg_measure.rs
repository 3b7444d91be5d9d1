//! Measures the PostgreSQL probes on a fresh test pair (the harness's
//! primary and streaming standby): the duration of one run of each probe
//! (`watchpost check --format json`, `duration_ms`, several runs), and how
//! `pg-consistency` scales with the number of rows compared.
//!
//! ```sh
//! cargo run -p watchpost-e2e --example pg_measure            # debug agent
//! cargo run -p watchpost-e2e --example pg_measure -- 5 10000,100000,1000000
//! ```
//!
//! Arguments: runs per probe (default 5), table sizes for the scaling
//! runs (default `10000,100000,1000000`), rows per chunk (default 1000).

use watchpost_e2e::pg::PgPair;
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

const SETUP: &str = "
GRANT pg_read_all_data TO watchpost;
CREATE EXTENSION amcheck;
GRANT EXECUTE ON FUNCTION bt_index_check(regclass) TO watchpost;
CREATE EXTENSION pg_stat_statements;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, number int, total numeric(12, 2));
INSERT INTO orders SELECT g, g % 1000, g, g * 1.5 FROM generate_series(1, 10000) g;
CREATE UNIQUE INDEX orders_number ON orders (customer_id, number);
CREATE TABLE order_lines (order_id int, line int, sku text, PRIMARY KEY (order_id, line));
INSERT INTO order_lines SELECT 1 + g % 10000, g, 'sku-' || g FROM generate_series(1, 30000) g;
";

/// A probe to time: crate name, settings, label.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

fn run(probe: &str, pair: &PgPair, settings: &[(&str, &str)], timeout: &str) -> Checked {
    let mut args = pair.target_args();
    args.extend(sets(settings));
    args.extend(["--timeout".to_string(), timeout.to_string()]);
    let report = check(&probes::path(probe), &args);
    assert!(
        report.json["error"].is_null(),
        "{probe} failed: {:#}",
        report.json
    );
    report
}

fn stats(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    format!(
        "min {:8.1} ms  median {:8.1} ms  max {:8.1} ms",
        values[0],
        median,
        values[values.len() - 1]
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let sizes: Vec<u64> = args
        .get(1)
        .map(|a| a.split(',').filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let chunk = args.get(2).cloned().unwrap_or_else(|| "1000".to_string());
    let agent = watchpost_e2e::cli::binary();
    let build = if agent.to_string_lossy().contains("/release/") {
        "release"
    } else {
        "debug"
    };
    println!(
        "agent: {} ({build} build); probes: release components",
        agent.display()
    );

    let pair = PgPair::start();
    pair.primary.execute(SETUP);
    pair.primary.execute("VACUUM ANALYZE");
    pair.wait_for_replay();

    let integrity: &[(&str, &str)] = &[
        ("check_indexes", "orders, order_lines"),
        ("unique.numbers", "orders(customer_id, number)"),
        ("not_null.totals", "orders(total)"),
        ("range.totals", "orders(total) 0..1000000"),
        ("orphans.lines", "order_lines(order_id) -> orders(id)"),
    ];
    let cases: [Case; 5] = [
        ("pg-alive", &[], "pg-alive (primary)"),
        ("pg-replication", &[], "pg-replication (both sides)"),
        (
            "pg-consistency",
            &[("time_budget", "30s")],
            "pg-consistency (10k + 30k rows)",
        ),
        (
            "pg-integrity",
            integrity,
            "pg-integrity (checksums, amcheck on 4 indexes, 4 audits over 40k rows)",
        ),
        ("pg-performance", &[], "pg-performance (5 canary tries)"),
    ];
    println!("\none run of each probe, {runs} runs:");
    for (probe, settings, label) in cases {
        let durations: Vec<f64> = (0..runs)
            .map(|_| {
                let report = run(probe, &pair, settings, "60s");
                assert_eq!(report.status(), "ok", "{probe}: {:#}", report.json);
                report.duration_ms()
            })
            .collect();
        println!("  {label:<75} {}", stats(durations));
    }

    println!(
        "\npg-consistency scaling (table of (bigint, text, float8, timestamptz), rows_per_chunk {chunk}):"
    );
    let mut loaded = 0u64;
    pair.primary
        .execute("CREATE TABLE scale (id bigint PRIMARY KEY, a text, b float8, c timestamptz)");
    for size in sizes {
        pair.primary.execute(&format!(
            "INSERT INTO scale SELECT g, md5(g::text), g * 1.5, now() FROM generate_series({}, {size}) g",
            loaded + 1
        ));
        pair.primary.execute("VACUUM ANALYZE scale");
        loaded = size;
        pair.wait_for_replay();
        let report = run(
            "pg-consistency",
            &pair,
            &[
                ("tables", "scale"),
                ("rows_per_chunk", &chunk),
                ("time_budget", "600s"),
            ],
            "650s",
        );
        let rows = report
            .value_where(
                "postgresql.consistency.compared_rows",
                "table",
                "public.scale",
            )
            .unwrap_or(0.0);
        let seconds = report
            .value_where("postgresql.consistency.duration", "table", "public.scale")
            .unwrap_or(f64::NAN);
        println!(
            "  {size:>9} rows: {rows:>9.0} compared in {seconds:7.2} s = {:>9.0} rows/s (run {:.0} ms, {})",
            rows / seconds,
            report.duration_ms(),
            report.status()
        );
    }
}
