//! The audit log: `state_dir/audit.log`, append-only JSON lines, one record
//! per remediation decision or outcome. Every record is on disk (fsync)
//! before [`AuditLog::append`] returns, and a decision to act is appended
//! before the action starts, so a crash at any moment leaves a log that
//! says what was decided. A line cut short by a crash (never acknowledged,
//! so its action never started) is moved to `audit.log.partial-TIMESTAMP`
//! when the log is opened, keeping the log valid JSON lines.
//!
//! Rotation ([`Rotation`]: 64 MiB, 8 rotated files by default): before a
//! record that would take the file past its size, the file is fsynced
//! and renamed to `audit.log.NNNNNN` in one atomic rename, and a new
//! `audit.log` begins; a record is never split and, at every instant,
//! is in exactly one file, so a `kill -9` during a rotation loses
//! nothing. [`read_tail`] and [`read_all`] read across the rotated files
//! (see `segments`).

mod segments;

use crate::events::Decision;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Shared by a decision and the records of its outcome.
    pub id: String,
    #[serde(with = "humantime_serde")]
    pub at: SystemTime,
    pub node: String,
    pub remediation: String,
    pub probe: String,
    /// What was decided or what happened.
    pub decision: Decision,
    /// Why (skips: `cooldown`, `breaker`, `flapping`, `suppressed`,
    /// `paused`, `blocked`, `running`, `stale`); for steps, the step's
    /// name; for alerts, the alert's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `exec`, `restart`, `failover` or `webhook`.
    pub action: String,
    /// The probe status that triggered it.
    pub status: crate::report::Status,
    pub message: String,
    /// Inputs and outputs: the trigger's measurements, command output,
    /// step results, `verified`, ...
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// When the log rotates and how many rotated files it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// A file is rotated before a record would take it past this size.
    pub max_bytes: u64,
    /// Rotated files kept (the oldest beyond this are deleted).
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: 64 << 20,
            keep: 8,
        }
    }
}

pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Current>,
    sequence: AtomicU64,
    rotation: Rotation,
}

/// The file being written.
struct Current {
    file: File,
    len: u64,
    /// The number the next rotated file gets.
    next_number: u64,
}

