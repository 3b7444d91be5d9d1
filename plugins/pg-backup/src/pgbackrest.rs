//! pgBackRest repositories: `backup/STANZA/backup.info` (INI sections with
//! JSON values) lists the backups; the newest one's directory must hold
//! its `backup.manifest`, and every file the manifest lists must be in the
//! repository (compressed or not) with the size recorded for it. The WAL
//! archive is `archive/STANZA/VERSION-ID/XXXXXXXXXXXXXXXX/`.

use crate::{Backup, wal::Segment};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// The stanzas in a repository (directories under `backup/`).
pub fn stanzas(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo.join("backup"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().join("backup.info").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `(section, key, value)` of every `key=value` line of an INI text.
fn ini(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            out.push((section.clone(), key.to_string(), value.to_string()));
        }
    }
    out
}

/// The newest backup of `stanza`, checked; `None` when backup.info lists none.
pub fn newest(repo: &Path, stanza: &str, segment_size: u64) -> Result<Option<Backup>, String> {
    let dir = repo.join("backup").join(stanza);
    let info_path = dir.join("backup.info");
    let text = std::fs::read_to_string(&info_path)
        .map_err(|e| format!("backup/{stanza}/backup.info cannot be read: {e}"))?;
    let backups: Vec<(String, Value)> = ini(&text)
        .into_iter()
        .filter(|(section, _, _)| section == "backup:current")
        .filter_map(|(_, label, value)| serde_json::from_str(&value).ok().map(|v| (label, v)))
        .collect();
    let count = backups.len();
    let Some((label, info)) = backups
        .into_iter()
        .max_by_key(|(_, v)| v["backup-timestamp-stop"].as_u64().unwrap_or(0))
    else {
        return Ok(None);
    };
    let mut backup = Backup::new("pgbackrest", &label);
    backup.count = count;
    backup.finished = info["backup-timestamp-stop"]
        .as_u64()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s));
    backup.size = info["backup-info-size"].as_u64().unwrap_or(0);
    backup.start = info["backup-archive-start"]
        .as_str()
        .and_then(|name| Segment::parse(name, segment_size));
    check_files(&dir.join(&label), &mut backup);
    Ok(Some(backup))
}

fn check_files(dir: &Path, backup: &mut Backup) {
    let manifest = match std::fs::read_to_string(dir.join("backup.manifest")) {
        Ok(text) => text,
        Err(e) => {
            backup.problems.push(format!(
                "backup {}: backup.manifest cannot be read ({e}): the backup is incomplete",
                backup.label
            ));
            return;
        }
    };
    let mut bad = Vec::new();
    for (section, key, value) in ini(&manifest) {
        if section != "target:file" {
            continue;
        }
        let Ok(file) = serde_json::from_str::<Value>(&value) else {
            continue;
        };
        let size = file["size"].as_u64();
        if size == Some(0) {
            continue;
        }
        let stored = ["", ".gz", ".zst", ".lz4", ".bz2"]
            .iter()
            .map(|ext| PathBuf::from(format!("{}{ext}", dir.join(&key).display())))
            .find_map(|path| std::fs::metadata(&path).ok().map(|m| (path, m.len())));
        match stored {
            None => bad.push(format!("{key} is missing")),
            Some((path, len)) => {
                let compressed = path != dir.join(&key);
                let want = file["repo-size"]
                    .as_u64()
                    .or(if compressed { None } else { size });
                if let Some(want) = want
                    && want != len
                {
                    bad.push(format!("{key} has {len} bytes in the repository, the manifest says {want} (truncated?)"));
                }
            }
        }
    }
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(3).cloned().collect();
        backup.problems.push(format!(
            "backup {}: {} file(s) do not match backup.manifest: {}{}",
            backup.label,
            bad.len(),
            shown.join(", "),
            if bad.len() > 3 { ", ..." } else { "" }
        ));
    }
}
