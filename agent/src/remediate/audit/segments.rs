//! The files of a rotated audit log and reading records across them.
//!
//! `audit.log` is the file being written; rotation renames it to
//! `audit.log.NNNNNN`, numbered upwards, in one atomic rename, so every
//! record is in exactly one file at every instant. Readers open the
//! current file first and skip a rotated file that is the same file (it
//! was rotated while they listed), so a record is read once even when a
//! rotation happens during the read.

use super::AuditRecord;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `path` with a rotation number: `audit.log.000042`.
pub fn rotated_name(path: &Path, number: u64) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{number:06}"));
    PathBuf::from(name)
}

/// The rotated files of the log at `path`, oldest first, with their
/// numbers.
pub fn rotated(path: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{base}.");
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((number, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// The last `keep_last` readable records of one file, oldest first
/// (unreadable lines are skipped). The file is read backwards in blocks,
/// so a long log costs only what is returned.
fn records_of(mut file: File, keep_last: usize) -> io::Result<Vec<AuditRecord>> {
    const BLOCK: u64 = 64 * 1024;
    let mut end = file.metadata()?.len();
    let mut newest_first = Vec::new();
    // Bytes after the last newline seen, not yet a whole line.
    let mut carry: Vec<u8> = Vec::new();
    while end > 0 && newest_first.len() < keep_last {
        let start = end.saturating_sub(BLOCK);
        let mut block = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&carry);
        let mut lines: Vec<&[u8]> = block.split(|b| *b == b'\n').collect();
        // The first piece may be the end of a line that starts earlier.
        let first = if start > 0 {
            lines.remove(0).to_vec()
        } else {
            Vec::new()
        };
        for line in lines.into_iter().rev() {
            if newest_first.len() == keep_last {
                break;
            }
            if let Ok(record) = serde_json::from_slice::<AuditRecord>(line) {
                newest_first.push(record);
            }
        }
        carry = first;
        end = start;
    }
    newest_first.reverse();
    Ok(newest_first)
}

fn open_if_there(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The last `limit` records of the log at `path` and its rotated files,
/// oldest first; files older than needed are not read.
pub fn read_tail(path: &Path, limit: usize) -> io::Result<Vec<AuditRecord>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let current = open_if_there(path)?;
    let same = match &current {
        Some(file) => {
            let meta = file.metadata()?;
            Some((meta.dev(), meta.ino()))
        }
        None => None,
    };
    let mut newest_first = Vec::new();
    let mut have = 0;
    if let Some(file) = current {
        let records = records_of(file, limit)?;
        have += records.len();
        newest_first.push(records);
    }
    for (_, older) in rotated(path)?.into_iter().rev() {
        if have >= limit {
            break;
        }
        // Pruned meanwhile: it was the oldest anyway.
        let Some(file) = open_if_there(&older)? else {
            continue;
        };
        let meta = file.metadata()?;
        if Some((meta.dev(), meta.ino())) == same {
            continue;
        }
        let records = records_of(file, limit - have)?;
        have += records.len();
        newest_first.push(records);
    }
    Ok(newest_first.into_iter().rev().flatten().collect())
}
