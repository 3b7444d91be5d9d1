//! Faults replayed from peers' bug reports (issue 13), on a real primary
//! and standby, each asserting the right value: a stalled stream makes
//! the standby's lag grow; `pg_receivewal` alone is no standby; a role
//! without `pg_monitor` gets `unknown` naming the privilege, never a
//! healthy or failing value; `pg_stat_statements` 1.7 leaves every other
//! measurement reporting. From issue 25: the connection slots reserved
//! for superusers are no capacity for applications, and a bare
//! identifier in a probe's config folds only its ASCII letters, as the
//! server folds it.

use std::time::{Duration, Instant};
use watchpost_e2e::pg::{MONITOR_USER, PgNodes, PgPair, SUPERUSER};
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn run(probe: &str, targets: &[(&str, String)], settings: &[(&str, &str)]) -> Checked {
    let mut args: Vec<String> = targets
        .iter()
        .flat_map(|(name, dsn)| ["--target".to_string(), format!("{name}={dsn}")])
        .collect();
    args.extend(sets(settings));
    check(&probes::path(probe), &args)
}

/// SIGSTOP/SIGCONT a server process of the test's own cluster.
fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a process of the test's own PostgreSQL.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[test]
fn a_stalled_stream_makes_the_standby_lag_grow() {
    let pair = PgPair::start();
    pair.primary.execute("CREATE TABLE t (id int)");
    pair.wait_for_replay();
    // The stream stalls: the standby's WAL receiver stops taking WAL (its
    // status stays `streaming`, as with a stalled WAL sender on the other
    // end), while the primary writes on.
    let receiver: i32 = pair
        .standby
        .value("SELECT pid FROM pg_stat_wal_receiver")
        .parse()
        .unwrap();
    signal(receiver, libc::SIGSTOP);
    pair.primary.execute(
        "INSERT INTO t SELECT g FROM generate_series(1, 100000) g", // ~3.5 MB of WAL
    );
    let both = [
        ("primary", pair.primary.dsn()),
        ("standby", pair.standby.dsn()),
    ];
    let limits = [("lag_warning", "1048576"), ("lag_critical", "67108864")];
    let seen = run("pg-replication", &both, &limits);
    let lag = seen
        .value_where(
            "postgresql.replication.standby.lag_bytes",
            "source",
            "primary",
        )
        .unwrap_or_else(|| panic!("{:#}", seen.json));
    assert!(lag > 1_048_576.0, "{:#}", seen.json);
    assert_ne!(seen.status(), "ok", "{:#}", seen.json);
    assert!(
        seen.message().contains("behind the primary (primary)"),
        "{:#}",
        seen.json
    );
    // The standby alone cannot see the primary's position: once it has
    // not heard from it past the limit (2 s here; by default past the ping
    // an idle primary answers, 41 s), its lag is unknown, not 0.
    let alone = [("standby", pair.standby.dsn())];
    std::thread::sleep(Duration::from_secs(3));
    let stalled = run("pg-replication", &alone, &[("contact_limit", "2")]);
    assert!(
        stalled
            .measurements("postgresql.replication.standby.lag_bytes")
            .is_empty(),
        "{:#}",
        stalled.json
    );
    assert!(
        stalled.message().contains("has not heard from the primary"),
        "{:#}",
        stalled.json
    );
    assert_eq!(stalled.status(), "warning");
    signal(receiver, libc::SIGCONT);
}

