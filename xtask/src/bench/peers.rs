//! `--only peers`: the failover time of the peers, measured on this
//! machine the way our own failover benchmark measures Watchpost's (from
//! the failure to the first write the promoted standby accepts, tried
//! every 100 ms): repmgr (server crash, repmgrd running), Patroni (node
//! loss) and pg_auto_failover (server crash, keeper running), each with
//! its default timings, installed from Debian's packages. The method is
//! in `xtask/peers/*.sh` (one script per peer, `lib.sh` the shared clock).
//! Patroni's planned switchover is measured by
//! `tests/examples/patroni_switchover_bench.rs` with the writer and HAProxy
//! of our own switchover benchmark (its packages are in
//! [`SWITCHOVER_PACKAGES`]); Monit and `check_pgsql` are compared in the
//! `monit` and `per-run` sections, which `peers` runs too.

use super::{Options, Row, stats};
use std::path::Path;
use std::process::Command;

/// (script, what is measured, Debian packages it needs).
const PEERS: &[(&str, &str, &[&str])] = &[
    (
        "repmgr.sh",
        "repmgr 5.3 (defaults): primary's server stopped, repmgrd running -> write on the promoted standby",
        &["postgresql-15-repmgr"],
    ),
    (
        "patroni.sh",
        "Patroni 3.0 (defaults: ttl 30 s, loop_wait 10 s): leader's node lost (Patroni kill -9 + server stopped) -> write on the new leader",
        &["patroni", "etcd-server", "curl"],
    ),
    (
        "pg_auto_failover.sh",
        "pg_auto_failover 2.0 (defaults): primary's server stopped, keeper running -> write on the promoted secondary",
        &["postgresql-15-auto-failover", "pg-auto-failover-cli"],
    ),
];

/// What the Patroni switchover benchmark needs.
pub const SWITCHOVER_PACKAGES: &[&str] = &["patroni", "etcd-server", "haproxy"];

/// The Debian packages the peers need that are not installed (each once).
pub fn missing_packages() -> Vec<&'static str> {
    let mut wanted: Vec<&'static str> = PEERS
        .iter()
        .flat_map(|(_, _, packages)| packages.iter().copied())
        .chain(SWITCHOVER_PACKAGES.iter().copied())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    not_installed(&wanted)
}

/// Those of the Debian packages `wanted` that are not installed.
pub fn not_installed(wanted: &[&'static str]) -> Vec<&'static str> {
    wanted
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect()
}

/// The milliseconds of a script's `RESULT tool=NAME failover_ms=N` line.
pub fn result_ms(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .filter(|l| l.starts_with("RESULT "))
        .flat_map(|l| l.split_whitespace())
        .find_map(|field| field.strip_prefix("failover_ms=")?.parse().ok())
}

/// Each peer's failover time, `rounds` times (1 with `--quick`).
pub fn run(root: &Path, options: &Options) -> Result<Vec<Row>, String> {
    let rounds = if options.quick { 1 } else { options.rounds };
    let mut rows = Vec::new();
    for (script, what, _) in PEERS {
        let path = root.join("xtask/peers").join(script);
        let mut times = Vec::new();
        for round in 1..=rounds {
            eprintln!("xtask: {} (round {round} of {rounds})", path.display());
            let output = Command::new("bash")
                .arg(&path)
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            match result_ms(&stdout) {
                Some(ms) if output.status.success() => times.push(ms),
                _ => {
                    return Err(format!(
                        "{} failed ({}); its log is above (KEEP=1 keeps its directory)",
                        path.display(),
                        output.status
                    ));
                }
            }
        }
        let (median, min, max) = stats::summary(&times);
        rows.push(Row::new(
            *what,
            format!(
                "{median:.0} ms (range {min:.0}-{max:.0} ms, {} rounds)",
                times.len()
            ),
            format!("xtask/peers/{script}"),
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_is_read() {
        let out = "noise\nRESULT tool=patroni failover_ms=25772\n";
        assert_eq!(result_ms(out), Some(25772.0));
        assert_eq!(result_ms("RESULT tool=x\n"), None);
    }
}
