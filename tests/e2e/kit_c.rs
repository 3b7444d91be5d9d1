//! The C probe kit (`examples/probes/c`), built from source with Debian's
//! clang and wasi-libc, `wit-bindgen c` and `wasm-component-ld`, and run
//! through `watchpost check`.

use watchpost_e2e::cli::{Outcome, check_json};
use watchpost_e2e::kits::{Kit, probe};
use watchpost_e2e::report::value;

fn check(extra: &[&str]) -> (Outcome, serde_json::Value) {
    check_json(&probe(Kit::C, "memory-pressure"), extra)
}

#[test]
fn memory_pressure_reports_memory_and_swap() {
    let (outcome, report) = check(&["--set", "warning=100", "--set", "critical=100"]);
    assert_eq!(outcome.code, 0, "{report:#}");
    assert_eq!(report["probe"], "memory-pressure");
    assert!(report["error"].is_null(), "{report:#}");
    let memory = value(&report, "system.memory.utilization");
    assert!(memory > 0.0 && memory < 1.0, "{report:#}");
    let swap = value(&report, "system.paging.utilization");
    assert!((0.0..=1.0).contains(&swap), "{report:#}");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("% of memory and"),
        "{report:#}"
    );
}

#[test]
fn memory_pressure_follows_its_thresholds() {
    let (outcome, report) = check(&["--set", "warning=0", "--set", "critical=100"]);
    assert_eq!(outcome.code, 1, "{report:#}");
    let (outcome, report) = check(&["--set", "critical=0"]);
    assert_eq!(outcome.code, 2, "{report:#}");
    assert_eq!(report["status"], "critical");
}

#[test]
fn a_bad_config_value_is_unknown_with_a_message_naming_the_key() {
    let (outcome, report) = check(&["--set", "warning=lots"]);
    assert_eq!(outcome.code, 3, "{report:#}");
    assert_eq!(report["error"]["kind"], "probe");
    assert_eq!(
        report["error"]["message"],
        "config `warning` = \"lots\" is not a number (a percentage)"
    );
}
