//! `examples/postgres-node.toml` is a valid config, and with its DSNs
//! pointed at a real, healthy pair (holding the tables its audits name),
//! every probe in it runs and reports `ok`.

use std::path::PathBuf;
use watchpost_e2e::cli::{assert_no_panic, run, watchpost, watchpost_run};
use watchpost_e2e::pg::PgPair;
use watchpost_e2e::report::check;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/postgres-node.toml")
}

#[test]
fn the_example_config_is_valid() {
    let outcome = watchpost_run(["validate", "-c", &example().display().to_string()]);
    assert_no_panic(&outcome);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    assert!(
        outcome.stdout.contains("valid (6 probes, 2 targets"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn every_probe_of_the_example_is_ok_on_a_healthy_pair() {
    let pair = PgPair::start();
    pair.primary.execute(
        "CREATE EXTENSION amcheck;
         GRANT EXECUTE ON FUNCTION bt_index_check(regclass) TO watchpost;
         GRANT pg_read_all_data TO watchpost;
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int, number int, total numeric(12, 2),
                              UNIQUE (customer_id, number));
         INSERT INTO orders SELECT g, g % 100, g, g * 3.5 FROM generate_series(1, 2000) g;
         CREATE TABLE order_lines (order_id int REFERENCES orders, line int, sku text,
                                   PRIMARY KEY (order_id, line));
         INSERT INTO order_lines SELECT 1 + g % 2000, g, 'sku-' || g FROM generate_series(1, 5000) g;
         ANALYZE;",
    );
    pair.wait_for_replay();

    let text = std::fs::read_to_string(example()).expect("read the example");
    let primary_dsn = "host=127.0.0.1 port=5432 user=watchpost dbname=app connect_timeout=5";
    let standby_dsn = "host=db-2 port=5432 user=watchpost dbname=app connect_timeout=5";
    assert!(
        text.contains(primary_dsn) && text.contains(standby_dsn),
        "the example's DSNs changed"
    );
    let text = text
        .replace(primary_dsn, &pair.primary.dsn())
        .replace(standby_dsn, &pair.standby.dsn());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postgres-node.toml");
    std::fs::write(&config, text).unwrap();

    for probe in [
        "alive-primary",
        "alive-standby",
        "replication",
        "consistency",
        "integrity",
        "performance",
    ] {
        let args = vec!["-c".to_string(), config.display().to_string()];
        let report = check(std::path::Path::new(probe), &args);
        assert_eq!(
            (report.code, report.status()),
            (0, "ok"),
            "{probe}: {:#}",
            report.json
        );
    }
}

fn failover_example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/postgres-failover.toml")
}

/// The failover example is valid and ships the settings the failover tests
/// (`pg_remediation.rs`) and the failover benchmark use.
#[test]
fn the_failover_example_is_valid_and_ships_the_tested_settings() {
    let path = failover_example().display().to_string();
    let outcome = watchpost_run(["validate", "-c", &path]);
    assert_no_panic(&outcome);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    let text = std::fs::read_to_string(failover_example()).unwrap();
    for setting in [
        "every = \"250ms\"",
        "timeout = \"400ms\"",
        "for = 3",
        "max_lag_bytes = 1048576",
    ] {
        assert!(text.contains(setting), "{setting} not in {path}");
    }
}

/// The OTLP example is valid.
#[test]
fn the_otel_collector_example_is_valid() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/otel-collector.toml")
        .display()
        .to_string();
    let mut command = watchpost();
    command
        .args(["validate", "-c", &path])
        .env("OTLP_TOKEN", "t");
    let outcome = run(command);
    assert_no_panic(&outcome);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
}
