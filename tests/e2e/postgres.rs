//! The PostgreSQL probes against a real primary and standby: `pg-alive`
//! (up, role, down, refusing), and what every PostgreSQL probe does with a
//! target it is not granted or cannot reach. The other probes have their
//! own files (`pg_replication.rs`, ...).

use std::time::Duration;
use watchpost_e2e::pg::{MONITOR_USER, PASSWORD_GROUP, PgPair};
use watchpost_e2e::port::free_port;
use watchpost_e2e::probes;
use watchpost_e2e::report::{check, sets};

/// Every PostgreSQL probe, by crate name.
const PG_PROBES: &[&str] = &[
    "pg-alive",
    "pg-replication",
    "pg-consistency",
    "pg-integrity",
    "pg-performance",
];

fn alive(pair_args: &[String], extra: &[(&str, &str)]) -> watchpost_e2e::report::Checked {
    let mut args = pair_args.to_vec();
    args.extend(sets(extra));
    check(&probes::path("pg-alive"), &args)
}

#[test]
fn pg_alive_is_ok_on_both_servers_with_their_roles() {
    let pair = PgPair::start();
    let primary = alive(&pair.target_args(), &[]);
    assert_eq!(
        (primary.code, primary.status()),
        (0, "ok"),
        "{:#}",
        primary.json
    );
    assert_eq!(primary.value("postgresql.up"), 1.0);
    assert_eq!(primary.value("postgresql.accepting_connections"), 1.0);
    assert_eq!(primary.value("postgresql.is_in_recovery"), 0.0);
    let connect = primary.value("postgresql.connect.duration");
    assert!(connect > 0.0, "{connect}");
    assert!(
        primary.message().contains("up as a primary"),
        "{}",
        primary.message()
    );

    let standby = alive(&pair.target_args(), &[("target", "standby")]);
    assert_eq!(
        (standby.code, standby.status()),
        (0, "ok"),
        "{:#}",
        standby.json
    );
    assert_eq!(standby.value("postgresql.is_in_recovery"), 1.0);
    assert!(
        standby.message().contains("standby is up as a standby"),
        "{}",
        standby.message()
    );
}

#[test]
fn pg_alive_runs_as_a_builtin_and_checks_the_required_role() {
    let pair = PgPair::start();
    let args: Vec<String> = [
        "--target".to_string(),
        format!("primary={}", pair.standby.dsn()),
    ]
    .into_iter()
    .chain(sets(&[("role", "primary")]))
    .collect();
    let wrong = check(std::path::Path::new("builtin:pg-alive"), &args);
    assert_eq!(
        (wrong.code, wrong.status()),
        (2, "critical"),
        "{:#}",
        wrong.json
    );
    assert!(
        wrong.message().contains("requires a primary"),
        "{}",
        wrong.message()
    );
    let args: Vec<String> = [
        "--target".to_string(),
        format!("primary={}", pair.primary.dsn()),
    ]
    .into_iter()
    .chain(sets(&[("role", "primary")]))
    .collect();
    let right = check(std::path::Path::new("builtin:pg-alive"), &args);
    assert_eq!(right.status(), "ok", "{:#}", right.json);
}

#[test]
fn pg_alive_is_critical_once_the_primary_is_stopped() {
    let mut pair = PgPair::start();
    pair.primary.stop();
    let report = alive(&pair.target_args(), &[]);
    assert_eq!(
        (report.code, report.status()),
        (2, "critical"),
        "{:#}",
        report.json
    );
    assert_eq!(report.value("postgresql.up"), 0.0);
    assert!(
        report.message().contains("unreachable"),
        "{}",
        report.message()
    );
    // The standby is still up.
    let standby = alive(&pair.target_args(), &[("target", "standby")]);
    assert_eq!(standby.status(), "ok", "{:#}", standby.json);
}

