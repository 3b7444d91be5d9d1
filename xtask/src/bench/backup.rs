//! The backup section: the restore drill's cost per GiB and
//! `pg-integrity`'s scan cost against a busy server, from
//! `tests/examples/backup_bench.rs` (a real primary, pgbench, the release
//! agent). Each figure is the median of the rounds.

use super::{Options, Row};
use crate::cargo;

/// What each figure of the example is, for the table.
fn describe(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "drill-size" => (
            "restore drill: database restored (pgbench, plain pg_basebackup)",
            "",
        ),
        "drill-restore-per-gib" => (
            "restore drill: restore + WAL replay to a promoted copy, per GiB (RTO part)",
            "cp of the backup, 10 s of pgbench WAL replayed",
        ),
        "drill-verify-per-gib" => (
            "restore drill: verification per GiB (amcheck heapallindexed over every B-tree index, pg_checksums)",
            "",
        ),
        "integrity-tps-alone" => (
            "pg-integrity scan: pgbench TPS without the scan (4 clients)",
            "",
        ),
        "integrity-tps-scanned" => (
            "pg-integrity scan: pgbench TPS with default runs back to back (16384 blocks or 2 s each)",
            "worst case: the scan never rests",
        ),
        "integrity-tps-cost" => (
            "pg-integrity scan: TPS lost while a scan runs",
            "a weekly cycle keeps the scan busy size / (rate x 7 d) of the time",
        ),
        "integrity-scan-rate" => ("pg-integrity scan: pages checked per second while busy", ""),
        _ => return None,
    })
}

pub fn run(options: &Options) -> Result<Vec<Row>, String> {
    let rounds = if options.quick {
        1
    } else {
        options.rounds.min(2)
    };
    let mut command = cargo();
    command.args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "watchpost-e2e",
        "--example",
        "backup_bench",
        "--",
    ]);
    command.arg(rounds.to_string());
    if options.quick {
        command.arg("--quick");
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run the backup benchmark: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the backup benchmark failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut rows = Vec::new();
    for line in stdout.lines() {
        eprintln!("xtask: {line}");
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some((what, note)) = value["benchmark"].as_str().and_then(describe) else {
            continue;
        };
        let unit = value["unit"].as_str().unwrap_or("");
        rows.push(Row::new(
            what,
            format!(
                "{:.1} {unit} (range {:.1}-{:.1}, {} rounds)",
                value["value"].as_f64().unwrap_or(f64::NAN),
                value["min"].as_f64().unwrap_or(f64::NAN),
                value["max"].as_f64().unwrap_or(f64::NAN),
                value["rounds"]
            ),
            note,
        ));
    }
    Ok(rows)
}
