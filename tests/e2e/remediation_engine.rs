//! The remediation engine under load and across crashes, with the real
//! agent: no trigger is lost with 200 probes running every 100 ms and a
//! webhook that takes 10 s; an incident left undecided by a `kill -9` is
//! decided after the restart, once; an action cut short is reported as
//! `interrupted`; a skipped trigger is reconsidered when its `unless`
//! clears; an escalation needs its own confirmations.

use std::time::{Duration, Instant};

use watchpost_e2e::agent::{Agent, PATIENCE, wait_for, wasm};
use watchpost_e2e::http_sink::HttpSink;

fn flip(name: &str, every: &str, config: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nwasm = \"{}\"\nevery = \"{every}\"\nconfig = {{ {config} }}\nflapping = {{ enabled = false }}\n{extra}\n",
        wasm("flip")
    )
}

fn exec_remediation(name: &str, probe: &str, status: &str, argv: &str, extra: &str) -> String {
    format!(
        "[[remediation]]\nname = \"{name}\"\non = {{ probe = \"{probe}\", status = \"{status}\" }}\naction = {{ exec = {argv}, timeout = \"90s\" }}\n{extra}\n"
    )
}

/// Hard transitions of `probe` into critical that the agent logged.
fn logged_transitions_into_critical(agent: &Agent, probe: &str) -> usize {
    agent
        .log()
        .lines()
        .filter(|l| l.contains(probe) && l.contains("hard state ok -> critical"))
        .count()
}

#[test]
fn two_hundred_busy_probes_and_a_slow_webhook_lose_no_trigger() {
    let slow = HttpSink::start_slow(Duration::from_secs(10));
    let mut config = String::from(
        "[agent]\nstate_dir = \"{STATE}\"\nlisten = \"{LISTEN}\"\nconcurrency = 64\n\n",
    );
    for i in 0..200 {
        config.push_str(&format!(
            "[[probe]]\nname = \"busy-{i}\"\nwasm = \"{}\"\nevery = \"100ms\"\n\n",
            wasm("trivial")
        ));
    }
    config.push_str(&flip("stuck", "100ms", "status = \"critical\"", "for = 1"));
    config.push_str(&format!(
        "[[remediation]]\nname = \"page\"\non = {{ probe = \"stuck\", status = \"critical\" }}\naction = {{ webhook = \"{}\", timeout = \"20s\" }}\n\n",
        slow.url("/hook")
    ));
    let flipper = flip(
        "flipper",
        "100ms",
        "period_ms = 1000",
        "for = 1\nrecover = 1",
    );
    config.push_str(&flipper);
    config.push_str(&exec_remediation(
        "note",
        "flipper",
        "critical",
        "[\"true\"]",
        "cooldown = \"0s\"",
    ));
    let agent = Agent::start(&config);
    wait_for("the slow webhook to be called", PATIENCE, || {
        (!slow.requests().is_empty()).then_some(())
    });
    // While the webhook hangs (10 s), the flipper's incidents (one every
    // 2 s) go on being acted on.
    let before = agent.audit_of("note", "fired").len();
    wait_for("two fires while the webhook hangs", PATIENCE, || {
        (agent.audit_of("note", "fired").len() >= before + 2).then_some(())
    });
    assert!(
        agent.audit_of("page", "succeeded").is_empty(),
        "the webhook answered before the flipper's fires: they may have waited for it"
    );
    std::thread::sleep(Duration::from_secs(4));
    // Stop the flipping, let the last incident settle, then count.
    agent.write_config(&config.replace(
        &flipper,
        &flip(
            "flipper",
            "100ms",
            "status = \"ok\"",
            "for = 1\nrecover = 1",
        ),
    ));
    assert_eq!(agent.post("/v1/reload").0, 200);
    std::thread::sleep(Duration::from_secs(2));
    let transitions = logged_transitions_into_critical(&agent, "flipper");
    let fired = agent.audit_of("note", "fired").len();
    eprintln!(
        "200 probes at 100 ms: {transitions} hard transitions into critical, {fired} fired, lost {}",
        transitions.saturating_sub(fired)
    );
    assert!(
        transitions >= 4,
        "the flipper flipped too little: {transitions}"
    );
    assert_eq!(
        fired,
        transitions,
        "every incident fired once (events lost: {})",
        transitions as i64 - fired as i64
    );
    assert_eq!(
        agent.audit_of("note", "succeeded").len(),
        fired,
        "every fire has its outcome"
    );
    let page = wait_for("the webhook's outcome", PATIENCE, || {
        agent.audit_of("page", "succeeded").into_iter().next()
    });
    assert_eq!(page["detail"]["delivery"]["attempts"], 1, "{page:#}");
}

#[test]
fn an_incident_left_undecided_by_a_crash_fires_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fired.log");
    let probe = flip("down", "100ms", "status = \"critical\"", "for = 2");
    // First the probe goes hard critical with nothing yet deciding on it,
    // and the agent is killed: on disk, a hard critical state and no
    // decision — what a kill -9 between the transition and `fired` leaves.
    let mut agent = Agent::start(&probe);
    wait_for("a hard critical state on disk", PATIENCE, || {
        let text = std::fs::read_to_string(agent.state_file("down")).ok()?;
        let state: serde_json::Value = serde_json::from_str(&text).ok()?;
        (state["state"]["own"]["hard"] == "critical").then_some(())
    });
    agent.kill9();
    let config = format!(
        "{probe}{}",
        exec_remediation(
            "restart",
            "down",
            "critical",
            &format!("[\"sh\", \"-c\", \"echo run >> {}\"]", out.display()),
            "cooldown = \"0s\""
        )
    );
    agent.write_config(&config);
    agent.spawn();
    wait_for("the restarted agent to act", PATIENCE, || {
        (!agent.audit_of("restart", "succeeded").is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.audit_of("restart", "fired").len(), 1);
    // And once only: another crash and restart during the same incident
    // does not act again, even without a cooldown.
    agent.kill9();
    agent.spawn();
    agent.wait_for_runs("down", 5);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.audit_of("restart", "fired").len(), 1);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
}

