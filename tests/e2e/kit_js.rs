//! The JavaScript probe kit (`examples/probes/js`), built from source with
//! componentize-js and run through `watchpost check`.

use watchpost_e2e::cli::{Outcome, check_json};
use watchpost_e2e::kits::{Kit, probe};
use watchpost_e2e::report::{measurements, value_where};

fn check(extra: &[&str]) -> (Outcome, serde_json::Value) {
    check_json(&probe(Kit::Js, "fs-readonly"), extra)
}

#[test]
fn the_root_filesystem_is_mounted_and_writable() {
    let (outcome, report) = check(&["--set", "mounts=/"]);
    assert_eq!(outcome.code, 0, "{report:#}");
    assert_eq!(report["probe"], "fs-readonly");
    assert_eq!(report["status"], "ok");
    assert_eq!(
        report["message"], "1 filesystems mounted and writable",
        "{report:#}"
    );
    assert_eq!(
        value_where(&report, "system.filesystem.mounted", "mountpoint", "/"),
        1.0
    );
    assert_eq!(
        value_where(&report, "system.filesystem.read_only", "mountpoint", "/"),
        0.0
    );
    let root = measurements(&report, "system.filesystem.read_only")[0];
    assert!(root["attributes"]["device"].is_string(), "{root}");
    assert!(root["attributes"]["type"].is_string(), "{root}");
}

#[test]
fn a_required_mount_that_is_missing_is_critical() {
    let (outcome, report) = check(&["--set", "mounts=/, /no/such/mount/"]);
    assert_eq!(outcome.code, 2, "{report:#}");
    assert_eq!(report["status"], "critical");
    assert_eq!(report["message"], "/no/such/mount is not mounted");
    assert_eq!(
        value_where(
            &report,
            "system.filesystem.mounted",
            "mountpoint",
            "/no/such/mount"
        ),
        0.0
    );
}

#[test]
fn without_config_every_filesystem_is_checked() {
    let (outcome, report) = check(&[]);
    let read_only = measurements(&report, "system.filesystem.read_only");
    assert!(!read_only.is_empty(), "{report:#}");
    assert!(measurements(&report, "system.filesystem.mounted").is_empty());
    let any_read_only = read_only.iter().any(|m| m["value"] == 1.0);
    // Whatever this machine mounts, the status follows the measurements.
    assert_eq!(
        outcome.code,
        if any_read_only { 2 } else { 0 },
        "{report:#}"
    );
}
