//! The backup benchmarks behind BENCHMARKS.md's backup figures, on a real
//! PostgreSQL primary archiving its WAL:
//!
//! 1. the restore drill's cost per GiB: a `pgbench` database of about
//!    1 GiB (scale 64; `--quick`: 8), a plain `pg_basebackup`, 10 s of
//!    pgbench writes archived after it, then `watchpost check` of a
//!    `[[drill]]` with its defaults (amcheck and `pg_checksums` on): the
//!    restore + replay time (`postgresql.restore.duration`) and the
//!    verification time (`.verify_duration`), each per GiB restored;
//! 2. `pg-integrity`'s active scan against a busy server: `pgbench` TPS
//!    (4 clients, 30 s; `--quick` 10 s) alone, then with `pg-integrity`
//!    run back to back at its shipped defaults (each run checks at most
//!    `scan_budget_blocks` = 16384 blocks, `scan_time` = 2 s) — the worst
//!    case, the scan never resting; and the scan's rate, from which the
//!    share of time a weekly cycle keeps it busy follows.
//!
//! ```sh
//! cargo run --release -p watchpost-e2e --example backup_bench -- 1 [--quick]
//! ```
//!
//! The argument is the number of rounds (default 1). Prints one JSON line
//! per figure (`benchmark`, `value`, `unit`, `rounds`, `min`, `max`);
//! `cargo xtask bench --only backup` runs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use watchpost_e2e::backup::{
    BIN, archived_pair, base_backup, postgres_dir, run, switch_and_wait_archived,
};
use watchpost_e2e::cli::watchpost_run;
use watchpost_e2e::pg::{Cluster, SUPERUSER};
use watchpost_e2e::report::check;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn pgbench(primary: &Cluster, args: &[&str]) -> String {
    let socket = primary.data_dir().parent().unwrap();
    let mut c = Command::new(format!("{BIN}/pgbench"));
    c.args(args).arg("-h").arg(socket).args([
        "-p",
        &primary.port().to_string(),
        "-U",
        SUPERUSER,
        "postgres",
    ]);
    run(c)
}

/// TPS from pgbench's output.
fn tps(output: &str) -> f64 {
    output
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output:\n{output}"))
}

struct Drill {
    restore_s_per_gib: f64,
    verify_s_per_gib: f64,
    gib: f64,
}

/// One drill of a fresh `scale` database; the primary is kept for the
/// scan benchmark.
fn drill(root: &Path, scale: u32) -> (Drill, watchpost_e2e::pg::PgPair) {
    let archive = postgres_dir(root, "archive");
    let backups = postgres_dir(root, "backups");
    let mut pair = archived_pair(&archive);
    pair.standby.stop();
    pgbench(&pair.primary, &["-i", "-q", "-s", &scale.to_string()]);
    base_backup(&pair.primary, &backups.join("b1"));
    pgbench(&pair.primary, &["-c", "2", "-j", "2", "-T", "10"]);
    switch_and_wait_archived(&pair.primary);
    let state = postgres_dir(root, "state");
    let config = root.join("drill.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = \"{}\"\n\n[[drill]]\nname = \"restore\"\nbin_dir = \"{BIN}\"\n\
             backup = \"{}\"\narchive = \"{}\"\ntimeout = \"3600s\"\nreserve = \"256MiB\"\n",
            state.display(),
            backups.display(),
            archive.display()
        ),
    )
    .unwrap();
    let outcome = watchpost_run([
        "check",
        "restore",
        "-c",
        &config.display().to_string(),
        "--format",
        "json",
    ]);
    let json = outcome.json();
    assert_eq!(json["status"], "ok", "the drill failed: {json:#}");
    let value = |name: &str| -> f64 {
        json["measurements"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["name"] == name))
            .and_then(|m| m["value"].as_f64())
            .unwrap_or_else(|| panic!("no {name} in {json:#}"))
    };
    let gib = value("postgresql.restore.size") / GIB;
    let figures = Drill {
        restore_s_per_gib: value("postgresql.restore.duration") / gib,
        verify_s_per_gib: value("postgresql.restore.verify_duration") / gib,
        gib,
    };
    (figures, pair)
}

