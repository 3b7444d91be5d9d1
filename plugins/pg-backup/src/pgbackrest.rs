//! pgBackRest repositories: `backup/STANZA/backup.info` (INI sections with
//! JSON values) lists the backups; the newest one's directory must hold
//! its `backup.manifest`, and every file the manifest lists must be in the
//! repository with the size recorded for it (`repo-size`), where the
//! manifest says it is:
//! - `reference`: a differential or incremental backup stores an unchanged
//!   file only in the earlier backup it names (`backup/STANZA/REFERENCE/`);
//! - `bni` / `bno` (bundle id and offset, `repo-bundle=y`): the file is the
//!   `repo-size` bytes at that offset of `BACKUP/bundle/BNI`; zero-length
//!   files are only in the manifest;
//! - `bi` (block incremental, `repo-block=y`): the file is stored as
//!   `KEY.pgbi`, a map whose blocks may live in earlier backups (its own
//!   size is checked, the blocks it references are not read);
//! - otherwise `KEY`, compressed or not (`.gz`, `.zst`, `.lz4`, `.bz2`).
//!
//! An encrypted repository (`repo-cipher-type`: `backup.info` and every
//! manifest are ciphertext, starting with OpenSSL's `Salted__`) cannot be
//! read without its passphrase, which the probe never gets: then only the
//! newest backup's presence (its directory and manifest file) and its age
//! (the label's time) are checked, and the report says so; `pgbackrest
//! verify` checks the rest. The WAL archive is
//! `archive/STANZA/VERSION-ID/XXXXXXXXXXXXXXXX/`.

use crate::{Backup, wal::Segment};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// OpenSSL's salted-ciphertext header, which pgBackRest's encrypted files
/// start with.
const CIPHER_MAGIC: &[u8] = b"Salted__";

/// The newest backup of `stanza`, checked; `None` when backup.info lists none.
pub fn newest(repo: &Path, stanza: &str, segment_size: u64) -> Result<Option<Backup>, String> {
    let dir = repo.join("backup").join(stanza);
    let info_path = dir.join("backup.info");
    let raw = std::fs::read(&info_path)
        .map_err(|e| format!("backup/{stanza}/backup.info cannot be read: {e}"))?;
    if raw.starts_with(CIPHER_MAGIC) {
        return Ok(encrypted(&dir));
    }
    let text = String::from_utf8_lossy(&raw);
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
    if let Some(kind) = info["backup-type"].as_str() {
        backup.notes.push(format!("a {kind} backup"));
    }
    check_files(&dir, &label, &mut backup);
    Ok(Some(backup))
}

/// A backup label: `YYYYMMDD-HHMMSSF`, or
/// `YYYYMMDD-HHMMSSF_YYYYMMDD-HHMMSS{D,I}` for a differential or
/// incremental one; the time it ends with (UTC).
fn label_time(label: &str) -> Option<SystemTime> {
    let last = match label.split_once('_') {
        Some((full, rest)) => {
            full.strip_suffix('F')?;
            rest.strip_suffix(['D', 'I'])?
        }
        None => label.strip_suffix('F')?,
    };
    let (date, time) = last.split_once('-')?;
    if date.len() != 8
        || time.len() != 6
        || !(date.chars().chain(time.chars())).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let n = |s: &str| s.parse::<i64>().ok();
    let (y, m, d) = (n(&date[..4])?, n(&date[4..6])?, n(&date[6..])?);
    let seconds = n(&time[..2])? * 3600 + n(&time[2..4])? * 60 + n(&time[4..])?;
    // Days from the civil date (proleptic Gregorian), as in Howard
    // Hinnant's `days_from_civil`.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let at = days * 86_400 + seconds;
    u64::try_from(at)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// An encrypted stanza: the newest backup directory by its label, its
/// manifest present (it cannot be read), its age from the label.
fn encrypted(dir: &Path) -> Option<Backup> {
    let mut labels: Vec<(SystemTime, String)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let label = e.file_name().to_string_lossy().into_owned();
            Some((label_time(&label)?, label))
        })
        .collect();
    labels.sort();
    let count = labels.len();
    let (finished, label) = labels.pop()?;
    let mut backup = Backup::new("pgbackrest", &label);
    backup.count = count;
    backup.finished = Some(finished);
    let manifest = dir.join(&label).join("backup.manifest");
    match std::fs::File::open(&manifest) {
        Ok(mut file) => {
            let mut head = [0u8; 8];
            let encrypted =
                std::io::Read::read_exact(&mut file, &mut head).is_ok() && head == CIPHER_MAGIC;
            if !encrypted {
                backup.problems.push(
                    "backup.manifest is not the ciphertext an encrypted repository holds".into(),
                );
            }
        }
        Err(e) => backup.problems.push(format!(
            "backup.manifest cannot be read ({e}): the backup is incomplete"
        )),
    }
    backup.notes.push(
        "the repository is encrypted: without its passphrase only the newest backup's \
         presence and age (from its label) are checked, not its files, size or WAL; \
         run `pgbackrest verify` for those"
            .into(),
    );
    Some(backup)
}

/// Where the manifest says a file is stored, and how many bytes.
#[derive(Debug, PartialEq)]
enum Stored {
    /// A file of its own: the path without compression suffix.
    Own(PathBuf),
    /// `length` bytes at `offset` of a bundle file.
    Bundled {
        bundle: PathBuf,
        offset: u64,
        length: u64,
    },
}

