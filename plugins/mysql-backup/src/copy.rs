//! One `mariadb-backup` (or Percona XtraBackup) copy as its directory
//! shows it: the checkpoints file (`mariadb_backup_checkpoints`, written
//! `xtrabackup_checkpoints` before MariaDB 10.11's successors renamed it;
//! both are read) that the tool writes once the copy is complete, the
//! info file (`mariadb_backup_info` / `xtrabackup_info`), the binary log
//! position (`mariadb_backup_binlog_info` / `xtrabackup_binlog_info`) and
//! the bytes it holds.
//!
//! A checkpoints file reads:
//!
//! ```text
//! backup_type = full-backuped      (incremental, log-applied, full-prepared)
//! from_lsn = 0
//! to_lsn = 44894
//! last_lsn = 56340
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The file names of each kind, new name first.
pub const CHECKPOINTS: [&str; 2] = ["mariadb_backup_checkpoints", "xtrabackup_checkpoints"];
pub const INFO: [&str; 2] = ["mariadb_backup_info", "xtrabackup_info"];
pub const BINLOG: [&str; 2] = ["mariadb_backup_binlog_info", "xtrabackup_binlog_info"];

/// What one copy's directory says.
#[derive(Debug, Default)]
pub struct Copy {
    /// The directory's name (its label).
    pub label: String,
    /// `full-backuped`, `incremental`, `log-applied`, `full-prepared`
    /// (empty when unread).
    pub backup_type: String,
    /// When it finished: the checkpoints file's modification time.
    pub finished: Option<SystemTime>,
    /// Bytes of all its files.
    pub size: u64,
    /// `file:position` and GTID of the binary log it is consistent with.
    pub binlog: Option<String>,
    /// Why it cannot be restored as it is (empty: it can).
    pub problems: Vec<String>,
}

impl Copy {
    /// Prepared (`--prepare` ran): it can be copied back as it is.
    pub fn prepared(&self) -> bool {
        matches!(self.backup_type.as_str(), "log-applied" | "full-prepared")
    }

    pub fn complete(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The first of `names` present in `dir`.
pub fn first_of(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// True when `dir` looks like a copy, complete or not: it holds a
/// checkpoints file, or what the tool writes first (`backup-my.cnf`).
pub fn is_copy(dir: &Path) -> bool {
    first_of(dir, &CHECKPOINTS).is_some() || dir.join("backup-my.cnf").is_file()
}

/// `key = value` lines.
fn pairs(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The problems of a checkpoints file's text, and its backup type.
pub fn checkpoints(text: &str, file: &str) -> (String, Vec<String>) {
    let fields = pairs(text);
    let mut problems = Vec::new();
    let backup_type = fields.get("backup_type").cloned().unwrap_or_default();
    if !matches!(
        backup_type.as_str(),
        "full-backuped" | "incremental" | "log-applied" | "full-prepared"
    ) {
        problems.push(format!(
            "{file}: backup_type {backup_type:?} is none of full-backuped, incremental, log-applied, full-prepared"
        ));
    }
    let lsn = |name: &str| -> Option<u64> { fields.get(name)?.parse().ok() };
    match (lsn("from_lsn"), lsn("to_lsn"), lsn("last_lsn")) {
        (Some(from), Some(to), last) => {
            if to == 0 || to < from {
                problems.push(format!("{file}: to_lsn {to} is not past from_lsn {from}"));
            }
            if let Some(last) = last.filter(|last| *last < to) {
                problems.push(format!("{file}: last_lsn {last} is before to_lsn {to}"));
            }
            if backup_type == "incremental" && from == 0 {
                problems.push(format!("{file}: an incremental copy with from_lsn 0"));
            }
        }
        _ => problems.push(format!("{file}: from_lsn and to_lsn must be numbers")),
    }
    (backup_type, problems)
}

/// `binlog.000001:2234 (GTID 0-1-12)` from a binlog info file's text
/// (`FILE<TAB>POSITION[<TAB>GTID]`).
pub fn binlog_position(text: &str) -> Option<String> {
    let mut fields = text.split_whitespace();
    let file = fields.next()?;
    let position: u64 = fields.next()?.parse().ok()?;
    Some(match fields.next() {
        Some(gtid) => format!("{file}:{position} (GTID {gtid})"),
        None => format!("{file}:{position}"),
    })
}

/// Bytes of the files under `dir`, symbolic links not followed.
fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => size_of(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Read the copy in `dir`.
pub fn read(dir: &Path) -> Copy {
    let mut copy = Copy {
        label: dir
            .file_name()
            .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned()),
        size: size_of(dir),
        ..Copy::default()
    };
    match first_of(dir, &CHECKPOINTS) {
        None => copy.problems.push(format!(
            "no {} or {}: the copy did not finish (the tool writes it last)",
            CHECKPOINTS[0], CHECKPOINTS[1]
        )),
        Some(path) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            copy.finished = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let (backup_type, problems) = checkpoints(&text, &name);
                    copy.backup_type = backup_type;
                    copy.problems.extend(problems);
                }
                Err(e) => copy.problems.push(format!("{name}: cannot be read: {e}")),
            }
        }
    }
    if first_of(dir, &INFO).is_none() {
        copy.problems.push(format!("no {} or {}", INFO[0], INFO[1]));
    }
    if !dir.join("ibdata1").is_file() {
        copy.problems
            .push("no ibdata1: InnoDB's system tablespace is missing".to_string());
    }
    copy.binlog = first_of(dir, &BINLOG)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| binlog_position(&t));
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_read_and_their_lsns_checked() {
        let full = "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 44894\nlast_lsn = 56340\n";
        assert_eq!(
            checkpoints(full, "c"),
            ("full-backuped".to_string(), vec![])
        );
        let (kind, problems) = checkpoints(&full.replace("full-backuped", "log-applied"), "c");
        assert_eq!((kind.as_str(), problems.len()), ("log-applied", 0));
        let backwards = "backup_type = full-backuped\nfrom_lsn = 50\nto_lsn = 10\n";
        let (_, problems) = checkpoints(backwards, "c");
        assert!(
            problems[0].contains("to_lsn 10 is not past from_lsn 50"),
            "{problems:?}"
        );
        let (_, problems) = checkpoints("backup_type = full-backuped\nfrom_lsn = 0\n", "c");
        assert!(problems[0].contains("must be numbers"), "{problems:?}");
        let (_, problems) = checkpoints("backup_type = odd\nfrom_lsn = 0\nto_lsn = 9\n", "c");
        assert!(problems[0].contains("\"odd\""), "{problems:?}");
        let incremental = "backup_type = incremental\nfrom_lsn = 0\nto_lsn = 9\n";
        assert!(checkpoints(incremental, "c").1[0].contains("from_lsn 0"));
        let late = "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 90\nlast_lsn = 80\n";
        assert!(checkpoints(late, "c").1[0].contains("last_lsn 80"));
    }

    #[test]
    fn binlog_positions_are_read() {
        assert_eq!(
            binlog_position("binlog.000001\t2234\t0-1-12\n").as_deref(),
            Some("binlog.000001:2234 (GTID 0-1-12)")
        );
        assert_eq!(
            binlog_position("mysql-bin.000003\t154").as_deref(),
            Some("mysql-bin.000003:154")
        );
        assert_eq!(binlog_position("junk"), None);
    }
}
