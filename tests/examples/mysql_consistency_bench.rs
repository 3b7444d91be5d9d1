//! `mysql-consistency` against `pt-table-checksum` on the same data: a
//! MariaDB primary and GTID replica (the e2e harness, a 256 MiB buffer
//! pool on both so that the table is read from memory), a table of
//! 1,000,000 rows, one row changed on the replica without logging it
//! (`sql_log_bin = 0`), then each tool asked to find it:
//!
//! - `mysql-consistency` through `watchpost check`, its defaults except a
//!   time budget that lets one run cover the whole table (by default a
//!   run stops starting chunks after 2 s and the next run goes on where
//!   it stopped);
//! - `pt-table-checksum` (Debian's `percona-toolkit`) with its defaults
//!   (`--chunk-time 0.5`), `--replicate percona.checksums` and the
//!   replica named in a DSN table.
//!
//! For each: the wall time until it reported the difference, and the CPU
//! time the primary's `mariadbd` spent meanwhile (the load it adds on the
//! primary); also the replica's. Each must find the row: a tool that
//! reports no difference fails the benchmark.
//!
//! ```sh
//! cargo run --release -p watchpost-e2e --example mysql_consistency_bench -- 1
//! ```
//!
//! The argument is the number of rounds (default 1). Prints one JSON line
//! per tool and figure (`benchmark`, `value`, `unit`, `rounds`, `min`,
//! `max`); `cargo xtask bench --only mysql-consistency` runs it.

use std::process::Command;
use std::time::Instant;
use watchpost_e2e::mariadb::MariadbPair;
use watchpost_e2e::probes;
use watchpost_e2e::report::{check, sets};

/// Rows in the compared table.
const ROWS: u32 = 1_000_000;
/// The row changed on the replica only.
const CHANGED: u32 = 777_777;

/// CPU seconds (user + system) of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15 (11 and 12 after the name).
    (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) / 100.0
}

/// What one tool's pass cost.
struct Pass {
    seconds: f64,
    primary_cpu: f64,
    replica_cpu: f64,
}

/// Time `pass` and the servers' CPU meanwhile.
fn measure(pair: &MariadbPair, pass: impl FnOnce()) -> Pass {
    let (p, r) = (pair.primary.pid().unwrap(), pair.replica.pid().unwrap());
    let (p0, r0) = (cpu_seconds(p), cpu_seconds(r));
    let started = Instant::now();
    pass();
    Pass {
        seconds: started.elapsed().as_secs_f64(),
        primary_cpu: cpu_seconds(p) - p0,
        replica_cpu: cpu_seconds(r) - r0,
    }
}

fn watchpost(pair: &MariadbPair) {
    let mut args = pair.target_args();
    args.extend(sets(&[("tables", "app.big"), ("time_budget", "600s")]));
    args.extend(["--timeout".to_string(), "900s".to_string()]);
    let report = check(&probes::path("mysql-consistency"), &args);
    assert_eq!(report.status(), "critical", "{:#}", report.json);
    assert_eq!(
        report.value("mysql.consistency.mismatched_chunks"),
        1.0,
        "{:#}",
        report.json
    );
    eprintln!("mysql-consistency: {}", report.message());
}

fn pt_table_checksum(pair: &MariadbPair) {
    let output = Command::new("pt-table-checksum")
        .arg("--no-version-check")
        // The replica logs MIXED (MariaDB's default); the tool sets
        // STATEMENT in its own session, which a MIXED replica applies,
        // but refuses to start on any non-STATEMENT replica unless told.
        .arg("--no-check-binlog-format")
        .args(["--databases", "app", "--tables", "big"])
        .args(["--replicate", "percona.checksums"])
        .arg(format!(
            "--recursion-method=dsn=h=127.0.0.1,P={},u=root,D=percona,t=dsns",
            pair.primary.port()
        ))
        .arg(format!("h=127.0.0.1,P={},u=root", pair.primary.port()))
        .output()
        .expect("run pt-table-checksum (Debian's percona-toolkit)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("pt-table-checksum ({}):\n{stdout}{stderr}", output.status);
    // TS ERRORS DIFFS ROWS DIFF_ROWS CHUNKS SKIPPED TIME TABLE
    let diffs: u64 = stdout
        .lines()
        .find(|l| l.trim_end().ends_with("app.big"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no line for app.big in pt-table-checksum's output"));
    assert!(diffs >= 1, "pt-table-checksum found no difference");
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
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("rounds: a number"))
        .unwrap_or(1);
    // (tool, [seconds, primary CPU, replica CPU] per round)
    let mut figures: Vec<(&str, [Vec<f64>; 3])> = vec![
        ("watchpost", Default::default()),
        ("pt-table-checksum", Default::default()),
    ];
    for round in 0..rounds {
        let pair = MariadbPair::with_settings(&["innodb_buffer_pool_size=256M"]);
        pair.primary.execute(&format!(
            "CREATE TABLE app.big (id int PRIMARY KEY, owner varchar(40), \
               balance decimal(12,2), note varchar(40)); \
             INSERT INTO app.big SELECT seq, CONCAT('owner', seq), seq * 1.5, 'n' \
               FROM app.seq_1_to_{ROWS}; \
             CREATE DATABASE percona; \
             CREATE TABLE percona.dsns (id int AUTO_INCREMENT PRIMARY KEY, parent_id int, \
               dsn varchar(255) NOT NULL); \
             INSERT INTO percona.dsns (dsn) VALUES ('h=127.0.0.1,P={},u=root');",
            pair.replica.port()
        ));
        pair.sync();
        pair.replica.execute(&format!(
            "SET SESSION sql_log_bin = 0; UPDATE app.big SET note = 'changed' WHERE id = {CHANGED}"
        ));
        // Warm both buffer pools the same way before either tool reads.
        for server in [&pair.primary, &pair.replica] {
            server.execute("SELECT COUNT(*), SUM(LENGTH(owner)) FROM app.big");
        }
        let passes = [
            measure(&pair, || watchpost(&pair)),
            measure(&pair, || pt_table_checksum(&pair)),
        ];
        for ((tool, series), pass) in figures.iter_mut().zip(passes) {
            eprintln!(
                "round {round}: {tool}: {:.1} s, primary CPU {:.1} s, replica CPU {:.1} s",
                pass.seconds, pass.primary_cpu, pass.replica_cpu
            );
            series[0].push(pass.seconds);
            series[1].push(pass.primary_cpu);
            series[2].push(pass.replica_cpu);
        }
    }
    for (tool, [seconds, primary, replica]) in &mut figures {
        println!(
            "{}",
            line(&format!("{tool}-consistency-time"), "s", seconds)
        );
        println!(
            "{}",
            line(&format!("{tool}-consistency-primary-cpu"), "s", primary)
        );
        println!(
            "{}",
            line(&format!("{tool}-consistency-replica-cpu"), "s", replica)
        );
    }
}
