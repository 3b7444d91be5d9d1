//! The Python probe kit (`examples/probes/python`), built from source with
//! componentize-py and run through `watchpost check`: its reports, its
//! config handling and its use of the `host` and `sql` capabilities.
//! (Running the kits' probes inside the agent, `watchpost run`, belongs
//! with the agent's own tests once it exists.)

use watchpost_e2e::cli::{Outcome, check_json};
use watchpost_e2e::kits::{Kit, probe};
use watchpost_e2e::report::{value, value_where};

fn check(name: &str, extra: &[&str]) -> (Outcome, serde_json::Value) {
    check_json(&probe(Kit::Python, name), extra)
}

/// pg-node with limits that this machine meets whatever its disk and
/// uptime, watching a process that surely runs: the agent itself.
const CALM: &[&str] = &[
    "--set",
    "process=watchpost",
    "--set",
    "disk_warning=100",
    "--set",
    "disk_critical=100",
    "--set",
    "uptime_warning=0",
];

#[test]
fn pg_node_reports_processes_disk_and_uptime() {
    let (outcome, report) = check("pg-node", CALM);
    assert_eq!(outcome.code, 0, "{report:#}");
    assert_eq!(report["probe"], "pg-node");
    assert_eq!(report["status"], "ok");
    assert!(report["error"].is_null(), "{report:#}");
    assert_eq!(
        value_where(&report, "process.up", "process", "watchpost"),
        1.0
    );
    assert!(value_where(&report, "process.count", "process", "watchpost") >= 1.0);
    assert!(value_where(&report, "process.memory.usage", "process", "watchpost") > 0.0);
    let disk = &report["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "system.filesystem.utilization")
        .unwrap_or_else(|| panic!("no filesystem measurement: {report:#}"));
    let used = disk["value"].as_f64().unwrap();
    assert!(used > 0.0 && used < 1.0, "{disk}");
    assert!(disk["attributes"]["mountpoint"].is_string(), "{disk}");
    assert_eq!(disk["unit"], "1");
    assert!(value(&report, "system.uptime") > 0.0);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("`watchpost` processes"),
        "{report:#}"
    );
}

#[test]
fn pg_node_is_critical_when_the_server_process_is_missing() {
    let mut args = CALM.to_vec();
    args.extend(["--set", "process=no-such-server"]);
    let (outcome, report) = check("pg-node", &args);
    assert_eq!(outcome.code, 2, "{report:#}");
    assert_eq!(report["status"], "critical");
    assert_eq!(
        value_where(&report, "process.up", "process", "no-such-server"),
        0.0
    );
    assert_eq!(
        value_where(&report, "process.count", "process", "no-such-server"),
        0.0
    );
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("0 `no-such-server` processes running"),
        "{report:#}"
    );
}

#[test]
fn pg_node_warns_about_a_full_disk_and_a_recent_reboot() {
    let mut args = CALM.to_vec();
    args.extend(["--set", "disk_warning=0", "--set", "uptime_warning=1e12"]);
    let (outcome, report) = check("pg-node", &args);
    assert_eq!(outcome.code, 1, "{report:#}");
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("% full"), "{message}");
    assert!(message.contains("the host rebooted"), "{message}");
}

#[test]
fn a_bad_config_value_is_unknown_with_a_message_naming_the_key() {
    let (outcome, report) = check("pg-node", &["--set", "min_count=lots"]);
    assert_eq!(outcome.code, 3, "{report:#}");
    assert_eq!(report["error"]["kind"], "probe", "{report:#}");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("config `min_count` = 'lots' is not a number"),
        "{message}"
    );
}

#[test]
fn long_transactions_says_why_it_cannot_tell_when_the_server_is_down() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let (outcome, report) = check(
        "pg-long-transactions",
        &[
            "--target",
            "primary=host=127.0.0.1 port=1 user=watchpost dbname=postgres connect_timeout=5",
        ],
    );
    assert_eq!(outcome.code, 3, "{report:#}");
    assert_eq!(report["status"], "unknown");
    assert!(report["error"].is_null(), "the probe decided: {report:#}");
    let message = report["message"].as_str().unwrap();
    assert!(
        message.starts_with("cannot query `primary`: unreachable:"),
        "{message}"
    );
}

#[test]
fn long_transactions_without_a_granted_target_is_denied() {
    let (outcome, report) = check("pg-long-transactions", &[]);
    assert_eq!(outcome.code, 3, "{report:#}");
    assert_eq!(report["error"]["kind"], "denied", "{report:#}");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not granted target `primary`"),
        "{report:#}"
    );
}
