//! What a probe emits cannot break what consumes it: attributes that
//! become one Prometheus label (`a.b` and `a_b`) are refused as the
//! probe's invalid output, so `/metrics` stays valid (`promtool check
//! metrics`) and a real Prometheus keeps the target up with every other
//! metric of the node; a probe's log line cannot forge a line of the
//! agent's log.

use std::time::{Duration, Instant};
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for, wasm};
use watchpost_e2e::prometheus::{Prometheus, promtool_check};

#[test]
fn clashing_attributes_do_not_break_the_scrape() {
    let config = format!(
        "[[probe]]\nname = \"clashing\"\nwasm = \"{}\"\nevery = \"1s\"\n\n\
         [[probe]]\nname = \"switch\"\nwasm = \"{}\"\nevery = \"1s\"\nconfig = {{ status = \"ok\" }}\n",
        wasm("clashing"),
        wasm("flip")
    );
    let agent = Agent::start(&config);
    let view = agent.wait_for_runs("clashing", 2);
    agent.wait_for_runs("switch", 1);
    assert_eq!(view["status"], "unknown", "{view:#}");
    let error = &view["last_report"]["error"];
    assert_eq!(error["kind"], "invalid-output", "{view:#}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("`a.b`") && message.contains("`a_b`") && message.contains("rename"),
        "{message}"
    );

    let (code, metrics) = agent.get("/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("flip_phase{probe=\"switch\""), "{metrics}");
    assert!(!metrics.contains("clash_value"), "{metrics}");
    promtool_check(&metrics);

    // A real Prometheus keeps the target up and has the node's metrics.
    let prometheus = Prometheus::start(&[format!("127.0.0.1:{}", agent.port)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prometheus.query("up{job=\"watchpost\"}").unwrap();
        let flip = prometheus.query("flip_phase{probe=\"switch\"}").unwrap();
        let status = prometheus
            .query("watchpost_probe_status{probe=\"clashing\"}")
            .unwrap();
        if up.first().is_some_and(|s| s["value"][1] == "1") && !flip.is_empty() {
            // The clashing probe shows as unknown (3).
            assert_eq!(
                status.first().map(|s| s["value"][1].clone()),
                Some("3".into())
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the target is not up with data after 60 s: {}",
            prometheus.targets()
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    // The probe's newline is escaped: no forged line in the agent's log.
    let log = wait_for("the probe's log line", PATIENCE, || {
        let log = agent.log();
        log.contains("forged line").then_some(log)
    });
    assert!(log.contains("first\\n2026-01-01T00:00:00Z ERROR"), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z ERROR watchpost: forged")),
        "{log}"
    );
}
