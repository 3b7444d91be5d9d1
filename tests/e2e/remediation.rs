//! Remediation guards, actions and durability, with real processes: the
//! agent, exec'd commands, a real HTTP server for webhooks. (PostgreSQL
//! restart and failover are in `postgres_remediation.rs`.)

use std::time::Duration;
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for, wasm};
use watchpost_e2e::http_sink::HttpSink;

/// A `flip` probe; `extra` is appended to its table.
fn flip(name: &str, every: &str, config: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nwasm = \"{}\"\nevery = \"{every}\"\nconfig = {{ {config} }}\n{extra}\n",
        wasm("flip")
    )
}

fn touch_action(file: &std::path::Path) -> String {
    format!(
        "action = {{ exec = [\"sh\", \"-c\", \"env | grep ^WATCHPOST_ >> {}\"] }}",
        file.display()
    )
}

#[test]
fn exec_fires_once_on_the_hard_transition_with_the_trigger_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fired.env");
    let config = format!(
        "{}[[remediation]]\nname = \"note\"\non = {{ probe = \"down\", status = \"critical\" }}\n{}\ncooldown = \"1h\"\n",
        flip("down", "100ms", "status = \"critical\"", "for = 3"),
        touch_action(&out)
    );
    let agent = Agent::start(&config);
    let succeeded = wait_for("the exec to succeed", PATIENCE, || {
        let records = agent.audit_of("note", "succeeded");
        (!records.is_empty()).then_some(records)
    });
    // Soft states never fire: the probe needed three critical runs.
    let view = agent.probe("down").unwrap();
    assert!(view["counters"]["runs"].as_u64().unwrap() >= 3);
    let env = std::fs::read_to_string(&out).unwrap();
    for expected in [
        "WATCHPOST_PROBE=down",
        "WATCHPOST_STATUS=critical",
        "WATCHPOST_REMEDIATION=note",
        "WATCHPOST_MESSAGE=flip is critical",
        "WATCHPOST_MEASUREMENTS=[{\"name\":\"flip.phase\"",
    ] {
        assert!(env.contains(expected), "{expected} not in:\n{env}");
    }
    // Exactly one fired/succeeded pair while the state stays critical.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.audit_of("note", "fired").len(), 1);
    assert_eq!(succeeded.len(), 1);
    let fired = &agent.audit_of("note", "fired")[0];
    assert_eq!(fired["id"], succeeded[0]["id"]);
    assert_eq!(fired["detail"]["trigger"]["status"], "critical");
    assert!(
        succeeded[0]["detail"]["command"]["exit_code"] == 0,
        "{:#}",
        succeeded[0]
    );
}

#[test]
fn the_breaker_opens_after_the_limit_and_alerts_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fired.env");
    let alerts = HttpSink::start(&[200]);
    let config = format!(
        "{}[[remediation]]\nname = \"loop\"\non = {{ probe = \"flaky\" }}\n{}\ncooldown = \"100ms\"\nlimit = {{ count = 2, per = \"1h\" }}\nalert = {{ webhook = \"{}\" }}\n",
        flip(
            "flaky",
            "100ms",
            "period_ms = 600",
            "flapping = { enabled = false }"
        ),
        touch_action(&out),
        alerts.url("/alert")
    );
    let agent = Agent::start(&config);
    wait_for("three skips after the breaker opened", PATIENCE, || {
        (agent
            .audit_of("loop", "skipped")
            .iter()
            .filter(|r| r["reason"] == "breaker")
            .count()
            >= 3)
            .then_some(())
    });
    // The probe recovered and failed again several times; the breaker did
    // not reset, and only `count` actions ran.
    assert_eq!(agent.audit_of("loop", "fired").len(), 2);
    assert_eq!(agent.audit_of("loop", "breaker-open").len(), 1);
    let alert = &agent.audit_of("loop", "alert")[0];
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .contains("webhook delivered"),
        "{alert:#}"
    );
    let requests = alerts.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].json()["decision"], "breaker-open");
    let view = agent.json("/v1/remediations");
    assert_eq!(view["remediations"][0]["breaker_open"], true);
    // An operator reset closes it.
    // The command finds the agent and its generated token from -c.
    let config_path = agent.config_path().display().to_string();
    let outcome = watchpost_e2e::cli::watchpost_run(["reset", "loop", "-c", &config_path]);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    assert_eq!(
        agent.json("/v1/remediations")["remediations"][0]["breaker_open"],
        false
    );
    wait_for("a fire after the reset", PATIENCE, || {
        (agent.audit_of("loop", "fired").len() >= 3).then_some(())
    });
}

