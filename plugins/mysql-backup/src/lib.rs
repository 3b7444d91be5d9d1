//! `mysql-backup`: is there a recent, complete `mariadb-backup` (or
//! Percona XtraBackup) copy of the server?
//!
//! Reads a directory of copies through a `dirs` grant (read-only; the
//! probe sees nothing else of the filesystem): the granted directory is
//! one copy, or holds one copy per subdirectory (`--target-dir` of each
//! run). A copy is complete when its checkpoints file is there
//! (`mariadb_backup_checkpoints` or the old name `xtrabackup_checkpoints`,
//! written last) with a known `backup_type` and sane LSNs (`to_lsn` past
//! `from_lsn`, `last_lsn` not before `to_lsn`, an incremental copy not
//! from LSN 0), with its info file (`mariadb_backup_info` /
//! `xtrabackup_info`) and `ibdata1`. It is prepared when `backup_type` is
//! `log-applied` or `full-prepared` (`--prepare` ran). The binary log
//! position it is consistent with (`*_binlog_info`) is named.
//!
//! Measurements (attribute `repository`: the grant's name):
//! `mysql.backup.age` (s since the newest complete copy finished),
//! `mysql.backup.size` (By, its files), `mysql.backup.complete` (1 when
//! the newest copy is complete), `mysql.backup.prepared` (1/0, of the
//! newest complete copy), `mysql.backup.count` (copies in the directory).
//!
//! Statuses: no complete copy, or a newest copy whose checkpoints are
//! wrong, is `critical`; a newer copy without checkpoints (still running,
//! or it failed) is a `warning`; age follows its limits.
//!
//! Config (defaults in brackets):
//! - `repo`: the name of the granted directory of copies [`repo`].
//! - `age_warning` / `age_critical`: seconds since the newest complete
//!   copy finished [93600 (26 h) / 180000 (50 h)].
//! - `require_prepared`: a newest complete copy that is not prepared is a
//!   warning [false].

mod copy;

use copy::Copy;
use std::path::Path;
use std::time::SystemTime;
use watchpost_probe::{
    Findings, Info, Kind, Probe, Report, Result, Status, Threshold, config, dirs, measurement,
};

struct MysqlBackup;

/// The copies in `repo`, oldest first: the directory itself when it is
/// one, else each subdirectory that is one.
fn copies(repo: &Path) -> Vec<Copy> {
    let mut found: Vec<(SystemTime, Copy)> = Vec::new();
    let mut add = |dir: &Path| {
        let copy = copy::read(dir);
        let when = copy
            .finished
            .or_else(|| std::fs::metadata(dir).and_then(|m| m.modified()).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        found.push((when, copy));
    };
    if copy::is_copy(repo) {
        add(repo);
    } else if let Ok(entries) = std::fs::read_dir(repo) {
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && copy::is_copy(&entry.path()) {
                add(&entry.path());
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.label.cmp(&b.1.label)));
    found.into_iter().map(|(_, copy)| copy).collect()
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

impl Probe for MysqlBackup {
    fn describe() -> Info {
        Info::new(
            "mysql-backup",
            Kind::Integrity,
            "mariadb-backup / XtraBackup copies: the newest one's age, size, completeness and whether it is prepared",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures("mysql.backup.age", "s", "time since the newest complete copy finished")
        .measures("mysql.backup.size", "By", "bytes of the newest complete copy")
        .measures("mysql.backup.complete", "1", "1 when the newest copy is complete")
        .measures("mysql.backup.prepared", "1", "1 when the newest complete copy is prepared")
        .measures("mysql.backup.count", "1", "copies in the directory")
    }

    fn check() -> Result<Report> {
        let name: String = config::get_or("repo", "repo".to_string())?;
        let age_limit =
            Threshold::above(93_600.0, 180_000.0).configured("age_warning", "age_critical")?;
        let require_prepared: bool = config::get_or("require_prepared", false)?;
        let repo = dirs::require(&name)?;
        let copies = copies(&repo);
        let mut findings = Findings::new();
        let tagged = |m: watchpost_probe::Measurement| m.attr("repository", name.as_str());
        findings.push(tagged(measurement(
            "mysql.backup.count",
            copies.len() as f64,
            "1",
        )));
        let Some(newest) = copies.last() else {
            findings.problem(
                Status::Critical,
                format!(
                    "no mariadb-backup copy in `{name}` (a directory with {} or backup-my.cnf, or subdirectories of them)",
                    copy::CHECKPOINTS.join(" / ")
                ),
            );
            return Ok(findings.into_report());
        };
        findings.push(tagged(measurement(
            "mysql.backup.complete",
            f64::from(u8::from(newest.complete())),
            "1",
        )));
        // Copies newer than the newest complete one.
        let complete_at = copies.iter().rposition(Copy::complete);
        for broken in &copies[complete_at.map_or(0, |i| i + 1)..] {
            let status = if broken.finished.is_some() {
                Status::Critical
            } else {
                Status::Warning
            };
            findings.problem(
                status,
                format!(
                    "copy {} is not complete: {}",
                    broken.label,
                    broken.problems.join("; ")
                ),
            );
        }
        let Some(good) = complete_at.map(|i| &copies[i]) else {
            findings.problem(Status::Critical, format!("no complete copy in `{name}`"));
            return Ok(findings.into_report());
        };
        let age = good
            .finished
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        findings.push(tagged(measurement("mysql.backup.age", age, "s")));
        findings.push(tagged(measurement(
            "mysql.backup.size",
            good.size as f64,
            "By",
        )));
        findings.push(tagged(measurement(
            "mysql.backup.prepared",
            f64::from(u8::from(good.prepared())),
            "1",
        )));
        let text = format!(
            "newest complete copy {} finished {:.1} h ago, {}, {}{}",
            good.label,
            age / 3600.0,
            human(good.size),
            if good.prepared() {
                "prepared"
            } else {
                "not prepared"
            },
            good.binlog
                .as_ref()
                .map_or(String::new(), |b| format!(", binary log {b}"))
        );
        let status = age_limit.status(age);
        if status == Status::Ok {
            findings.note(text);
        } else {
            findings.problem(
                status,
                format!(
                    "{text} (limits {} / {} s)",
                    age_limit.warning, age_limit.critical
                ),
            );
        }
        if require_prepared && !good.prepared() {
            findings.problem(
                Status::Warning,
                format!(
                    "copy {} is not prepared (backup_type {}): run mariadb-backup --prepare on it",
                    good.label, good.backup_type
                ),
            );
        }
        Ok(findings.into_report())
    }
}

watchpost_probe::export_probe!(MysqlBackup);
