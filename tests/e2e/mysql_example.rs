//! `examples/mariadb-node.toml` is a valid config, and with its DSNs
//! pointed at a real, healthy MariaDB pair (with `pt-heartbeat` writing
//! the heartbeat row), every probe in it runs and reports `ok`.

use std::path::PathBuf;
use watchpost_e2e::cli::{assert_no_panic, watchpost_run};
use watchpost_e2e::mariadb::{HeartbeatWriter, MariadbPair};
use watchpost_e2e::report::check;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/mariadb-node.toml")
}

#[test]
fn mysql_the_example_config_is_valid_and_ok_on_a_healthy_pair() {
    let outcome = watchpost_run(["validate", "-c", &example().display().to_string()]);
    assert_no_panic(&outcome);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    assert!(
        outcome.stdout.contains("valid (6 probes, 2 targets"),
        "{}",
        outcome.stdout
    );

    let pair = MariadbPair::start();
    pair.primary.execute(
        "CREATE TABLE app.orders (id int PRIMARY KEY, total decimal(12,2)); \
         INSERT INTO app.orders SELECT seq, seq * 3.5 FROM app.seq_1_to_2000",
    );
    let _writer = HeartbeatWriter::start(&pair.primary);
    pair.sync();

    let text = std::fs::read_to_string(example()).expect("read the example");
    let primary_dsn = "mysql://watchpost@127.0.0.1:3306/app";
    let replica_dsn = "mysql://watchpost@db-2:3306/app";
    let password = "password_file = \"/etc/watchpost/mysql-password\"\n";
    assert!(
        text.contains(primary_dsn) && text.contains(replica_dsn) && text.contains(password),
        "the example's DSNs changed"
    );
    let text = text
        .replace(primary_dsn, &pair.primary.dsn())
        .replace(replica_dsn, &pair.replica.dsn())
        .replace(password, "");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("mariadb-node.toml");
    std::fs::write(&config, text).expect("write the config");

    for probe in [
        "alive-primary",
        "alive-replica",
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
