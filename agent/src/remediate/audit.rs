//! The audit log: `state_dir/audit.log`, append-only JSON lines, one record
//! per remediation decision or outcome. Every record is on disk (fsync)
//! before [`AuditLog::append`] returns, and a decision to act is appended
//! before the action starts, so a crash at any moment leaves a log that
//! says what was decided. A line cut short by a crash (never acknowledged,
//! so its action never started) is moved to `audit.log.partial-TIMESTAMP`
//! when the log is opened, keeping the log valid JSON lines.

use crate::events::Decision;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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

pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
    sequence: AtomicU64,
}

impl AuditLog {
    /// Open (or create) `state_dir/audit.log`, repairing a torn last line.
    pub fn open(state_dir: &Path) -> io::Result<AuditLog> {
        let path = state_dir.join("audit.log");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        repair_tail(&path, &mut file)?;
        Ok(AuditLog {
            path,
            file: Mutex::new(file),
            sequence: AtomicU64::new(0),
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
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(&line)?;
        file.sync_data()
    }

    /// The last `limit` records (unreadable lines are skipped).
    pub fn tail(&self, limit: usize) -> io::Result<Vec<AuditRecord>> {
        read_tail(&self.path, limit)
    }
}

/// The last `limit` records of the audit log at `path`.
pub fn read_tail(path: &Path, limit: usize) -> io::Result<Vec<AuditRecord>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut records = std::collections::VecDeque::with_capacity(limit.clamp(1, 4096));
    for line in io::BufReader::new(file).lines() {
        if let Ok(record) = serde_json::from_str::<AuditRecord>(&line?) {
            if records.len() == limit {
                records.pop_front();
            }
            records.push_back(record);
        }
    }
    Ok(records.into())
}

/// Every readable record of the audit log at `path`, oldest first.
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
    std::fs::write(&aside, &bytes[keep..])?;
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
}
