//! The backup section: the restore drill's cost per GiB and
//! `pg-integrity`'s scan cost against a busy server, from
//! `tests/examples/backup_bench.rs` (a real primary, pgbench, the release
//! agent). Each figure is the median of the rounds.

use super::{Options, Row};

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
        "integrity-scan-rate" => (
            "pg-integrity scan: data checked per second while a run scans (verify_heapam + bt_index_check)",
            "the scan's read rate; at the default 7-day cycle it reads size / 7 a day",
        ),
        _ => return None,
    })
}

pub fn run(options: &Options) -> Result<Vec<Row>, String> {
    let rounds = if options.quick {
        1
    } else {
        options.rounds.min(2)
    };
    let mut args = vec![rounds.to_string()];
    if options.quick {
        args.push("--quick".into());
    }
    let mut rows = Vec::new();
    for value in super::example::json_lines("backup", "backup_bench", &args)? {
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
