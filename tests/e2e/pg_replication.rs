//! `pg-replication` on a real primary and standby: lag past its limit
//! while the standby's replay is paused and the primary keeps writing, ok
//! again once replay resumes; a lost standby is critical.

use std::time::{Duration, Instant};
use watchpost_e2e::pg::PgPair;
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn replication(pair: &PgPair, settings: &[(&str, &str)]) -> Checked {
    let mut args = pair.target_args();
    args.extend(sets(settings));
    check(&probes::path("pg-replication"), &args)
}

/// Run the probe with `args` until `done` holds for its report; panic
/// after `limit` with the last report.
fn poll(args: &[String], limit: Duration, done: impl Fn(&Checked) -> bool) -> Checked {
    let started = Instant::now();
    loop {
        let report = check(&probes::path("pg-replication"), args);
        if done(&report) {
            return report;
        }
        assert!(
            started.elapsed() < limit,
            "gave up after {limit:?}: {:#}",
            report.json
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn with_limits(pair: &PgPair) -> Vec<String> {
    let mut args = pair.target_args();
    args.extend(sets(LIMITS));
    args
}

const LIMITS: &[(&str, &str)] = &[("lag_warning", "200000"), ("lag_critical", "1000000")];

#[test]
fn lag_grows_past_its_limit_while_replay_is_paused_and_recovers_after_resume() {
    let pair = PgPair::start();
    // Right after streaming starts the primary may not know the standby's
    // replay position yet (it comes with the standby's first feedback).
    let healthy = poll(&with_limits(&pair), Duration::from_secs(30), |r| {
        r.value_where("postgresql.replication.lag_bytes", "standby", "walreceiver")
            .is_some()
    });
    assert_eq!(
        (healthy.code, healthy.status()),
        (0, "ok"),
        "{:#}",
        healthy.json
    );
    assert_eq!(healthy.value("postgresql.replication.standbys"), 1.0);
    assert_eq!(
        healthy.value("postgresql.replication.standby.streaming"),
        1.0
    );
    assert_eq!(
        healthy.value("postgresql.replication.standby.replay_paused"),
        0.0
    );
    let lag = healthy
        .value_where("postgresql.replication.lag_bytes", "standby", "walreceiver")
        .unwrap_or_else(|| panic!("no lag for walreceiver: {:#}", healthy.json));
    assert!(lag < 200_000.0, "{lag}");

    pair.standby.pause_replay();
    // About 6 MB of WAL that the standby receives but does not replay.
    pair.primary.execute(
        "CREATE TABLE filler AS SELECT g AS id, repeat('x', 500) AS pad FROM generate_series(1, 10000) g",
    );
    let lagging = poll(&with_limits(&pair), Duration::from_secs(30), |r| {
        r.value_where("postgresql.replication.lag_bytes", "standby", "walreceiver")
            .is_some_and(|lag| lag > 1_000_000.0)
    });
    assert_eq!(
        (lagging.code, lagging.status()),
        (2, "critical"),
        "{:#}",
        lagging.json
    );
    assert_eq!(
        lagging.value("postgresql.replication.standby.replay_paused"),
        1.0
    );
    assert!(lagging.value("postgresql.replication.standby.receive_replay_gap") > 1_000_000.0);
    assert!(
        lagging.message().contains("walreceiver streaming, replay"),
        "{}",
        lagging.message()
    );
    assert!(
        lagging.message().contains("replay is paused"),
        "{}",
        lagging.message()
    );

    pair.standby.resume_replay();
    let recovered = poll(&with_limits(&pair), Duration::from_secs(30), |r| {
        r.status() == "ok"
    });
    assert_eq!(recovered.code, 0);
    assert_eq!(
        recovered.value("postgresql.replication.standby.replay_paused"),
        0.0
    );
    let lag = recovered
        .value_where("postgresql.replication.lag_bytes", "standby", "walreceiver")
        .expect("lag after resume");
    assert!(lag < 200_000.0, "{lag}");
}

#[test]
fn a_lost_standby_is_critical_on_the_primary() {
    let mut pair = PgPair::start();
    let two = replication(&pair, &[("min_standbys", "2")]);
    assert_eq!(two.status(), "critical", "{:#}", two.json);
    assert!(
        two.message().contains("`min_standbys` is 2"),
        "{}",
        two.message()
    );

    pair.standby.stop();
    let primary_only = vec![
        "--target".to_string(),
        format!("primary={}", pair.primary.dsn()),
    ];
    // The primary notices a moment later that the walsender is gone.
    let lost = poll(&primary_only, Duration::from_secs(30), |r| {
        r.status() == "critical"
    });
    assert_eq!(lost.code, 2, "{:#}", lost.json);
    assert_eq!(lost.value("postgresql.replication.standbys"), 0.0);
    assert!(
        lost.message().contains("0 standby streaming"),
        "{}",
        lost.message()
    );
}
