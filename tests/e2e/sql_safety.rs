//! A probe cannot turn the database against itself or the agent (issue
//! 14, "probe → database" and "host memory"): on a real server, through
//! the `sqlrun` test probe, one probe's `SET`, `BEGIN` or error does not
//! reach the next probe on the same pooled session; a probe granted the
//! failover target gets the monitoring role and cannot promote it, and a
//! role that could is refused with `strict_privileges`; an oversized
//! result ends the run within the probe's memory cap, with the agent's
//! own peak memory bounded; and running out of file descriptors is the
//! agent's failure, never a database that is down.

use std::time::Duration;
use watchpost_e2e::agent::{Agent, wait_for, wasm};
use watchpost_e2e::cli::{run, watchpost};
use watchpost_e2e::pg::{PgPair, SUPERUSER};
use watchpost_e2e::probes;

/// A `[[probe]]` running `sql` (then `then`) with sqlrun on `target`.
fn sqlrun(name: &str, target: &str, sql: &str, then: Option<&str>) -> String {
    let then = then
        .map(|t| format!(", then = \"{t}\""))
        .unwrap_or_default();
    format!(
        "[[probe]]\nname = \"{name}\"\nwasm = \"{}\"\nevery = \"200ms\"\ntimeout = \"5s\"\n\
         targets = [\"{target}\"]\nflapping = {{ enabled = false }}\n\
         config = {{ target = \"{target}\", sql = \"{sql}\"{then} }}\n\n",
        wasm("sqlrun")
    )
}

/// The last report of `probe` once it ran `runs` times.
fn last_report(agent: &Agent, probe: &str, runs: u64) -> serde_json::Value {
    agent.wait_for_runs(probe, runs)["last_report"].clone()
}

