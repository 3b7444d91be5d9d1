//! The built-in host probes report plausible values on this machine, and
//! go critical when their thresholds say they must.

use watchpost_e2e::cli::{assert_no_panic, watchpost_run};
use watchpost_e2e::probes;

fn check_json(probe: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let path = probes::path(probe);
    let mut args = vec![
        "check".to_string(),
        path.display().to_string(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let outcome = watchpost_run(&args);
    assert_no_panic(&outcome);
    (outcome.code, outcome.json())
}

fn values(report: &serde_json::Value, name: &str) -> Vec<f64> {
    report["measurements"]
        .as_array()
        .expect("measurements array")
        .iter()
        .filter(|m| m["name"] == name)
        .map(|m| m["value"].as_f64().expect("numeric value"))
        .collect()
}

#[test]
fn host_cpu_is_ok_with_plausible_values() {
    let (code, report) = check_json("host-cpu", &[]);
    assert!(report["error"].is_null(), "{report:#}");
    let utilization = values(&report, "system.cpu.utilization");
    assert_eq!(utilization.len(), 1);
    assert!((0.0..=1.0).contains(&utilization[0]), "{utilization:?}");
    // Other tests load the machine: the status must follow the default
    // limits (90 % / 98 %) for whatever utilization was measured.
    let percent = utilization[0] * 100.0;
    let expected = if percent > 98.0 {
        2
    } else if percent > 90.0 {
        1
    } else {
        0
    };
    assert_eq!(code, expected, "{report:#}");
    let cores = values(&report, "system.cpu.logical.count")[0];
    assert_eq!(
        cores as usize,
        std::thread::available_parallelism().unwrap().get()
    );
    assert!(values(&report, "system.cpu.load_average.1m")[0] >= 0.0);
}

#[test]
fn host_cpu_is_critical_when_any_load_is_too_much() {
    let (code, report) = check_json("host-cpu", &["--set", "warning=-1", "--set", "critical=-1"]);
    assert_eq!(
        (code, report["status"].as_str()),
        (2, Some("critical")),
        "{report:#}"
    );
}

#[test]
fn host_memory_is_ok_with_plausible_values() {
    let (code, report) = check_json("host-memory", &[]);
    assert_eq!(code, 0, "{report:#}");
    let total = values(&report, "system.memory.limit")[0];
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: f64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (total - kib * 1024.0).abs() / total < 0.01,
        "total {total} vs /proc/meminfo {kib} KiB"
    );
    let utilization = values(&report, "system.memory.utilization")[0];
    assert!(utilization > 0.0 && utilization < 1.0, "{utilization}");
}

#[test]
fn host_memory_is_critical_below_its_use() {
    let (code, report) = check_json("host-memory", &["--set", "critical=0.001"]);
    assert_eq!(
        (code, report["status"].as_str()),
        (2, Some("critical")),
        "{report:#}"
    );
}

#[test]
fn host_disk_reports_the_root_filesystem() {
    let (code, report) = check_json("host-disk", &[]);
    let utilization: Vec<&serde_json::Value> = report["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "system.filesystem.utilization")
        .collect();
    let root = utilization
        .iter()
        .find(|m| m["attributes"]["mountpoint"] == "/")
        .unwrap_or_else(|| panic!("no / in {report:#}"));
    let value = root["value"].as_f64().unwrap();
    assert!(value > 0.0 && value < 1.0, "{value}");
    // The probe's own status follows its default limits (85 % / 95 %).
    let expected = if value > 0.95 {
        2
    } else if value > 0.85 {
        1
    } else {
        0
    };
    assert_eq!(code, expected, "{report:#}");
}

#[test]
fn host_disk_is_critical_with_critical_set_to_one_percent() {
    let (code, report) = check_json("host-disk", &["--set", "critical=1"]);
    assert_eq!(
        (code, report["status"].as_str()),
        (2, Some("critical")),
        "{report:#}"
    );
}

#[test]
fn host_disk_is_critical_when_a_required_mount_is_missing() {
    let (code, report) = check_json("host-disk", &["--set", "mounts=/,/no/such/mount"]);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/mount is not mounted")
    );
}

#[test]
fn process_probe_finds_a_running_process() {
    // This test process itself is running under this name.
    let me = std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_string();
    let (code, report) = check_json("process", &["--set", &format!("name={me}")]);
    assert_eq!(code, 0, "{report:#}");
    assert!(values(&report, "process.count")[0] >= 1.0);
    assert_eq!(values(&report, "process.up")[0], 1.0);
    assert!(values(&report, "process.memory.usage")[0] > 0.0);
}

#[test]
fn process_probe_is_critical_when_the_process_is_absent() {
    let (code, report) = check_json("process", &["--set", "name=no-such-process-xyz"]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(values(&report, "process.up")[0], 0.0);
}

#[test]
fn process_probe_without_a_name_says_which_key_to_set() {
    let (code, report) = check_json("process", &[]);
    assert_eq!(code, 3);
    assert_eq!(report["error"]["kind"], "probe");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("config `name` is required"),
        "{report:#}"
    );
}

#[test]
fn builtin_probes_run_from_the_binary_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = watchpost_e2e::cli::watchpost();
    command
        .current_dir(dir.path())
        .args(["check", "builtin:host-disk", "--format", "json"]);
    let outcome = watchpost_e2e::cli::run(command);
    assert!(outcome.code <= 2, "{}", outcome.all_output());
    assert_eq!(outcome.json()["probe"], "host-disk");
}
