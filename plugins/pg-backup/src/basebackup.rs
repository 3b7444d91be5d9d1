//! `pg_basebackup` backups: a directory holding `backup_manifest` (the
//! granted directory itself, or one of its subdirectories, the newest by
//! the manifest's modification time). The manifest is checked against its
//! own SHA-256 checksum; in plain format every file it lists must exist
//! with its size (and, with `verify_checksums`, its CRC-32C or SHA-256
//! checksum); in tar format the archives must be there.

use crate::{Backup, crc32c, lsn_segment};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Directories under `root` (or `root` itself) that hold a backup_manifest.
pub fn find(root: &Path) -> Vec<PathBuf> {
    if root.join("backup_manifest").is_file() {
        return vec![root.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("backup_manifest").is_file())
        .collect();
    found.sort();
    found
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest backup under `root`, checked.
pub fn newest(root: &Path, segment_size: u64, verify_checksums: bool) -> Option<Backup> {
    let dirs = find(root);
    let count = dirs.len();
    let newest = dirs
        .into_iter()
        .max_by_key(|d| modified(&d.join("backup_manifest")))?;
    let mut backup = check(&newest, segment_size, verify_checksums);
    backup.count = count;
    Some(backup)
}

fn check(dir: &Path, segment_size: u64, verify_checksums: bool) -> Backup {
    let label = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    let manifest_path = dir.join("backup_manifest");
    let mut backup = Backup::new("pg_basebackup", &label);
    backup.finished = modified(&manifest_path);
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(e) => {
            backup
                .problems
                .push(format!("backup_manifest cannot be read: {e}"));
            return backup;
        }
    };
    if let Some(problem) = manifest_checksum_problem(&text) {
        backup.problems.push(problem);
    }
    let manifest: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            backup.problems.push(format!(
                "backup_manifest is not valid JSON (truncated?): {e}"
            ));
            return backup;
        }
    };
    let files = manifest["Files"].as_array().cloned().unwrap_or_default();
    backup.size = files.iter().filter_map(|f| f["Size"].as_u64()).sum();
    if let Some(range) = manifest["WAL-Ranges"].as_array().and_then(|r| r.first()) {
        let timeline = range["Timeline"].as_u64().unwrap_or(1) as u32;
        backup.start = range["Start-LSN"]
            .as_str()
            .and_then(|lsn| lsn_segment(lsn, timeline, segment_size));
    }
    let tar = ["base.tar", "base.tar.gz", "base.tar.lz4", "base.tar.zst"]
        .iter()
        .any(|name| dir.join(name).is_file());
    if tar {
        // The files are inside the archives: their presence is what can be
        // checked without unpacking (`pg_verifybackup` does the rest).
        return backup;
    }
    let mut bad = Vec::new();
    for file in &files {
        let Some(path) = file["Path"].as_str() else {
            continue;
        };
        if outside(path) {
            // Judged by its components, never read: `..` or `/` would
            // answer for a file that is not the backup's.
            bad.push(format!("{path} names a file outside the backup"));
            continue;
        }
        let want = file["Size"].as_u64().unwrap_or(0);
        match std::fs::metadata(dir.join(path)) {
            Err(_) => bad.push(format!("{path} is missing")),
            Ok(meta) if meta.len() != want => bad.push(format!(
                "{path} has {} bytes, the manifest says {want} (truncated?)",
                meta.len()
            )),
            Ok(_) if verify_checksums => {
                if let Some(problem) = checksum_problem(&dir.join(path), path, file) {
                    bad.push(problem);
                }
            }
            Ok(_) => {}
        }
    }
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(3).cloned().collect();
        backup.problems.push(format!(
            "{} file(s) do not match backup_manifest: {}{}",
            bad.len(),
            shown.join(", "),
            if bad.len() > 3 { ", ..." } else { "" }
        ));
    }
    backup
}

/// A manifest path that is absolute or climbs with `..` (PostgreSQL writes
/// only relative paths below the data directory).
fn outside(path: &str) -> bool {
    path.starts_with('/') || path.split('/').any(|part| part == "..")
}

/// The manifest ends with `"Manifest-Checksum": "HEX"`: SHA-256 of every
/// byte before that line.
fn manifest_checksum_problem(text: &str) -> Option<String> {
    let at = text.find("\"Manifest-Checksum\"")?;
    let wanted: String = text[at..]
        .split('"')
        .nth(3)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let actual = hex(&Sha256::digest(&text.as_bytes()[..at]));
    (actual != wanted)
        .then(|| "backup_manifest does not match its own checksum (edited or corrupt)".into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn checksum_problem(path: &Path, shown: &str, file: &Value) -> Option<String> {
    let algorithm = file["Checksum-Algorithm"].as_str()?;
    let wanted = file["Checksum"].as_str()?.to_ascii_lowercase();
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) => return Some(format!("{shown} cannot be read: {e}")),
    };
    let actual = match algorithm {
        "CRC32C" => hex(&crc32c(&data).to_le_bytes()),
        "SHA256" => hex(&Sha256::digest(&data)),
        _ => return None,
    };
    (actual != wanted).then(|| format!("{shown} fails its {algorithm} checksum (corrupt)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_path_outside_the_backup_is_reported_not_read() {
        let top = std::env::temp_dir().join(format!("pg-backup-outside-{}", std::process::id()));
        let dir = top.join("b1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(top.join("elsewhere"), "12345").unwrap();
        std::fs::write(dir.join("PG_VERSION"), "15\n").unwrap();
        let body = r#"{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [ { "Path": "PG_VERSION", "Size": 3 }, { "Path": "../elsewhere", "Size": 5 } ],
"#;
        let text = format!(
            "{body}\"Manifest-Checksum\": \"{}\"}}\n",
            hex(&Sha256::digest(body.as_bytes()))
        );
        std::fs::write(dir.join("backup_manifest"), text).unwrap();
        let backup = check(&dir, 16 << 20, false);
        std::fs::remove_dir_all(&top).unwrap();
        assert_eq!(backup.problems.len(), 1, "{:?}", backup.problems);
        assert!(
            backup.problems[0].contains("../elsewhere names a file outside the backup"),
            "{:?}",
            backup.problems
        );
        assert!(!outside("pg_tblspc/16384/PG_15/1/2") && outside("/etc/x"));
    }
}
