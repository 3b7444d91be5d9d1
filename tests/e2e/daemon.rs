//! `watchpost run`: probes on schedule, the status API, /metrics, hot
//! reload, graceful shutdown, and state that survives `kill -9`.

use std::time::Duration;
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for, wasm};

fn trivial(name: &str, every: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nwasm = \"{}\"\nevery = \"{every}\"\n\n",
        wasm("trivial")
    )
}

#[test]
fn probes_run_on_schedule_and_the_api_shows_them() {
    let agent = Agent::start(&format!(
        "{}{}",
        trivial("fast", "200ms"),
        trivial("slow", "1h")
    ));
    let fast = agent.wait_for_runs("fast", 5);
    assert_eq!(fast["status"], "ok");
    assert_eq!(fast["state_type"], "hard");
    assert_eq!(
        fast["last_report"]["measurements"][0]["name"],
        "trivial.value"
    );
    assert!(fast["history"].as_array().unwrap().len() >= 5);
    assert!(fast["next_run"].is_string());
    assert_eq!(fast["probe"]["name"], "trivial");
    // A probe with a long interval still runs soon after start, once.
    let slow = agent.wait_for_runs("slow", 1);
    assert_eq!(slow["counters"]["runs"], 1);
    let (code, _) = agent.get("/v1/probes/nope").unwrap();
    assert_eq!(code, 404);
    assert_eq!(agent.json("/healthz")["status"], "ok");
}

#[test]
fn a_hung_probe_does_not_delay_a_one_second_probe() {
    let config = format!(
        "[[probe]]\nname = \"hung\"\nwasm = \"{}\"\nevery = \"1s\"\ntimeout = \"1m\"\n\n{}",
        wasm("sleepy"),
        trivial("steady", "1s")
    );
    let agent = Agent::start(&config);
    // While `hung` sleeps for its whole minute, `steady` keeps its pace and
    // `hung`'s ticks are skipped rather than piled up.
    let steady = agent.wait_for_runs("steady", 6);
    let hung = wait_for("skipped ticks of the hung probe", PATIENCE, || {
        agent
            .probe("hung")
            .filter(|p| p["counters"]["skipped_ticks"].as_u64().unwrap() >= 4)
    });
    assert_eq!(hung["counters"]["runs"], 0, "the hung run has not finished");
    assert!(steady["last_report"]["status"] == "ok");
    let metrics = agent.get("/metrics").unwrap().1;
    let lateness = metrics
        .lines()
        .find(|l| {
            l.starts_with("watchpost_schedule_lateness_seconds_bucket{probe=\"steady\"")
                && l.contains("le=\"0.1\"")
        })
        .expect("lateness histogram of steady");
    let within_100ms: f64 = lateness.rsplit(' ').next().unwrap().parse().unwrap();
    let runs = agent.probe("steady").unwrap()["counters"]["runs"]
        .as_f64()
        .unwrap();
    assert!(
        within_100ms >= runs - 1.0,
        "steady's runs started on time: {lateness} of {runs}"
    );
}

#[test]
fn metrics_pass_promtool() {
    let config = format!(
        "{}[[probe]]\nname = \"disk\"\nwasm = \"builtin:host-disk\"\nevery = \"1s\"\n\n[[probe]]\nname = \"bomb\"\nwasm = \"{}\"\nevery = \"1s\"\nmemory = \"8MiB\"\n",
        trivial("t", "500ms"),
        wasm("membomb")
    );
    let agent = Agent::start(&config);
    agent.wait_for_runs("disk", 1);
    agent.wait_for_runs("bomb", 1);
    agent.wait_for_runs("t", 2);
    let (code, metrics) = agent.get("/metrics").unwrap();
    assert_eq!(code, 200);
    for expected in [
        "system_filesystem_utilization{probe=\"disk\",node=",
        "watchpost_probe_status{probe=\"bomb\"",
        "watchpost_probe_errors_total{probe=\"bomb\",node=",
        "watchpost_probe_runs_total{probe=\"t\"",
        "watchpost_probe_skipped_ticks_total{probe=\"t\"",
        "watchpost_probe_run_duration_seconds_bucket{probe=\"t\"",
        "trivial_value{probe=\"t\"",
        "process_resident_memory_bytes",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from /metrics:\n{metrics}"
        );
    }
    let memory_errors = metrics
        .lines()
        .find(|l| {
            l.starts_with("watchpost_probe_errors_total{probe=\"bomb\"")
                && l.contains("kind=\"memory\"")
        })
        .unwrap();
    assert!(!memory_errors.ends_with(" 0"), "{memory_errors}");
    watchpost_e2e::prometheus::promtool_check(&metrics);
}

#[test]
fn sighup_adds_removes_and_changes_probes_in_place() {
    let before = format!(
        "{}{}[[probe]]\nname = \"changing\"\nwasm = \"builtin:host-disk\"\nevery = \"300ms\"\n",
        trivial("kept", "200ms"),
        trivial("removed", "200ms")
    );
    let mut agent = Agent::start(&before);
    let kept_before = agent.wait_for_runs("kept", 4);
    agent.wait_for_runs("removed", 1);
    agent.wait_for_runs("changing", 1);
    let pid = agent.pid();

    let after = format!(
        "{}{}[[probe]]\nname = \"changing\"\nwasm = \"builtin:host-disk\"\nevery = \"300ms\"\nconfig = {{ critical = \"0\" }}\n",
        trivial("kept", "200ms"),
        trivial("added", "200ms")
    );
    agent.write_config(&after);
    agent.signal(libc::SIGHUP);
    wait_for("the reload to take effect", PATIENCE, || {
        let names = agent.probe_names();
        (names.contains(&"added".to_string()) && !names.contains(&"removed".to_string()))
            .then_some(())
    });
    assert_eq!(agent.pid(), pid, "same process");
    // The changed probe now runs with its new config.
    wait_for("the changed probe to go critical", PATIENCE, || {
        agent
            .probe("changing")
            .filter(|p| p["status"] == "critical")
    });
    // The unchanged probe kept its history and counters across the reload.
    let kept_after = agent.probe("kept").unwrap();
    assert!(kept_after["counters"]["runs"].as_u64() >= kept_before["counters"]["runs"].as_u64());
    assert!(
        kept_after["history"].as_array().unwrap().len()
            >= kept_before["history"].as_array().unwrap().len()
    );
    agent.wait_for_runs("added", 2);
    assert!(agent.log().contains("config reloaded"), "{}", agent.log());
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(), 0);
}