/// Open `path` for appending; never through a symlink.
fn open_current(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// fsync a directory, so that a rename or a creation in it is durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

impl AuditLog {
    /// Open (or create) `state_dir/audit.log`, repairing a torn last line,
    /// with the default [`Rotation`].
    pub fn open(state_dir: &Path) -> io::Result<AuditLog> {
        AuditLog::open_with(state_dir, Rotation::default())
    }

    /// [`AuditLog::open`] with a rotation of its own.
    pub fn open_with(state_dir: &Path, rotation: Rotation) -> io::Result<AuditLog> {
        let path = state_dir.join("audit.log");
        let mut file = open_current(&path)?;
        repair_tail(&path, &mut file)?;
        let len = file.metadata()?.len();
        let next_number = segments::rotated(&path)?
            .last()
            .map_or(1, |(number, _)| number + 1);
        Ok(AuditLog {
            path,
            file: Mutex::new(Current {
                file,
                len,
                next_number,
            }),
            sequence: AtomicU64::new(0),
            rotation: Rotation {
                max_bytes: rotation.max_bytes.max(1),
                keep: rotation.keep.max(1),
            },
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new id for a decision.
    pub fn new_id(&self, remediation: &str) -> String {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        format!("{remediation}-{ms}-{n}")
    }

    /// Append one record and fsync it.
    pub fn append(&self, record: &AuditRecord) -> io::Result<()> {
        self.append_all(std::slice::from_ref(record))
    }

    /// Append records in order, with one fsync for all of them (each is
    /// on disk when this returns), rotating between records as needed.
    pub fn append_all(&self, records: &[AuditRecord]) -> io::Result<()> {
        let mut current = self.file.lock();
        for record in records {
            let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
            line.push(b'\n');
            if current.len > 0 && current.len + line.len() as u64 > self.rotation.max_bytes {
                self.rotate(&mut current)?;
            }
            current.file.write_all(&line)?;
            current.len += line.len() as u64;
        }
        current.file.sync_data()
    }

    /// Close the current file (synced) under the next number, start a new
    /// one, and delete the oldest rotated files beyond `keep`.
    fn rotate(&self, current: &mut Current) -> io::Result<()> {
        current.file.sync_data()?;
        let rotated = segments::rotated_name(&self.path, current.next_number);
        std::fs::rename(&self.path, &rotated)?;
        current.next_number += 1;
        current.file = open_current(&self.path)?;
        current.len = 0;
        sync_dir(&self.path)?;
        let all = segments::rotated(&self.path)?;
        let excess = all.len().saturating_sub(self.rotation.keep);
        for (_, old) in &all[..excess] {
            if let Err(e) = std::fs::remove_file(old) {
                tracing::warn!("cannot delete the old audit log {}: {e}", old.display());
            }
        }
        Ok(())
    }

    /// The last `limit` records (unreadable lines are skipped).
    pub fn tail(&self, limit: usize) -> io::Result<Vec<AuditRecord>> {
        read_tail(&self.path, limit)
    }
}

/// The last `limit` records of the audit log at `path` (and of its
/// rotated files), oldest first.
pub fn read_tail(path: &Path, limit: usize) -> io::Result<Vec<AuditRecord>> {
    segments::read_tail(path, limit)
}

/// Every readable record of the audit log at `path` and its rotated
/// files, oldest first.
pub fn read_all(path: &Path) -> io::Result<Vec<AuditRecord>> {
    read_tail(path, usize::MAX)
}

/// If the file does not end with a newline, a write was cut short: move the
/// fragment aside and truncate it off.
fn repair_tail(path: &Path, file: &mut File) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    io::Read::read_to_end(file, &mut bytes)?;
    if bytes.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = path.with_extension(format!("log.partial-{stamp}"));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&aside)
        .and_then(|mut f| io::Write::write_all(&mut f, &bytes[keep..]))?;
    file.set_len(keep as u64)?;
    file.sync_all()?;
    tracing::warn!(
        "the audit log ended in a partial record (a crash while writing it); moved the fragment to {}",
        aside.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> AuditRecord {
        AuditRecord {
            id: id.into(),
            at: SystemTime::now(),
            node: "n".into(),
            remediation: "r".into(),
            probe: "p".into(),
            decision: Decision::Fired,
            reason: None,
            action: "exec".into(),
            status: crate::report::Status::Critical,
            message: "m".into(),
            detail: Value::Null,
        }
    }

    #[test]
    fn records_append_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for i in 0..5 {
            log.append(&record(&i.to_string())).unwrap();
        }
        let tail = log.tail(2).unwrap();
        assert_eq!(
            tail.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["3", "4"]
        );
    }

    #[test]
    fn a_torn_last_line_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(dir.path()).unwrap();
            log.append(&record("whole")).unwrap();
        }
        let path = dir.path().join("audit.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\":\"torn").unwrap();
        drop(f);
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&record("after")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            serde_json::from_str::<AuditRecord>(line).unwrap();
        }
        assert_eq!(text.lines().count(), 2);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("audit.log.partial-"))
            .collect();
        assert_eq!(aside.len(), 1);
    }

    #[test]
    fn rotation_keeps_every_record_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = Rotation {
            max_bytes: 1000,
            keep: 100,
        };
        let log = AuditLog::open_with(dir.path(), rotation).unwrap();
        for i in 0..40 {
            log.append(&record(&i.to_string())).unwrap();
        }
        let batch: Vec<_> = (40..100).map(|i| record(&i.to_string())).collect();
        log.append_all(&batch).unwrap();
        let files = segments::rotated(log.path()).unwrap();
        assert!(files.len() > 5, "{files:?}");
        for (_, file) in &files {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(text.len() <= 1000 && text.ends_with('\n'));
        }
        let ids: Vec<String> = read_all(log.path())
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        assert_eq!(ids, expected);
        let tail: Vec<String> = log.tail(7).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(tail, expected[93..]);
        // Reopened, it goes on numbering after the last rotated file.
        drop(log);
        let log = AuditLog::open_with(
            dir.path(),
            Rotation {
                max_bytes: 1000,
                keep: 3,
            },
        )
        .unwrap();
        log.append_all(
            &(100..120)
                .map(|i| record(&i.to_string()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let after = segments::rotated(log.path()).unwrap();
        assert_eq!(after.len(), 3);
        assert!(after[0].0 > files.last().unwrap().0);
        let all = read_all(log.path()).unwrap();
        assert_eq!(all.last().unwrap().id, "119");
    }
}