#[test]
fn sigterm_during_an_action_stops_in_time_and_the_next_start_reports_it() {
    let config = format!(
        "{}{}",
        flip("down", "100ms", "status = \"critical\"", "for = 1"),
        exec_remediation(
            "slow",
            "down",
            "critical",
            "[\"sleep\", \"60\"]",
            "cooldown = \"1h\""
        )
    );
    let mut agent = Agent::start(&config);
    let fired = wait_for("the action to start", PATIENCE, || {
        agent.audit_of("slow", "fired").into_iter().next()
    });
    let asked = Instant::now();
    agent.signal(libc::SIGTERM);
    let code = agent.wait_exit();
    let took = asked.elapsed();
    assert_eq!(code, 0, "{}", agent.log());
    assert!(
        took < Duration::from_secs(28),
        "stopping took {took:?}: the shutdown grace is 20 s"
    );
    assert!(
        agent.log().contains("still running"),
        "the abandoned action is logged:\n{}",
        agent.log()
    );
    agent.spawn();
    let interrupted = wait_for("an interrupted record", PATIENCE, || {
        agent.audit_of("slow", "interrupted").into_iter().next()
    });
    assert_eq!(interrupted["id"], fired["id"]);
    assert!(agent.log().contains("interrupted"), "{}", agent.log());
    let events = agent.json("/v1/events?limit=50");
    assert!(events.to_string().contains("\"interrupted\""), "{events:#}");
    let metrics = agent.get("/metrics").unwrap().1;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("decision=\"interrupted\"") && l.trim_end().ends_with(" 1")),
        "{metrics}"
    );
    // Not re-run: still in cooldown, no second fire.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.audit_of("slow", "fired").len(), 1);
}

#[test]
fn a_restart_held_back_by_unless_fires_when_the_disk_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fired.log");
    let disk_full = flip(
        "disk",
        "100ms",
        "status = \"critical\"",
        "for = 1\nrecover = 1",
    );
    let config = format!(
        "{}{disk_full}{}",
        flip("alive", "100ms", "status = \"critical\"", "for = 1"),
        exec_remediation(
            "restart",
            "alive",
            "critical",
            &format!("[\"sh\", \"-c\", \"echo run >> {}\"]", out.display()),
            "unless = { probe = \"disk\", status = \"critical\" }"
        )
    );
    let agent = Agent::start(&config);
    wait_for("a suppressed trigger", PATIENCE, || {
        agent
            .audit_of("restart", "skipped")
            .into_iter()
            .find(|r| r["reason"] == "suppressed")
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(!out.exists(), "it ran while the disk was full");
    assert_eq!(
        agent.audit_of("restart", "skipped").len(),
        1,
        "a lasting condition is recorded once"
    );
    // The disk is freed while the server is still down.
    agent.write_config(&config.replace(
        &disk_full,
        &flip("disk", "100ms", "status = \"ok\"", "for = 1\nrecover = 1"),
    ));
    assert_eq!(agent.post("/v1/reload").0, 200);
    wait_for("the restart to run", PATIENCE, || {
        (!agent.audit_of("restart", "succeeded").is_empty()).then_some(())
    });
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
}

#[test]
fn an_escalation_from_warning_needs_its_own_confirmations() {
    let status = |s: &str| {
        flip(
            "alive",
            "1s",
            &format!("status = \"{s}\""),
            "for = 3\nrecover = 1",
        )
    };
    let remediation = exec_remediation("failover", "alive", "critical", "[\"true\"]", "");
    let agent = Agent::start(&format!("{}{remediation}", status("warning")));
    wait_for("hard warning", PATIENCE, || {
        agent
            .probe("alive")
            .filter(|p| p["hard_status"] == "warning")
    });
    // One critical result (a timeout, say) between warnings.
    let runs = |agent: &Agent| {
        agent.probe("alive").unwrap()["counters"]["runs"]
            .as_u64()
            .unwrap()
    };
    let before = runs(&agent);
    agent.write_config(&format!("{}{remediation}", status("critical")));
    assert_eq!(agent.post("/v1/reload").0, 200);
    wait_for("one critical run", PATIENCE, || {
        (runs(&agent) > before).then_some(())
    });
    agent.write_config(&format!("{}{remediation}", status("warning")));
    assert_eq!(agent.post("/v1/reload").0, 200);
    let view = agent.probe("alive").unwrap();
    assert_eq!(view["hard_status"], "warning", "{view:#}");
    let after = runs(&agent);
    wait_for("two more warning runs", PATIENCE, || {
        (runs(&agent) >= after + 2).then_some(())
    });
    assert!(
        agent.audit_of("failover", "fired").is_empty(),
        "{:#?}",
        agent.audit()
    );
    // Three critical results in a row: one fire.
    agent.write_config(&format!("{}{remediation}", status("critical")));
    assert_eq!(agent.post("/v1/reload").0, 200);
    wait_for("the fire after three criticals", PATIENCE, || {
        agent.audit_of("failover", "fired").into_iter().next()
    });
    assert!(runs(&agent) >= after + 2 + 3);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(agent.audit_of("failover", "fired").len(), 1);
}
