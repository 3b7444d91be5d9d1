//! The `etcd` section: how many etcd revisions per second an idle
//! three-node cluster writes, and one under a steady write load (the
//! leader's optime moving), from `tests/examples/etcd_revisions.rs`. Every
//! revision stays in etcd's database until it is compacted, and etcd
//! refuses writes at its quota: the quieter, the longer to NOSPACE.

use super::{Options, Row};
use crate::cargo;

pub fn run(options: &Options) -> Result<Vec<Row>, String> {
    let seconds = if options.quick { "10" } else { "30" };
    let output = cargo()
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "watchpost-e2e",
            "--example",
            "etcd_revisions",
            "--",
            seconds,
        ])
        .output()
        .map_err(|e| format!("cannot run the etcd revision benchmark: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the etcd revision benchmark failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut rows = Vec::new();
    for line in stdout.lines() {
        eprintln!("xtask: {line}");
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (what, note) = match value["benchmark"].as_str() {
            Some("etcd-revisions-idle") => (
                "cluster: etcd revisions per second, three idle nodes (shipped defaults)",
                "goal <= 0.5; Patroni ~0.3 (10 s loop); before writes-on-change 8.0",
            ),
            Some("etcd-revisions-writes") => (
                "cluster: etcd revisions per second, three nodes, an INSERT every 100 ms on the leader",
                "the optime moves every loop",
            ),
            _ => continue,
        };
        rows.push(Row::new(
            what,
            format!(
                "{:.2} rev/s ({} revisions in {} s)",
                value["per_second"].as_f64().unwrap_or(f64::NAN),
                value["revisions"],
                value["seconds"]
            ),
            note,
        ));
    }
    Ok(rows)
}
