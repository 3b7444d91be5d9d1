//! The single-agent failover promotes only when the primary is really
//! gone and the standby holds what it last flushed (issue 13): a standby
//! whose WAL receiver is gone while the primary wrote on is refused, with
//! the reason, and the table committed on the primary survives; a clean
//! stop and start of 3 s, and a 3 s freeze while the standby still
//! streams, do not fail over.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for};
use watchpost_e2e::pg::{PgPair, SUPERUSER};

const PG_CTL: &str = "/usr/lib/postgresql/15/bin/pg_ctl";

/// The pair seen from the primary's node (its data directory is local), a
/// pg-alive check every 250 ms, and the failover on three failures.
fn start_agent(pair: &PgPair) -> Agent {
    let agent = Agent::start(&format!(
        "[targets.primary]\ndsn = \"{}\"\ndata_dir = \"{}\"\n\n[targets.standby]\ndsn = \"{}\"\n\n\
         [[probe]]\nname = \"alive-primary\"\nwasm = \"builtin:pg-alive\"\nevery = \"250ms\"\n\
         timeout = \"400ms\"\ntargets = [\"primary\"]\nfor = 3\nflapping = {{ enabled = false }}\n\n\
         [[remediation]]\nname = \"failover\"\non = {{ probe = \"alive-primary\", status = \"critical\" }}\n\
         action = {{ failover = \"standby\", primary = \"primary\", fence = \"pg_ctl\", pg_ctl = \"{PG_CTL}\", \
         max_lag_bytes = 1048576, write_within = \"10s\", block_for = \"1h\" }}\ncooldown = \"1s\"\n",
        pair.primary.dsn(),
        pair.primary.data_dir().display(),
        pair.standby.dsn_as(SUPERUSER, None)
    ));
    wait_for("alive-primary to be ok", PATIENCE, || {
        agent
            .probe("alive-primary")
            .filter(|p| p["hard_status"] == "ok" && p["counters"]["runs"].as_u64() >= Some(2))
    });
    agent
}

/// The first failed failover's message.
fn refusal(agent: &Agent) -> String {
    let started = Instant::now();
    loop {
        if let Some(failed) = agent.audit_of("failover", "failed").into_iter().next() {
            return failed["message"].as_str().unwrap().to_string();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "no refused failover: {:#?}\n{}",
            agent.audit(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_standby_whose_receiver_is_gone_is_refused_and_the_commit_survives() {
    let mut pair = PgPair::start();
    let agent = start_agent(&pair);
    // The standby stops receiving; the primary commits ~3.5 MB more.
    pair.standby
        .execute("ALTER SYSTEM SET primary_conninfo = ''");
    pair.standby.execute("SELECT pg_reload_conf()");
    watchpost_e2e::pg::wait_until(Duration::from_secs(30), "the receiver to stop", || {
        pair.primary
            .value("SELECT count(*) FROM pg_stat_replication")
            == "0"
    });
    // The test servers commit asynchronously: flush the WAL, as a
    // synchronous commit would, so the commit is on the primary's disk.
    pair.primary
        .execute("CREATE TABLE committed AS SELECT g AS id FROM generate_series(1, 100000) g");
    pair.primary.execute("SELECT pg_switch_wal()");
    pair.primary.kill();
    let message = refusal(&agent);
    assert!(
        message.contains("behind the primary's last flush")
            && message.contains("would lose those commits"),
        "{message}"
    );
    assert_eq!(pair.standby.value("SELECT pg_is_in_recovery()"), "t");
    // Nothing was promoted or fenced: the old primary comes back with it.
    pair.primary.start();
    assert_eq!(
        pair.primary.value("SELECT count(*) FROM committed"),
        "100000"
    );
}

#[test]
fn a_clean_stop_and_start_of_3_s_does_not_fail_over() {
    let mut pair = PgPair::start();
    let agent = start_agent(&pair);
    pair.primary.stop();
    std::thread::sleep(Duration::from_secs(3));
    pair.primary.start();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pair.standby.value("SELECT pg_is_in_recovery()"), "t");
    assert!(
        agent.audit_of("failover", "succeeded").is_empty(),
        "{:#?}",
        agent.audit()
    );
    if let Some(failed) = agent.audit_of("failover", "failed").first() {
        let message = failed["message"].as_str().unwrap();
        assert!(
            message.contains("stopped cleanly")
                || message.contains("answers")
                || message.contains("still streams"),
            "{message}"
        );
    }
}

#[test]
fn a_3_s_freeze_with_the_standby_streaming_does_not_fail_over() {
    let pair = PgPair::start();
    let agent = start_agent(&pair);
    let pid = pair.primary.postmaster_pid().unwrap();
    // The postmaster freezes (no new sessions: pg-alive fails), its WAL
    // sender goes on streaming to the standby.
    let frozen = Instant::now();
    // SAFETY: kill(2) on the test's own PostgreSQL postmaster.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let message = refusal(&agent);
    std::thread::sleep(Duration::from_secs(3).saturating_sub(frozen.elapsed()));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(
        message.contains("still streams from the primary"),
        "{message}"
    );
    assert_eq!(pair.standby.value("SELECT pg_is_in_recovery()"), "t");
    assert!(agent.audit_of("failover", "succeeded").is_empty());
}