struct Scan {
    tps_alone: f64,
    tps_scanned: f64,
    rate_mb_s: f64,
    runs: usize,
}

/// pgbench TPS alone and beside back-to-back default `pg-integrity` runs.
fn scan(primary: &Cluster, seconds: u32) -> Scan {
    primary.execute(
        "CREATE EXTENSION IF NOT EXISTS amcheck;
         GRANT EXECUTE ON FUNCTION verify_heapam(regclass, boolean, boolean, text, bigint, bigint)
           TO watchpost;
         GRANT EXECUTE ON FUNCTION bt_index_check(regclass, boolean) TO watchpost;",
    );
    let seconds = seconds.to_string();
    let load = ["-c", "4", "-j", "2", "-T", &seconds];
    let tps_alone = tps(&pgbench(primary, &load));
    let probe = watchpost_e2e::probes::path("pg-integrity");
    let target = vec!["--target".to_string(), format!("primary={}", primary.dsn())];
    let (tps_scanned, rates) = std::thread::scope(|scope| {
        let bench = scope.spawn(|| tps(&pgbench(primary, &load)));
        let mut rates = Vec::new();
        while !bench.is_finished() {
            let report = check(&probe, &target);
            assert_ne!(report.status(), "critical", "{:#}", report.json);
            if let Some(rate) = report
                .measurements("postgresql.integrity.scan.rate")
                .first()
                .and_then(|m| m["value"].as_f64())
            {
                rates.push(rate);
            }
        }
        (bench.join().unwrap(), rates)
    });
    assert!(!rates.is_empty(), "no scan ran beside the load");
    Scan {
        tps_alone,
        tps_scanned,
        rate_mb_s: rates.iter().sum::<f64>() / rates.len() as f64 / 1e6,
        runs: rates.len(),
    }
}

fn line(name: &str, unit: &str, values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "{{\"benchmark\":\"{name}\",\"unit\":\"{unit}\",\"rounds\":{},\"value\":{:.3},\"min\":{:.3},\"max\":{:.3}}}",
        values.len(),
        values[values.len() / 2],
        values[0],
        values[values.len() - 1]
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|a| a.parse().expect("rounds: a number"))
        .unwrap_or(1);
    let (scale, seconds) = if quick { (8, 10) } else { (64, 30) };
    let mut restore = Vec::new();
    let mut verify = Vec::new();
    let mut size = Vec::new();
    let mut alone = Vec::new();
    let mut scanned = Vec::new();
    let mut cost = Vec::new();
    let mut rate = Vec::new();
    for round in 0..rounds {
        let dir = tempfile::Builder::new()
            .prefix("watchpost-backup-bench-")
            .tempdir()
            .unwrap();
        let root: PathBuf = dir.path().to_path_buf();
        let (d, pair) = drill(&root, scale);
        eprintln!(
            "round {round}: drill of {:.2} GiB: restore+replay {:.1} s/GiB, verify {:.1} s/GiB",
            d.gib, d.restore_s_per_gib, d.verify_s_per_gib
        );
        restore.push(d.restore_s_per_gib);
        verify.push(d.verify_s_per_gib);
        size.push(d.gib);
        let s = scan(&pair.primary, seconds);
        eprintln!(
            "round {round}: pgbench {:.0} TPS alone, {:.0} TPS beside {} scan runs at {:.1} MB/s",
            s.tps_alone, s.tps_scanned, s.runs, s.rate_mb_s
        );
        alone.push(s.tps_alone);
        scanned.push(s.tps_scanned);
        cost.push((1.0 - s.tps_scanned / s.tps_alone) * 100.0);
        rate.push(s.rate_mb_s);
        drop(pair);
        drop(dir);
    }
    println!("{}", line("drill-size", "GiB", &mut size));
    println!("{}", line("drill-restore-per-gib", "s/GiB", &mut restore));
    println!("{}", line("drill-verify-per-gib", "s/GiB", &mut verify));
    println!("{}", line("integrity-tps-alone", "TPS", &mut alone));
    println!("{}", line("integrity-tps-scanned", "TPS", &mut scanned));
    println!("{}", line("integrity-tps-cost", "%", &mut cost));
    println!("{}", line("integrity-scan-rate", "MB/s", &mut rate));
}