/// Where `key` of backup `label` is stored in the stanza directory `dir`.
fn location(dir: &Path, label: &str, key: &str, file: &Value) -> Stored {
    let owner = dir.join(file["reference"].as_str().unwrap_or(label));
    match (file["bni"].as_u64(), file["bno"].as_u64()) {
        (Some(id), offset) => Stored::Bundled {
            bundle: owner.join("bundle").join(id.to_string()),
            offset: offset.unwrap_or(0),
            length: file["repo-size"].as_u64().unwrap_or(0),
        },
        (None, _) if file["bi"].is_u64() => Stored::Own(owner.join(format!("{key}.pgbi"))),
        (None, _) => Stored::Own(owner.join(key)),
    }
}

/// A label or manifest key that could leave the stanza directory.
fn escapes(path: &str) -> bool {
    path.starts_with('/') || path.split('/').any(|part| part == ".." || part.is_empty())
}

fn check_files(dir: &Path, label: &str, backup: &mut Backup) {
    let manifest = match std::fs::read_to_string(dir.join(label).join("backup.manifest")) {
        Ok(text) => text,
        Err(e) => {
            backup.problems.push(format!(
                "backup.manifest cannot be read ({e}): the backup is incomplete"
            ));
            return;
        }
    };
    let mut bad = Vec::new();
    let mut referenced = std::collections::BTreeSet::new();
    let mut bundles = 0usize;
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
        let reference = file["reference"].as_str();
        if escapes(&key) || reference.is_some_and(escapes) {
            bad.push(format!("{key} has a path or reference outside the stanza"));
            continue;
        }
        if let Some(r) = reference {
            referenced.insert(r.to_string());
        }
        let want = file["repo-size"].as_u64();
        let from = reference.map(|r| format!(" (in {r})")).unwrap_or_default();
        match location(dir, label, &key, &file) {
            Stored::Bundled {
                bundle,
                offset,
                length,
            } => {
                bundles += 1;
                match std::fs::metadata(&bundle) {
                    Err(_) => bad.push(format!(
                        "{key} is missing: its bundle {} is not there{from}",
                        bundle.strip_prefix(dir).unwrap_or(&bundle).display()
                    )),
                    Ok(m) if m.len() < offset + length => bad.push(format!(
                        "{key} is missing: its bundle {} has {} bytes, the file is at {offset}..{} \
                         (truncated?)",
                        bundle.strip_prefix(dir).unwrap_or(&bundle).display(),
                        m.len(),
                        offset + length
                    )),
                    Ok(_) => {}
                }
            }
            Stored::Own(path) => {
                let stored = ["", ".gz", ".zst", ".lz4", ".bz2"]
                    .iter()
                    .map(|ext| PathBuf::from(format!("{}{ext}", path.display())))
                    .find_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m.len())));
                match stored {
                    None => bad.push(format!("{key} is missing{from}")),
                    Some((p, len)) => {
                        let compressed = p != path;
                        let want = want.or(if compressed { None } else { size });
                        if let Some(want) = want
                            && want != len
                        {
                            bad.push(format!("{key} has {len} bytes in the repository, the manifest says {want}{from} (truncated?)"));
                        }
                    }
                }
            }
        }
    }
    if !referenced.is_empty() {
        let names: Vec<&str> = referenced.iter().map(String::as_str).collect();
        backup
            .notes
            .push(format!("files also read from {}", names.join(", ")));
    }
    if bundles > 0 {
        backup.notes.push(format!("{bundles} files in bundles"));
    }
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(3).cloned().collect();
        backup.problems.push(format!(
            "{} file(s) do not match backup.manifest: {}{}",
            bad.len(),
            shown.join(", "),
            if bad.len() > 3 { ", ..." } else { "" }
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_give_their_time() {
        let at = |s| {
            label_time(s)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        };
        assert_eq!(at("19700101-000000F"), Some(0));
        assert_eq!(at("20261206-091216F"), Some(1_796_548_336));
        assert_eq!(at("20261206-091216F_20261207-000001I"), Some(1_796_601_601));
        for bad in [
            "latest",
            "20261206-091216",
            "20261206-091216F_x",
            "backup.info",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn files_are_found_where_the_manifest_says() {
        let dir = Path::new("/r/backup/main");
        let v = |t: &str| serde_json::from_str::<Value>(t).unwrap();
        assert_eq!(
            location(dir, "F_I", "pg_data/a", &v(r#"{"reference":"F","size":3}"#)),
            Stored::Own(dir.join("F/pg_data/a"))
        );
        assert_eq!(
            location(
                dir,
                "F_I",
                "pg_data/a",
                &v(r#"{"bni":1,"bno":58645,"repo-size":11}"#)
            ),
            Stored::Bundled {
                bundle: dir.join("F_I/bundle/1"),
                offset: 58645,
                length: 11
            }
        );
        assert_eq!(
            location(
                dir,
                "F_I",
                "pg_data/b",
                &v(r#"{"bi":1,"bim":5170,"reference":"F"}"#)
            ),
            Stored::Own(dir.join("F/pg_data/b.pgbi"))
        );
        assert!(escapes("../x") && escapes("/etc") && !escapes("pg_data/base/1/2"));
    }
}