#[test]
fn a_broken_config_on_reload_is_rejected_and_the_old_one_keeps_running() {
    let agent = Agent::start(&trivial("steady", "200ms"));
    agent.wait_for_runs("steady", 2);
    agent.write_config(&format!(
        "{}[[probe]]\nname = \"bad\"\nwasm = \"builtin:host-disk\"\nevery = \"often\"\n",
        trivial("steady", "200ms")
    ));
    let (code, body) = agent.post("/v1/reload");
    assert_eq!(code, 422, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["reloaded"], false);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("watchpost.toml:")
            && error.contains("`every` = \"often\" is not a duration"),
        "{error}"
    );
    // Still running the old config.
    let runs = agent.probe("steady").unwrap()["counters"]["runs"]
        .as_u64()
        .unwrap();
    agent.wait_for_runs("steady", runs + 2);
    assert_eq!(agent.probe_names(), vec!["steady"]);
    assert!(agent.log().contains("config reload rejected"));
    // And a good reload through the API reports what it did.
    agent.write_config(&format!(
        "{}{}",
        trivial("steady", "200ms"),
        trivial("new", "1s")
    ));
    let (code, body) = agent.post("/v1/reload");
    assert_eq!(code, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["summary"]["added"], serde_json::json!(["new"]));
    assert_eq!(body["summary"]["unchanged"], serde_json::json!(["steady"]));
}

#[test]
fn hard_states_survive_kill_9() {
    let config = "[[probe]]\nname = \"full\"\nwasm = \"builtin:host-disk\"\nevery = \"200ms\"\nfor = 2\nconfig = { critical = \"0\" }\n";
    let mut agent = Agent::start(config);
    let before = wait_for("a hard critical state", PATIENCE, || {
        agent.probe("full").filter(|p| {
            p["hard_status"] == "critical" && p["history"].as_array().unwrap().len() >= 4
        })
    });
    // Give the state writer its flush interval, then crash.
    std::thread::sleep(Duration::from_millis(1500));
    agent.kill9();
    assert!(agent.state_file("full").exists());
    agent.spawn();
    let after = agent.probe("full").unwrap();
    assert_eq!(after["hard_status"], "critical", "{after:#}");
    assert!(
        after["history"].as_array().unwrap().len() >= before["history"].as_array().unwrap().len(),
        "history kept: {after:#}"
    );
}

#[test]
fn a_corrupt_state_file_is_set_aside_with_a_message() {
    let mut agent = Agent::start(&trivial("t", "200ms"));
    agent.wait_for_runs("t", 2);
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(), 0);
    std::fs::write(
        agent.state_file("t"),
        b"{\"format\": 1, \"probe\": \"t\", \"state\": [garbage",
    )
    .unwrap();
    agent.spawn();
    let fresh = agent.wait_for_runs("t", 1);
    assert!(
        fresh["history"].as_array().unwrap().len() <= 3,
        "started fresh: {fresh:#}"
    );
    let log = agent.log();
    assert!(
        log.contains("is unusable") && log.contains("set it aside"),
        "{log}"
    );
    let aside: Vec<_> = std::fs::read_dir(agent.state_dir().join("probes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("t.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
}

#[test]
fn sigterm_lets_runs_finish_writes_state_and_exits_zero() {
    let mut agent = Agent::start(&trivial("t", "100ms"));
    agent.wait_for_runs("t", 3);
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(), 0, "{}", agent.log());
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(agent.state_file("t")).unwrap()).unwrap();
    assert!(saved["state"]["history"].as_array().unwrap().len() >= 3);
    assert!(agent.log().contains("SIGTERM: shutting down"));
}

#[test]
fn the_embedded_default_runs_the_host_probes_on_port_9464() {
    let mut agent = Agent::start_embedded_default();
    for probe in ["cpu", "memory", "disk"] {
        let view = agent.wait_for_runs(probe, 1);
        assert!(view["last_report"]["error"].is_null(), "{view:#}");
        assert!(view["wasm"].as_str().unwrap().starts_with("builtin:host-"));
    }
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(), 0);
}

#[test]
fn a_bad_config_at_start_is_refused_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[agent]
listen = \"nowhere\"\n\n[[probe]]\nname = \"x\"\nwasm = \"builtin:host-disk\"\nevery = \"soon\"\n",
    )
    .unwrap();
    let outcome =
        watchpost_e2e::cli::watchpost_run(["run".as_ref(), "-c".as_ref(), path.as_os_str()]);
    assert_ne!(outcome.code, 0);
    let text = outcome.all_output();
    assert!(
        text.contains("bad.toml:2:10: [agent]: `listen` = \"nowhere\" is not an address"),
        "{text}"
    );
    assert!(
        text.contains("bad.toml:7:9: [[probe]] \"x\": `every` = \"soon\" is not a duration"),
        "{text}"
    );
    assert!(text.contains("nothing was started"), "{text}");
    watchpost_e2e::cli::assert_no_panic(&outcome);
}