#[test]
fn one_probe_cannot_make_the_next_write_or_poison_its_session() {
    let pair = PgPair::start();
    // One run at a time: every probe gets the same pooled session.
    let config = format!(
        "[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\nconcurrency = 1\n\n[targets.primary]\ndsn = \"{}\"\n\n{}{}{}{}{}\
         [[probe]]\nname = \"alive\"\nwasm = \"builtin:pg-alive\"\nevery = \"200ms\"\n\
         targets = [\"primary\"]\nflapping = {{ enabled = false }}\n\n",
        pair.primary.dsn(),
        sqlrun(
            "unlock",
            "primary",
            "SET default_transaction_read_only = off",
            None
        ),
        sqlrun(
            "characteristics",
            "primary",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            None
        ),
        sqlrun("poison", "primary", "BEGIN", Some("SELECT 1/0")),
        sqlrun("writer", "primary", "CREATE TABLE sneaky (id int)", None),
        sqlrun("pid", "primary", "SELECT pg_backend_pid()", None),
    ) + &sqlrun("role", "primary", "SET ROLE pg_monitor", None)
        + &sqlrun("locker", "primary", "SELECT pg_advisory_lock(42)", None)
        + &sqlrun("whoami", "primary", "SELECT current_user::text", None);
    let agent = Agent::start(&config);
    for probe in [
        "unlock",
        "characteristics",
        "poison",
        "writer",
        "alive",
        "pid",
        "role",
        "locker",
        "whoami",
    ] {
        agent.wait_for_runs(probe, 6);
    }
    // The SETs themselves ran (the session was reset after them).
    for probe in ["unlock", "characteristics"] {
        let report = last_report(&agent, probe, 6);
        assert_eq!(report["status"], "ok", "{probe}: {report:#}");
    }
    // The division by zero failed in its own transaction...
    let poison = last_report(&agent, "poison", 6);
    assert!(
        poison["message"].as_str().unwrap().contains("22012"),
        "{poison:#}"
    );
    // ...and whatever ran before or after, the writer stayed read-only:
    // never `25P02` (a poisoned session), always `25006`.
    for _ in 0..5 {
        let writer = last_report(&agent, "writer", 6);
        let message = writer["message"].as_str().unwrap();
        assert!(message.contains("25006"), "{writer:#}\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        pair.primary.value("SELECT to_regclass('sneaky') IS NULL"),
        "t"
    );
    let alive = last_report(&agent, "alive", 6);
    assert_eq!(alive["status"], "ok", "{alive:#}\n{}", agent.log());
    // All of it on one session, which is never left in a transaction.
    let pids: std::collections::BTreeSet<String> = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(250));
            let report = last_report(&agent, "pid", 6);
            report["measurements"][1]["attributes"]["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(pids.len(), 1, "{pids:?}");
    // `SET ROLE` did not outlive its statement, nor did the session
    // advisory lock (a lock nobody releases would block the application).
    for _ in 0..3 {
        let whoami = last_report(&agent, "whoami", 6);
        assert_eq!(
            whoami["measurements"][1]["attributes"]["value"], "text:watchpost",
            "{whoami:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(last_report(&agent, "locker", 6)["status"], "ok");
    // The locker runs every 200 ms and holds the lock while it runs: a
    // sample can fall inside a run (CI saw one). A lock that outlived its
    // run would show in every sample; one released shows free in some.
    let held: Vec<String> = (0..20)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            pair.primary
                .value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        })
        .collect();
    assert!(held.iter().any(|n| n == "0"), "{held:?}");
    let stuck = pair.primary.value(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'watchpost' \
         AND state LIKE 'idle in transaction%'",
    );
    assert_eq!(stuck, "0");
}

/// The failover pair's targets: probes get the monitoring role, the
/// agent's own actions the superuser in `admin_dsn`.
fn failover_targets(pair: &PgPair, standby_dsn: &str, strict: bool) -> String {
    format!(
        "[targets.primary]\ndsn = \"{}\"\n\n[targets.standby]\ndsn = \"{standby_dsn}\"\n\
         admin_dsn = \"{}\"\nstrict_privileges = {strict}\n\n",
        pair.primary.dsn(),
        pair.standby.dsn_as(SUPERUSER, None),
    )
}

#[test]
fn a_probe_granted_the_failover_target_cannot_promote_it() {
    let pair = PgPair::start();
    let promote = "SELECT pg_promote(false)";
    // The monitoring role: pg_promote is not its to call.
    let agent = Agent::start(&format!(
        "{}{}",
        failover_targets(&pair, &pair.standby.dsn(), false),
        sqlrun("promoter", "standby", promote, None)
    ));
    let report = last_report(&agent, "promoter", 2);
    assert!(
        report["message"].as_str().unwrap().contains("42501"),
        "{report:#}"
    );
    drop(agent);
    // A role that could, with strict_privileges: the session is refused
    // before the probe's statement runs; validate says why.
    let config = format!(
        "{}{}",
        failover_targets(&pair, &pair.standby.dsn_as(SUPERUSER, None), true),
        sqlrun("promoter", "standby", promote, None)
    );
    let agent = Agent::start(&config);
    let report = last_report(&agent, "promoter", 2);
    let message = report["message"].as_str().unwrap();
    assert!(message.starts_with("error refused:"), "{report:#}");
    assert!(message.contains("is a superuser"), "{report:#}");
    assert!(message.contains("strict_privileges"), "{report:#}");
    let mut validate = watchpost();
    validate.args(["validate", "-c"]).arg(agent.config_path());
    let outcome = run(validate);
    assert_eq!(outcome.code, 1, "{}", outcome.all_output());
    assert!(
        outcome
            .stderr
            .contains("may execute pg_promote(boolean,integer)"),
        "{}",
        outcome.all_output()
    );
    drop(agent);
    assert_eq!(pair.standby.value("SELECT pg_is_in_recovery()"), "t");
    // Without strict_privileges: a warning, and validate passes.
    let lenient = Agent::start(&format!(
        "{}{}",
        failover_targets(&pair, &pair.standby.dsn_as(SUPERUSER, None), false),
        sqlrun("reader", "standby", "SELECT 1", None)
    ));
    let mut validate = watchpost();
    validate.args(["validate", "-c"]).arg(lenient.config_path());
    let outcome = run(validate);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    assert!(
        outcome.stderr.contains("warning: target `standby`"),
        "{}",
        outcome.all_output()
    );
    last_report(&lenient, "reader", 2);
    wait_for("the privilege warning", Duration::from_secs(10), || {
        lenient
            .log()
            .contains("the role `postgres` that probes use is a superuser")
            .then_some(())
    });
    drop(lenient);
    // The manual's failover role can promote (and the monitoring role,
    // checked above, cannot).
    pair.primary.execute(
        "CREATE ROLE watchpost_failover LOGIN REPLICATION;
         GRANT pg_monitor TO watchpost_failover;
         GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO watchpost_failover;
         GRANT TEMPORARY ON DATABASE postgres TO watchpost_failover;",
    );
    pair.wait_for_replay();
    let mut failover = pair
        .standby
        .connect_as("watchpost_failover")
        .expect("connect as the failover role");
    let promoted: bool = failover
        .query_one("SELECT pg_promote(true, 30)", &[])
        .expect("pg_promote as the failover role")
        .get(0);
    assert!(promoted);
}

/// `watchpost check sqlrun` with `sql` under a 64 MiB cap, its report and
/// the agent's peak RSS in MiB.
fn oversized(pair: &PgPair, sql: &str, memory: &str) -> (serde_json::Value, i64) {
    let mut command = watchpost();
    command
        .arg("check")
        .arg(probes::path("sqlrun"))
        .args(["--format", "json", "--memory", memory, "--timeout", "60s"])
        .args(pair.target_args())
        .args(["--set", &format!("sql={sql}")]);
    let outcome = run(command);
    (outcome.json(), outcome.max_rss_kib / 1024)
}

#[test]
fn oversized_results_end_within_the_probes_memory_cap() {
    let pair = PgPair::start();
    // One 900 MB value: refused at the row's header, never read.
    let (report, rss) = oversized(&pair, "SELECT repeat('x', 900000000)", "64MiB");
    assert_eq!(report["status"], "unknown", "{report:#}");
    assert_eq!(report["error"]["kind"], "memory", "{report:#}");
    assert!(rss < 300, "the agent's peak RSS was {rss} MiB: {report:#}");
    // 100,000 rows of 1,600 empty cells: counted at their real size, so
    // the agent's result limit stops it after a few hundred rows.
    let columns = vec!["''::text"; 1600].join(", ");
    let wide = format!("SELECT {columns} FROM generate_series(1, 100000)");
    let (report, rss) = oversized(&pair, &wide, "64MiB");
    assert_eq!(report["status"], "critical", "{report:#}");
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("54000"), "{report:#}");
    assert!(message.contains("too large"), "{report:#}");
    assert!(rss < 300, "the agent's peak RSS was {rss} MiB: {report:#}");
    // Under a smaller cap the same result is the probe's memory.
    let (report, rss) = oversized(&pair, &wide, "16MiB");
    assert_eq!(report["status"], "unknown", "{report:#}");
    assert_eq!(report["error"]["kind"], "memory", "{report:#}");
    assert!(rss < 300, "the agent's peak RSS was {rss} MiB: {report:#}");
    // The server is fine, and so is a normal statement.
    let (report, _) = oversized(&pair, "SELECT 1", "64MiB");
    assert_eq!(report["status"], "ok", "{report:#}");
}