#[test]
fn pg_alive_warns_when_every_connection_slot_is_taken() {
    let pair = PgPair::start();
    // Fill every slot open to non-superusers (max_connections 20, 3 of
    // them reserved for superusers), and hold them.
    let mut held = Vec::new();
    while let Ok(client) = pair.primary.connect_as(MONITOR_USER) {
        held.push(client);
        assert!(held.len() <= 20, "max_connections is not enforced");
    }
    assert!(!held.is_empty());
    let refused = alive(&pair.target_args(), &[]);
    assert_eq!(
        (refused.code, refused.status()),
        (1, "warning"),
        "{:#}",
        refused.json
    );
    assert_eq!(refused.value("postgresql.up"), 1.0);
    assert_eq!(refused.value("postgresql.accepting_connections"), 0.0);
    assert!(
        refused.message().contains("refuses new sessions"),
        "{}",
        refused.message()
    );
    assert!(refused.message().contains("53300"), "{}", refused.message());
    drop(held);
    // Closed sessions free their slots a moment later.
    watchpost_e2e::pg::wait_until(Duration::from_secs(10), "slots to be free", || {
        alive(&pair.target_args(), &[]).status() == "ok"
    });
}

#[test]
fn pg_alive_warns_on_a_wrong_password() {
    let pair = PgPair::start();
    pair.primary.execute(&format!(
        "CREATE ROLE guarded LOGIN PASSWORD 'right' IN ROLE {PASSWORD_GROUP}"
    ));
    let target = |password: &str| {
        vec![
            "--target".to_string(),
            format!("primary={}", pair.primary.dsn_as("guarded", Some(password))),
        ]
    };
    let wrong = alive(&target("wrong"), &[]);
    assert_eq!(
        (wrong.code, wrong.status()),
        (1, "warning"),
        "{:#}",
        wrong.json
    );
    assert_eq!(wrong.value("postgresql.up"), 1.0);
    assert!(
        wrong.message().contains("password authentication failed"),
        "{}",
        wrong.message()
    );
    let right = alive(&target("right"), &[]);
    assert_eq!(right.status(), "ok", "{:#}", right.json);
}

#[test]
fn a_probe_not_granted_its_target_is_denied() {
    let pair = PgPair::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("watchpost.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[targets.primary]
dsn = "{}"

[targets.standby]
dsn = "{}"

[[probe]]
name = "alive"
wasm = "{}"
targets = ["standby"]
"#,
            pair.primary.dsn(),
            pair.standby.dsn(),
            probes::path("pg-alive").display()
        ),
    )
    .unwrap();
    let args = vec!["-c".to_string(), config.display().to_string()];
    let report = check(std::path::Path::new("alive"), &args);
    assert_eq!(
        (report.code, report.status()),
        (3, "unknown"),
        "{:#}",
        report.json
    );
    assert_eq!(report.json["error"]["kind"], "denied", "{:#}", report.json);
    assert!(
        report.message().contains("not granted target `primary`"),
        "{}",
        report.message()
    );
}

#[test]
fn every_pg_probe_is_critical_within_its_deadline_when_its_target_is_unreachable() {
    // Nobody listens on this port (it was free a moment ago).
    let dsn = format!(
        "host=127.0.0.1 port={} user=watchpost dbname=postgres",
        free_port()
    );
    for probe in PG_PROBES {
        let args = vec![
            "--target".to_string(),
            format!("primary={dsn}"),
            "--target".to_string(),
            format!("standby={dsn}"),
            "--timeout".to_string(),
            "3s".to_string(),
        ];
        let report = check(&probes::path(probe), &args);
        assert_eq!(
            (report.code, report.status()),
            (2, "critical"),
            "{probe}: {:#}",
            report.json
        );
        assert!(
            report.message().contains("unreachable"),
            "{probe}: {}",
            report.message()
        );
        assert!(
            report.duration_ms() < 3000.0,
            "{probe}: {} ms",
            report.duration_ms()
        );
    }
}

#[test]
fn a_server_that_accepts_but_never_answers_ends_the_run_by_its_deadline() {
    // A TCP listener that takes connections and says nothing: the
    // PostgreSQL startup handshake never completes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut streams = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok((stream, _)) = listener.accept() {
                streams.push(stream);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let dsn = format!("host=127.0.0.1 port={port} user=watchpost dbname=postgres");
    for probe in ["pg-alive", "pg-performance"] {
        let args = vec![
            "--target".to_string(),
            format!("primary={dsn}"),
            "--timeout".to_string(),
            "1s".to_string(),
        ];
        let report = check(&probes::path(probe), &args);
        assert_eq!(
            (report.code, report.status()),
            (2, "critical"),
            "{probe}: {:#}",
            report.json
        );
        assert!(
            report.message().contains("timeout"),
            "{probe}: {}",
            report.message()
        );
        assert!(
            report.duration_ms() < 1000.0,
            "{probe}: {} ms",
            report.duration_ms()
        );
    }
    drop(held);
}