#[test]
fn pg_receivewal_alone_is_not_a_standby() {
    let mut pair = PgPair::start();
    pair.standby.stop();
    let dir = tempfile::tempdir().unwrap();
    let mut receivewal = pair.primary.receivewal(dir.path());
    let primary = [("primary", pair.primary.dsn())];
    let started = Instant::now();
    let report = loop {
        let report = run("pg-replication", &primary, &[]);
        if report.message().contains("pg_receivewal") || started.elapsed() > Duration::from_secs(20)
        {
            break report;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = receivewal.kill();
    let _ = receivewal.wait();
    assert_eq!(report.value("postgresql.replication.standbys"), 0.0);
    assert_eq!(report.status(), "critical", "{:#}", report.json);
    assert!(
        report.message().contains("0 standby streaming"),
        "{:#}",
        report.json
    );
    pair.standby.set_running(false);
}

#[test]
fn without_pg_monitor_the_hidden_parts_are_unknown_naming_the_privilege() {
    let pair = PgPair::start();
    pair.primary
        .execute("CREATE ROLE plain LOGIN; CREATE TABLE busy (id int); GRANT ALL ON busy TO plain");
    pair.wait_for_replay();
    // Another role's open transaction, 2 s old by the time the probe looks.
    let mut other = pair.primary.connect();
    let mut tx = other.transaction().unwrap();
    tx.batch_execute("INSERT INTO busy VALUES (1)").unwrap();
    std::thread::sleep(Duration::from_secs(2));

    let replication = run(
        "pg-replication",
        &[
            ("primary", pair.primary.dsn_as("plain", None)),
            ("standby", pair.standby.dsn_as("plain", None)),
        ],
        &[],
    );
    assert_eq!(replication.status(), "unknown", "{:#}", replication.json);
    assert!(
        replication.message().contains("grant pg_monitor to plain"),
        "{:#}",
        replication.json
    );
    assert!(
        replication
            .measurements("postgresql.replication.standbys")
            .is_empty()
    );

    let performance = run(
        "pg-performance",
        &[("primary", pair.primary.dsn_as("plain", None))],
        &[],
    );
    assert_eq!(performance.status(), "unknown", "{:#}", performance.json);
    assert!(
        performance.message().contains(
            "oldest transaction: cannot be checked: cannot see other roles' transactions"
        ),
        "{:#}",
        performance.json
    );
    assert!(performance.message().contains("grant pg_monitor"));
    assert!(
        performance
            .measurements("postgresql.transaction.oldest_age")
            .is_empty()
    );
    // The other parts still report.
    assert!(performance.value("postgresql.xid.age") > 0.0);
    assert!(
        !performance
            .measurements("postgresql.connections.used_ratio")
            .is_empty()
    );
    // With pg_monitor, the 2 s transaction is seen.
    let seen = run("pg-performance", &[("primary", pair.primary.dsn())], &[]);
    assert!(
        seen.value("postgresql.transaction.oldest_age") >= 2.0,
        "{:#}",
        seen.json
    );
    tx.rollback().unwrap();
}

#[test]
fn pg_stat_statements_1_7_leaves_every_other_part_reporting() {
    let pair = PgPair::start();
    pair.primary.execute(
        "DROP EXTENSION IF EXISTS pg_stat_statements; \
         CREATE EXTENSION pg_stat_statements VERSION '1.7'; \
         SELECT count(*) FROM pg_class",
    );
    let report = run("pg-performance", &[("primary", pair.primary.dsn())], &[]);
    assert!(report.code < 3, "{:#}", report.json);
    assert!(
        report.message().contains("no column `mean_exec_time`"),
        "{:#}",
        report.json
    );
    for name in [
        "postgresql.canary.duration",
        "postgresql.connections.used_ratio",
        "postgresql.transaction.oldest_age",
        "postgresql.xid.age",
        "postgresql.statement.mean_duration",
    ] {
        assert!(
            !report.measurements(name).is_empty(),
            "{name}: {:#}",
            report.json
        );
    }
}

/// The load balancer's replica check on the standby's node: with the
/// stream stalled while the primary writes on, it answers 503 naming the
/// lag behind the primary, not 200 with a lag of 0.
#[test]
fn a_stalled_stream_takes_the_standby_out_of_the_replica_pool() {
    use watchpost_e2e::agent::{Agent, PATIENCE, wait_for};
    let pair = PgPair::start();
    pair.primary.execute("CREATE TABLE t (id int)");
    pair.wait_for_replay();
    let config = format!(
        "[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\nlocal_target = \"standby\"\n\n\
         [targets.primary]\ndsn = \"{}\"\n\n[targets.standby]\ndsn = \"{}\"\n\n\
         [[probe]]\nname = \"alive-standby\"\nwasm = \"builtin:pg-alive\"\nevery = \"250ms\"\ntimeout = \"1s\"\ntargets = [\"standby\"]\nconfig = {{ target = \"standby\" }}\n\n\
         [[probe]]\nname = \"replication\"\nwasm = \"builtin:pg-replication\"\nevery = \"250ms\"\ntimeout = \"2s\"\ntargets = [\"primary\", \"standby\"]\n",
        pair.primary.dsn(),
        pair.standby.dsn()
    );
    let agent = Agent::start(&config);
    let code = |path: &str| agent.get(path).map(|(c, _)| c).unwrap_or(0);
    wait_for("the standby to be in the replica pool", PATIENCE, || {
        (code("/v1/role/replica?max_lag=1048576") == 200).then_some(())
    });
    let receiver: i32 = pair
        .standby
        .value("SELECT pid FROM pg_stat_wal_receiver")
        .parse()
        .unwrap();
    signal(receiver, libc::SIGSTOP);
    pair.primary
        .execute("INSERT INTO t SELECT g FROM generate_series(1, 100000) g");
    let answer = wait_for("the replica check to fail", PATIENCE, || {
        agent
            .get("/v1/role/replica?max_lag=1048576")
            .ok()
            .filter(|(c, _)| *c == 503)
    });
    signal(receiver, libc::SIGCONT);
    assert!(
        answer.1.contains("behind")
            || answer.1.contains("stalled")
            || answer.1.contains("not heard"),
        "{}",
        answer.1
    );
}

/// Replay blocked by a query conflict after the primary sat idle: the
/// standby's replay delay is the real one (the primary's `replay_lag`, a
/// few seconds), not `now() - pg_last_xact_replay_timestamp()`, which
/// also counts the idle time before.
#[test]
fn a_conflict_blocked_replay_reports_the_real_delay() {
    let pair = PgPair::with_settings(&[
        ("max_standby_streaming_delay", "-1"),
        ("hot_standby_feedback", "off"),
    ]);
    pair.primary
        .execute("CREATE TABLE c (id int); INSERT INTO c SELECT generate_series(1, 1000)");
    pair.wait_for_replay();
    // A standby query holding a snapshot of `c`.
    let mut reader = pair.standby.connect();
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM c")
        .unwrap();
    // The primary sits idle, then removes rows the reader still sees:
    // replay of the cleanup waits for the reader (no delay limit).
    std::thread::sleep(Duration::from_secs(8));
    pair.primary.execute("DELETE FROM c");
    pair.primary.execute("VACUUM c");
    pair.primary.execute("INSERT INTO c VALUES (1)");
    let blocked = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let both = [
        ("primary", pair.primary.dsn()),
        ("standby", pair.standby.dsn()),
    ];
    let seen = run("pg-replication", &both, &[]);
    let delay = seen
        .value_where(
            "postgresql.replication.standby.replay_delay",
            "source",
            "primary",
        )
        .or_else(|| {
            seen.measurements("postgresql.replication.standby.replay_delay")
                .first()
                .and_then(|m| m["value"].as_f64())
        })
        .unwrap_or_else(|| panic!("{:#}", seen.json));
    let since_block = blocked.elapsed().as_secs_f64();
    reader.batch_execute("ROLLBACK").unwrap();
    // Close to the time replay has been blocked (plus the status
    // interval), far from the idle time the timestamp method adds (8 s).
    assert!(delay > 1.0, "delay {delay} s: {:#}", seen.json);
    assert!(
        delay < since_block + 2.5,
        "delay {delay} s after {since_block:.1} s of blocked replay: {:#}",
        seen.json
    );
}

/// max_connections 20 with 3 slots reserved for superusers: 17 ordinary
/// sessions get every slot applications can have (the 18th is refused),
/// so the probe, connected as a superuser into a reserved slot, reports
/// `critical` and says that ordinary clients have nothing left — not
/// `warning` for 18 of 20.
#[test]
fn reserved_slots_are_no_capacity_for_ordinary_clients() {
    let nodes = PgNodes::start(1);
    let primary = &nodes.nodes[0];
    assert_eq!(primary.value("SHOW superuser_reserved_connections"), "3");
    let mut held = Vec::new();
    while let Ok(client) = primary.connect_as(MONITOR_USER) {
        held.push(client);
        assert!(held.len() <= 20, "max_connections is not enforced");
    }
    assert_eq!(held.len(), 17, "ordinary sessions before the refusal");
    let seen = run(
        "pg-performance",
        &[("primary", primary.dsn_as(SUPERUSER, None))],
        &[("slow_statements", "0")],
    );
    assert_eq!(seen.status(), "critical", "{:#}", seen.json);
    assert!(
        seen.message()
            .contains("ordinary clients have 0 of 17 left"),
        "{:#}",
        seen.json
    );
    assert!(seen.value("postgresql.connections.used_ratio") >= 1.0);
    drop(held);
}

/// `check_indexes = ÄRGER` names the table `Ärger` in a UTF-8 database
/// (only ASCII letters fold); `"ÄRGER"` quoted is kept as written and
/// does not exist.
#[test]
fn bare_identifiers_fold_only_their_ascii_letters() {
    let nodes = PgNodes::start(1);
    let primary = &nodes.nodes[0];
    primary.execute(
        "CREATE EXTENSION amcheck; \
         CREATE TABLE \"Ärger\" (id int PRIMARY KEY); \
         INSERT INTO \"Ärger\" SELECT generate_series(1, 100); \
         GRANT SELECT ON \"Ärger\" TO watchpost",
    );
    let target = [("primary", primary.dsn_as(SUPERUSER, None))];
    let seen = run(
        "pg-integrity",
        &target,
        &[("check_indexes", "ÄRGER"), ("scan_cycle", "off")],
    );
    assert_eq!(seen.status(), "ok", "{:#}", seen.json);
    assert_eq!(seen.value("postgresql.integrity.indexes_checked"), 1.0);
    let quoted = run(
        "pg-integrity",
        &target,
        &[("check_indexes", "\"ÄRGER\""), ("scan_cycle", "off")],
    );
    assert!(
        quoted.message().contains("table \"ÄRGER\" does not exist"),
        "{:#}",
        quoted.json
    );
}
