//! The recovery remediations on real servers: `terminate` rolls back a
//! session idle in a transaction that blocks another (and a dry run only
//! lists it), `resume-replay` resumes a paused standby, and `reinit`
//! re-clones a corrupted standby, keeping the old directory aside.

use crate::backup_kit::BIN;
use std::time::Duration;
use watchpost_e2e::agent::{Agent, PATIENCE};
use watchpost_e2e::pg::{PgPair, SUPERUSER, wait_until};

/// The remediation record of `name` with `decision`, waiting for it.
fn record(agent: &Agent, name: &str, decision: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + PATIENCE * 2;
    loop {
        if let Some(found) = agent.audit_of(name, decision).into_iter().next() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {decision} record of {name}: {:#?}\n{}",
            agent.audit(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminate_config(pair: &PgPair, dry_run: bool) -> String {
    format!(
        "[targets.primary]\ndsn = \"{}\"\n\n[targets.admin]\ndsn = \"{}\"\nread_only = false\n\n\
         [[probe]]\nname = \"perf\"\nwasm = \"builtin:pg-performance\"\nevery = \"500ms\"\ntimeout = \"2s\"\ntargets = [\"primary\"]\n\
         flapping = {{ enabled = false }}\n\
         [probe.thresholds.\"postgresql.transaction.oldest_age\"]\ncritical = \"~:2\"\n\n\
         [[remediation]]\nname = \"rollback\"\non = {{ probe = \"perf\", measurement = \"postgresql.transaction.oldest_age\", status = \"critical\" }}\n\
         action = {{ terminate = \"admin\", idle_in_transaction = \"1s\", databases = [\"postgres\"] }}\ncooldown = \"1h\"\ndry_run = {dry_run}\n",
        pair.primary.dsn(),
        pair.primary.dsn_as(SUPERUSER, None)
    )
}

#[test]
fn terminate_rolls_back_the_session_that_blocks_and_a_dry_run_only_lists_it() {
    let pair = PgPair::start();
    pair.primary.execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int, note text);
         INSERT INTO accounts VALUES (1, 100, '');",
    );
    // A session idle in a transaction, holding the row's lock.
    let mut holder = pair.primary.connect();
    holder
        .batch_execute("SET application_name = 'forgetful'; BEGIN; UPDATE accounts SET balance = 0 WHERE id = 1;")
        .unwrap();
    let holder_pid = pair
        .primary
        .value("SELECT pid FROM pg_stat_activity WHERE application_name = 'forgetful'");
    // Another session waits for that lock.
    let mut waiter = pair.primary.connect();
    let blocked = std::thread::spawn(move || {
        waiter
            .batch_execute("UPDATE accounts SET note = 'waited' WHERE id = 1")
            .map_err(|e| e.to_string())
    });
    wait_until(
        Duration::from_secs(10),
        "the second session to wait",
        || {
            pair.primary
                .value("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                == "1"
        },
    );

    // Dry run: the record lists the session, nothing is terminated.
    let agent = Agent::start(&terminate_config(&pair, true));
    let dry = record(&agent, "rollback", "dry-run");
    let listed = &dry["detail"]["sessions"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{dry:#}");
    assert_eq!(listed[0]["pid"].to_string(), holder_pid, "{dry:#}");
    assert_eq!(listed[0]["state"], "idle in transaction");
    assert_eq!(listed[0]["blocking"], true);
    assert!(
        dry["message"]
            .as_str()
            .unwrap()
            .contains("would terminate 1 session"),
        "{dry:#}"
    );
    assert!(!blocked.is_finished());
    assert_eq!(
        pair.primary.value(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {holder_pid}"
        )),
        "1"
    );
    drop(agent);

    // For real: terminated, the waiter proceeds, the change is rolled back.
    let agent = Agent::start(&terminate_config(&pair, false));
    let done = record(&agent, "rollback", "succeeded");
    assert_eq!(
        done["detail"]["sessions"][0]["pid"].to_string(),
        holder_pid,
        "{done:#}"
    );
    assert_eq!(done["detail"]["sessions"][0]["signalled"], true);
    assert!(done["detail"]["sessions"][0].get("query").is_none());
    assert_eq!(blocked.join().unwrap(), Ok(()));
    assert_eq!(
        pair.primary
            .value("SELECT balance || ' ' || note FROM accounts WHERE id = 1"),
        "100 waited"
    );
    assert!(holder.simple_query("SELECT 1").is_err());
}

#[test]
fn resume_replay_resumes_a_paused_standby() {
    let pair = PgPair::start();
    pair.primary.execute("CREATE TABLE t (id int)");
    pair.wait_for_replay();
    pair.standby.pause_replay();
    pair.primary
        .execute("INSERT INTO t SELECT generate_series(1, 10000)");
    let config = format!(
        "[targets.standby]\ndsn = \"{}\"\n\n\
         [[probe]]\nname = \"replica\"\nwasm = \"builtin:pg-replication\"\nevery = \"500ms\"\ntimeout = \"2s\"\ntargets = [\"standby\"]\nflapping = {{ enabled = false }}\n\n\
         [[remediation]]\nname = \"redo\"\non = {{ probe = \"replica\", status = \"warning\" }}\naction = {{ resume_replay = \"standby\" }}\n\
         verify = {{ probe = \"replica\", within = \"30s\" }}\ncooldown = \"1h\"\n",
        pair.standby.dsn_as(SUPERUSER, None)
    );
    let agent = Agent::start(&config);
    let done = record(&agent, "redo", "succeeded");
    assert!(
        done["message"].as_str().unwrap().contains("replay resumed"),
        "{done:#}"
    );
    assert_eq!(done["detail"]["verified"], true, "{done:#}");
    assert_eq!(
        pair.standby.value("SELECT pg_get_wal_replay_pause_state()"),
        "not paused"
    );
    pair.wait_for_replay();
}

#[test]
fn reinit_reclones_a_corrupted_standby_and_keeps_the_old_directory() {
    let mut pair = PgPair::start();
    pair.primary.execute(
        "CREATE TABLE victim (id int PRIMARY KEY, payload text);
         INSERT INTO victim SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 200) g;",
    );
    // A checkpoint on the primary lets the standby's restartpoint write
    // the page to disk.
    pair.primary.execute("CHECKPOINT");
    pair.wait_for_replay();
    pair.standby.execute("CHECKPOINT");
    pair.standby.corrupt_first_page("victim");
    assert!(
        pair.standby
            .connect()
            .simple_query("SELECT count(payload) FROM victim")
            .is_err()
    );
    let data = pair.standby.data_dir().to_path_buf();
    let config = format!(
        "[targets.primary]\ndsn = \"{}\"\n\n[targets.standby]\ndsn = \"{}\"\ndata_dir = \"{}\"\n\n\
         [[probe]]\nname = \"integrity\"\nwasm = \"builtin:pg-integrity\"\nevery = \"1s\"\ntimeout = \"5s\"\ntargets = [\"standby\"]\nconfig = {{ target = \"standby\" }}\nflapping = {{ enabled = false }}\n\n\
         [[remediation]]\nname = \"reclone\"\non = {{ probe = \"integrity\", status = \"critical\" }}\n\
         action = {{ reinit = \"standby\", primary = \"primary\", bin_dir = \"{BIN}\", timeout = \"120s\" }}\ncooldown = \"1h\"\n",
        pair.primary.dsn_as(SUPERUSER, None),
        pair.standby.dsn_as(SUPERUSER, None),
        data.display()
    );
    let agent = Agent::start(&config);
    let done = record(&agent, "reclone", "succeeded");
    assert!(
        done["message"].as_str().unwrap().contains("streaming"),
        "{done:#}"
    );
    pair.standby.set_running(true);
    pair.wait_for_streaming();
    assert_eq!(
        pair.standby.value("SELECT count(payload) FROM victim"),
        "200"
    );
    let parent = data.parent().unwrap();
    let aside: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("standby.reinit-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the old directory is kept aside");
    assert!(aside[0].path().join("PG_VERSION").is_file());
}