#[test]
fn a_flapping_probe_fires_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fired.env");
    let config = format!(
        "{}[[remediation]]\nname = \"calm\"\non = {{ probe = \"flappy\" }}\n{}\ncooldown = \"100ms\"\n",
        flip("flappy", "100ms", "period_ms = 150", ""),
        touch_action(&out)
    );
    let agent = Agent::start(&config);
    wait_for("a skip for flapping", PATIENCE, || {
        agent
            .audit_of("calm", "skipped")
            .into_iter()
            .find(|r| r["reason"] == "flapping")
    });
    let first_flap_skip = agent
        .audit()
        .iter()
        .position(|r| r["reason"] == "flapping")
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<_> = agent.audit().into_iter().skip(first_flap_skip).collect();
    assert!(
        after.iter().all(|r| r["decision"] != "fired"),
        "fired while flapping: {after:#?}"
    );
    assert_eq!(agent.probe("flappy").unwrap()["flapping"], true);
}

#[test]
fn dry_run_executes_nothing_and_records_everything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("must-not-exist");
    let config = format!(
        "{}[[remediation]]\nname = \"careful\"\non = {{ probe = \"down\" }}\n{}\ndry_run = true\ncooldown = \"1h\"\n",
        flip(
            "down",
            "100ms",
            "period_ms = 400",
            "flapping = { enabled = false }"
        ),
        touch_action(&out)
    );
    let agent = Agent::start(&config);
    let record = wait_for("a dry-run record", PATIENCE, || {
        agent.audit_of("careful", "dry-run").into_iter().next()
    });
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .starts_with("dry run: would careful: exec sh -c"),
        "{record:#}"
    );
    wait_for("a cooldown skip in dry run", PATIENCE, || {
        agent
            .audit_of("careful", "skipped")
            .into_iter()
            .find(|r| r["reason"] == "cooldown")
    });
    assert!(!out.exists(), "the action ran in dry run");
    assert!(agent.audit_of("careful", "fired").is_empty());
}

#[test]
fn unless_suppresses_and_pause_skips() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fired.env");
    let config = format!(
        "{}{}[[remediation]]\nname = \"guarded\"\non = {{ probe = \"down\" }}\nunless = {{ probe = \"disk\", status = \"critical\" }}\n{}\n",
        flip(
            "down",
            "100ms",
            "period_ms = 400",
            "flapping = { enabled = false }"
        ),
        flip("disk", "100ms", "status = \"critical\"", ""),
        touch_action(&out)
    );
    let agent = Agent::start(&config);
    let skipped = wait_for("a suppressed trigger", PATIENCE, || {
        agent
            .audit_of("guarded", "skipped")
            .into_iter()
            .find(|r| r["reason"] == "suppressed")
    });
    assert!(
        skipped["message"]
            .as_str()
            .unwrap()
            .contains("probe \"disk\" is critical"),
        "{skipped:#}"
    );
    assert!(!out.exists());

    // Now without the suppressing condition, but paused by an operator.
    agent.write_config(&config.replace(
        "config = { status = \"critical\" }",
        "config = { status = \"ok\" }",
    ));
    // The commands find the agent and its generated token from -c.
    let api = agent.config_path().display().to_string();
    let paused = watchpost_e2e::cli::watchpost_run(["pause", "guarded", "--for", "1h", "-c", &api]);
    assert_eq!(paused.code, 0, "{}", paused.all_output());
    assert_eq!(agent.post("/v1/reload").0, 200);
    wait_for("a paused skip", PATIENCE, || {
        agent
            .audit_of("guarded", "skipped")
            .into_iter()
            .find(|r| r["reason"] == "paused")
    });
    assert!(!out.exists());
    let resumed = watchpost_e2e::cli::watchpost_run(["resume", "guarded", "-c", &api]);
    assert_eq!(resumed.code, 0, "{}", resumed.all_output());
    wait_for("a fire after resume", PATIENCE, || {
        (!agent.audit_of("guarded", "fired").is_empty()).then_some(())
    });
    let events = watchpost_e2e::cli::watchpost_run(["events", "-n", "100", "-c", &api]);
    assert_eq!(events.code, 0);
    for decision in ["paused", "resumed", "fired"] {
        assert!(
            events.stdout.contains(decision),
            "{decision} missing from:\n{}",
            events.stdout
        );
    }
}