#[test]
fn running_out_of_file_descriptors_is_the_agents_failure_not_a_database_down() {
    let pair = PgPair::start();
    // Lower the limit until opening the database session is what fails:
    // below that the agent cannot start at all, above it there are enough.
    let mut seen = None;
    for files in 3..64 {
        let mut command = std::process::Command::new("prlimit");
        command
            .arg(format!("--nofile={files}:{files}"))
            .arg(watchpost_e2e::cli::binary())
            .env(
                "WATCHPOST_STATE_DIR",
                watchpost_e2e::cli::shared_state_dir(),
            )
            .args(["check", "builtin:pg-alive", "--format", "json"])
            .args(pair.target_args());
        let outcome = run(command);
        let Ok(report) = serde_json::from_str::<serde_json::Value>(&outcome.stdout) else {
            continue;
        };
        let message = report["message"].as_str().unwrap_or_default().to_string();
        assert!(
            !(message.contains("down") || report["status"] == "critical"),
            "with {files} files: {report:#}"
        );
        if report["status"] == "ok" {
            break;
        }
        if message.contains("Too many open files") {
            assert_eq!(report["status"], "unknown", "{report:#}");
            assert_eq!(report["error"]["kind"], "agent", "{report:#}");
            seen = Some(files);
        }
    }
    assert!(
        seen.is_some(),
        "no limit made the database session fail with EMFILE"
    );
}

/// A role that is not a superuser but may become one (`SET ROLE` inside a
/// `DO` block works for any role it is a member of), or that may stream
/// every table, is named by `validate` and refused with
/// `strict_privileges`.
#[test]
fn a_role_that_can_become_a_superuser_or_stream_is_named() {
    let pair = PgPair::start();
    pair.primary.execute(
        "CREATE ROLE sneaky LOGIN; GRANT postgres TO sneaky; \
         CREATE ROLE streamer LOGIN REPLICATION; GRANT pg_monitor TO streamer;",
    );
    let dir = tempfile::tempdir().unwrap();
    for (user, expected) in [
        ("sneaky", "may SET ROLE to the superuser postgres"),
        ("streamer", "has REPLICATION"),
    ] {
        let config = dir.path().join(format!("{user}.toml"));
        std::fs::write(
            &config,
            format!(
                "[targets.primary]\ndsn = \"{}\"\nstrict_privileges = true\n\n{}",
                pair.primary.dsn_as(user, None),
                sqlrun("reader", "primary", "SELECT 1", None)
            ),
        )
        .unwrap();
        let mut validate = watchpost();
        validate.args(["validate", "-c"]).arg(&config);
        let outcome = run(validate);
        assert_eq!(outcome.code, 1, "{user}: {}", outcome.all_output());
        assert!(
            outcome.stderr.contains(expected),
            "{user}: {}",
            outcome.all_output()
        );
    }
}
