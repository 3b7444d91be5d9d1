//! Hostile probes end as `unknown` with the right error kind, within their
//! limits, and the agent process stays healthy.

use std::time::{Duration, Instant};
use watchpost_e2e::cli::{Outcome, assert_no_panic, watchpost_run};
use watchpost_e2e::probes;

fn check(probe: &str, extra: &[&str]) -> (Outcome, serde_json::Value) {
    let mut args = vec![
        "check".to_string(),
        probes::path(probe).display().to_string(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let outcome = watchpost_run(&args);
    assert_no_panic(&outcome);
    let report = outcome.json();
    (outcome, report)
}

fn assert_unknown(outcome: &Outcome, report: &serde_json::Value, kind: &str) {
    assert_eq!(outcome.code, 3, "{report:#}");
    assert_eq!(report["status"], "unknown", "{report:#}");
    assert_eq!(report["error"]["kind"], kind, "{report:#}");
}

#[test]
fn an_infinite_loop_is_cut_off_at_the_timeout() {
    let (outcome, report) = check("spin", &["--timeout", "500ms"]);
    assert_unknown(&outcome, &report, "timeout");
    let took = report["duration_ms"].as_f64().unwrap();
    // Not before the deadline; after it, within a bound loose enough for
    // a loaded CI machine (it is the cut-off that is tested, not speed:
    // an uncut loop would run until the harness gives up).
    assert!(
        (500.0..2500.0).contains(&took),
        "ended after {took} ms; the deadline is 500 ms"
    );
}

#[test]
fn a_probe_blocked_in_a_host_call_is_cut_off_at_the_timeout() {
    let started = Instant::now();
    let (outcome, report) = check("sleepy", &["--timeout", "300ms"]);
    assert_unknown(&outcome, &report, "timeout");
    let took = report["duration_ms"].as_f64().unwrap();
    assert!((300.0..2300.0).contains(&took), "ended after {took} ms");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_memory_bomb_hits_its_cap_and_the_agent_stays_small() {
    let (outcome, report) = check("membomb", &["--memory", "32MiB"]);
    assert_unknown(&outcome, &report, "memory");
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("limit is 32.0 MiB"), "{message}");
    // The whole agent process (runtime, compiler, the probe's capped memory)
    // stays far below what an unbounded probe would take.
    assert!(
        outcome.max_rss_kib < 300 * 1024,
        "agent peak RSS {} KiB",
        outcome.max_rss_kib
    );
}

#[test]
fn a_panic_is_a_trap_that_carries_the_panic_message() {
    let (outcome, report) = check("panics", &[]);
    assert_unknown(&outcome, &report, "trap");
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains("the probe panicked on purpose"),
        "{message}"
    );
    assert!(
        message.contains("(at tests/probes/panics/src/lib.rs:"),
        "the panic location is kept: {message}"
    );
}

#[test]
fn a_100_mb_message_is_truncated_not_an_oom() {
    let (outcome, report) = check("bigoutput", &["--memory", "512MiB"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let message = report["message"].as_str().unwrap();
    assert!(message.len() < 2048, "message of {} bytes", message.len());
    assert!(
        message.ends_with("[truncated: the message was 100000000 bytes]"),
        "{}",
        &message[message.len() - 80..]
    );
    // The probe needed ~200 MB for its own copies; the agent did not add
    // more than the one transient copy it had to read.
    assert!(
        outcome.max_rss_kib < 700 * 1024,
        "agent peak RSS {} KiB",
        outcome.max_rss_kib
    );
}

#[test]
fn a_100_mb_message_over_the_memory_cap_is_a_memory_error() {
    let (outcome, report) = check("bigoutput", &[]);
    assert_unknown(&outcome, &report, "memory");
}

#[test]
fn a_target_that_is_not_granted_is_denied_even_if_the_probe_hides_it() {
    let (outcome, report) = check("sneaky", &[]);
    assert_unknown(&outcome, &report, "denied");
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("not granted target `secret`"), "{message}");
}

#[test]
fn a_probe_importing_an_unknown_interface_is_refused_at_load() {
    let (outcome, report) = check("badimport", &[]);
    assert_unknown(&outcome, &report, "load");
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains("acme:evil/net@1.0.0"),
        "the import is named: {message}"
    );
    assert!(
        message.contains("badimport.wasm"),
        "the file is named: {message}"
    );
}

#[test]
fn hostile_runs_do_not_leak_into_the_next_run() {
    // Each run has a fresh store: after a bomb, a normal probe is fine.
    for probe in ["membomb", "trivial"] {
        let (outcome, _) = check(probe, &["--memory", "16MiB"]);
        assert!(outcome.code == 0 || probe == "membomb");
    }
}