#[test]
fn verify_reruns_the_probe_and_records_the_outcome() {
    let config = format!(
        "{}{}[[remediation]]\nname = \"fix\"\non = {{ probe = \"down\" }}\naction = {{ exec = [\"true\"] }}\nverify = {{ probe = \"healthy\", within = \"2s\" }}\n\n[[remediation]]\nname = \"nofix\"\non = {{ probe = \"down\" }}\naction = {{ exec = [\"true\"] }}\nverify = {{ probe = \"down\", within = \"1s\" }}\n",
        flip("down", "100ms", "status = \"critical\"", ""),
        flip("healthy", "1h", "status = \"ok\"", "")
    );
    let agent = Agent::start(&config);
    let ok = wait_for("a verified success", PATIENCE, || {
        agent.audit_of("fix", "succeeded").into_iter().next()
    });
    assert_eq!(ok["detail"]["verified"], true);
    let bad = wait_for("a failed verification", PATIENCE, || {
        agent.audit_of("nofix", "not-verified").into_iter().next()
    });
    assert_eq!(bad["detail"]["verified"], false);
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("not verified: down was not ok within 1s"),
        "{bad:#}"
    );
}

#[test]
fn a_webhook_is_retried_on_500_and_delivered() {
    let sink = HttpSink::start(&[500, 200]);
    let config = format!(
        "{}[[remediation]]\nname = \"notify\"\non = {{ probe = \"down\" }}\naction = {{ webhook = \"{}\", retries = 3, timeout = \"2s\", bearer_env = \"WATCHPOST_TEST_HOOK_TOKEN\" }}\n",
        flip("down", "100ms", "status = \"critical\"", ""),
        sink.url("/hook")
    );
    let agent = Agent::start_with_env(&config, &[("WATCHPOST_TEST_HOOK_TOKEN", "sekret")]);
    let ok = wait_for("a delivered webhook", PATIENCE, || {
        agent.audit_of("notify", "succeeded").into_iter().next()
    });
    assert_eq!(ok["detail"]["delivery"]["attempts"], 2, "{ok:#}");
    let requests = sink.requests();
    assert_eq!(requests.len(), 2);
    let body = requests[1].json();
    assert_eq!(
        (requests[1].method.as_str(), requests[1].path.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(requests[1].header("authorization"), Some("Bearer sekret"));
    assert_eq!(body["remediation"], "notify");
    assert_eq!(body["probe"], "down");
    assert_eq!(body["status"], "critical");
    assert_eq!(body["decision"], "fired");
    assert_eq!(body["measurements"][0]["name"], "flip.phase");
}

#[test]
fn a_webhook_that_never_answers_is_recorded_as_failed_after_its_retries() {
    // A listener that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = format!(
        "{}[[remediation]]\nname = \"notify\"\non = {{ probe = \"down\" }}\naction = {{ webhook = \"http://127.0.0.1:{port}/hook\", retries = 2, timeout = \"300ms\" }}\n",
        flip("down", "100ms", "status = \"critical\"", "")
    );
    let agent = Agent::start(&config);
    let failed = wait_for("a failed webhook", PATIENCE, || {
        agent.audit_of("notify", "failed").into_iter().next()
    });
    assert_eq!(failed["detail"]["delivery"]["attempts"], 3, "{failed:#}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("failed after 3 attempt(s)"),
        "{failed:#}"
    );
    drop(silent);
}

#[test]
fn kill_9_during_an_action_keeps_the_log_valid_and_the_cooldown() {
    let config = format!(
        "{}[[remediation]]\nname = \"slow\"\non = {{ probe = \"down\" }}\naction = {{ exec = [\"sleep\", \"20\"], timeout = \"30s\" }}\ncooldown = \"1h\"\n",
        flip(
            "down",
            "100ms",
            "period_ms = 1500",
            "flapping = { enabled = false }"
        )
    );
    let mut agent = Agent::start(&config);
    let fired = wait_for("the action to start", PATIENCE, || {
        agent.audit_of("slow", "fired").into_iter().next()
    });
    agent.kill9();
    agent.spawn();
    // The log reads as JSON lines (Agent::audit parses every line) and holds the decision.
    let records = agent.audit();
    assert!(
        records
            .iter()
            .any(|r| r["id"] == fired["id"] && r["decision"] == "fired")
    );
    let view = agent.json("/v1/remediations");
    assert!(
        view["remediations"][0]["cooldown_remaining_seconds"]
            .as_f64()
            .unwrap()
            > 3000.0,
        "{view:#}"
    );
    // The probe turns critical again: the restarted agent does not re-fire.
    wait_for("a cooldown skip after the restart", PATIENCE, || {
        agent
            .audit_of("slow", "skipped")
            .into_iter()
            .find(|r| r["reason"] == "cooldown")
    });
    assert_eq!(agent.audit_of("slow", "fired").len(), 1);
}
