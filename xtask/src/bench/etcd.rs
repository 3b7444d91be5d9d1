//! The `etcd` section: how many etcd revisions per second an idle
//! three-node cluster writes, and one under a steady write load (the
//! leader's optime moving), from `tests/examples/etcd_revisions.rs`; and
//! Patroni's three members measured the same way in the same run
//! (`xtask/peers/patroni_revisions.sh`). Every revision stays in etcd's
//! database until it is compacted, and etcd refuses writes at its quota:
//! the quieter, the longer to NOSPACE.

use super::{Options, Row};
use std::path::Path;
use std::process::{Command, Stdio};

/// Members of both clusters: the per-member rate divides by it.
const MEMBERS: f64 = 3.0;

/// Debian packages the Patroni side needs.
pub const PACKAGES: &[&str] = &["patroni", "etcd-server", "curl"];

/// A table row of one window: `revisions` in `seconds`.
fn row(what: &str, note: &str, revisions: f64, seconds: f64, per_second: f64) -> Row {
    Row::new(
        what,
        format!(
            "{per_second:.2} rev/s, {:.2} per member ({revisions} revisions in {seconds} s)",
            per_second / MEMBERS
        ),
        note,
    )
}

/// The fields `name=value` of the script's `RESULT tool=TOOL ...` line.
fn result(stdout: &str, tool: &str) -> Option<(f64, f64, f64)> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT ") && l.contains(&format!(" tool={tool} ")))?;
    let field = |name: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    Some((field("revisions")?, field("seconds")?, field("per_second")?))
}

/// Patroni's rows: the script run once, its log on stderr.
fn patroni(root: &Path, seconds: &str) -> Result<Vec<Row>, String> {
    let script = root.join("xtask/peers/patroni_revisions.sh");
    eprintln!("xtask: {}", script.display());
    let output = Command::new("bash")
        .arg(&script)
        .arg(seconds)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failed = || {
        format!(
            "{} failed ({}); its log is above (KEEP=1 keeps its directory)",
            script.display(),
            output.status
        )
    };
    if !output.status.success() {
        return Err(failed());
    }
    let mut rows = Vec::new();
    for (tool, what) in [
        (
            "patroni-revisions-idle",
            "Patroni 3.0 (defaults, loop_wait 10 s): etcd revisions per second, three idle members",
        ),
        (
            "patroni-revisions-writes",
            "Patroni 3.0 (defaults): etcd revisions per second, three members, an INSERT every 100 ms on the leader",
        ),
    ] {
        let (revisions, secs, rate) = result(&stdout, tool).ok_or_else(failed)?;
        rows.push(row(
            what,
            "the peer, same run and clock",
            revisions,
            secs,
            rate,
        ));
    }
    Ok(rows)
}

pub fn run(root: &Path, options: &Options) -> Result<Vec<Row>, String> {
    let seconds = if options.quick { "10" } else { "30" };
    let mut rows = Vec::new();
    for value in super::example::json_lines("etcd revision", "etcd_revisions", &[seconds.into()])? {
        let (what, note) = match value["benchmark"].as_str() {
            Some("etcd-revisions-idle") => (
                "cluster: etcd revisions per second, three idle nodes (shipped defaults)",
                "goal <= 0.5; before writes-on-change 8.0",
            ),
            Some("etcd-revisions-writes") => (
                "cluster: etcd revisions per second, three nodes, an INSERT every 100 ms on the leader",
                "the optime moves every loop",
            ),
            _ => continue,
        };
        let number = |k: &str| value[k].as_f64().unwrap_or(f64::NAN);
        rows.push(row(
            what,
            note,
            number("revisions"),
            number("seconds"),
            number("per_second"),
        ));
    }
    rows.extend(patroni(root, seconds)?);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_is_read() {
        let out =
            "noise\nRESULT tool=patroni-revisions-idle revisions=9 seconds=30 per_second=0.298\n";
        assert_eq!(
            result(out, "patroni-revisions-idle"),
            Some((9.0, 30.0, 0.298))
        );
        assert_eq!(result(out, "patroni-revisions-writes"), None);
    }
}
