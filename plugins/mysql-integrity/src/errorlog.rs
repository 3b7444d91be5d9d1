//! Corruption lines in the server's error log, read from a directory the
//! agent grants the probe (`dirs = { error-log = "/var/log/mysql" }`): a
//! page InnoDB found damaged when it read it, between two `CHECK TABLE`
//! cycles, is said here first.
//!
//! Probes keep nothing between runs, so each run reads a bounded tail
//! (`error_log_tail` bytes) of each log file in the directory (at most
//! [`MAX_FILES`], newest first: `*.err`, `*.log` and rotated `*.log.N`,
//! not compressed ones), and counts the corruption lines written within
//! `error_log_window` of the server's own clock (`NOW()`, the time zone
//! MariaDB writes its log in; `UTC_TIMESTAMP()` for MySQL's `...Z`
//! stamps). An old line thus stops counting once the window has passed
//! it; a line with no timestamp before it in the tail counts (its age
//! cannot be told).

use crate::corruption::{self, Named};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use watchpost_probe::sql::{self, Value};
use watchpost_probe::{Findings, Result, Status, bail, config, dirs, measurement};

/// Log files read per run, newest first.
pub const MAX_FILES: usize = 8;

/// A corruption line's text is cut to this many characters in messages.
const SHOWN_CHARS: usize = 240;

/// Tables named in one message, the rest counted.
const SHOWN_TABLES: usize = 5;

/// What a run reads, from the probe's config.
pub struct Settings {
    /// The name the directory is granted under.
    pub dir: String,
    /// Bytes read from the end of each file.
    pub tail: u64,
    /// Seconds back from the server's clock a line still counts.
    pub window: u64,
}

impl Settings {
    /// `error_log_dir` [`error-log`], `error_log_tail` [1048576 bytes],
    /// `error_log_window` [86400 s]; an error naming the setting when one
    /// is out of range.
    pub fn from_config() -> Result<Settings> {
        let dir: String = config::get_or("error_log_dir", "error-log".to_string())?;
        let tail: f64 = config::get_or("error_log_tail", 1_048_576.0)?;
        let window: f64 = config::get_or("error_log_window", 86_400.0)?;
        if !(tail.is_finite() && (4096.0..=67_108_864.0).contains(&tail)) {
            bail!(
                "config `error_log_tail` = {tail} must be a number of bytes from 4096 to 67108864"
            );
        }
        if !(window.is_finite() && window >= 1.0) {
            bail!("config `error_log_window` = {window} must be a number of seconds, 1 or more");
        }
        Ok(Settings {
            dir,
            tail: tail as u64,
            window: window as u64,
        })
    }
}

/// One corruption line found.
struct Found {
    file: String,
    named: Named,
    line: String,
}

/// Read the granted directory's logs and judge: `critical` naming each
/// table (or file) with corruption lines in the window; a note when the
/// directory is not granted (the part is optional).
pub fn run(target: &str, settings: &Settings, f: &mut Findings) -> Result<()> {
    let Some(root) = dirs::optional(&settings.dir)? else {
        f.note(format!(
            "error log not read: grant the directory holding it as `dirs = {{ {} = \"/var/log/mysql\" }}`",
            settings.dir
        ));
        return Ok(());
    };
    let (local_since, utc_since) = since(target, settings.window)?;
    let files = log_files(&root)?;
    if files.is_empty() {
        f.note(format!(
            "no error log (*.err, *.log) in granted directory `{}`",
            settings.dir
        ));
        return Ok(());
    }
    let mut found = Vec::new();
    for path in &files {
        let text = tail(path, settings.tail)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut current: Option<corruption::Stamp> = None;
        for line in text.lines() {
            if let Some(stamp) = corruption::stamp(line) {
                current = Some(stamp);
            }
            if !corruption::is_corruption(line) {
                continue;
            }
            let recent = match &current {
                Some(stamp) if stamp.utc => stamp.text >= utc_since,
                Some(stamp) => stamp.text >= local_since,
                None => true,
            };
            if recent {
                found.push(Found {
                    file: name.clone(),
                    named: corruption::named(line),
                    line: line.trim().chars().take(SHOWN_CHARS).collect(),
                });
            }
        }
    }
    f.push(measurement(
        "mysql.integrity.error_log.corruption_lines",
        found.len() as f64,
        "{line}",
    ));
    if found.is_empty() {
        f.note(format!(
            "no corruption in the error log ({} file(s), last {} s)",
            files.len(),
            settings.window
        ));
        return Ok(());
    }
    // One entry per table (or space, or file when unnamed): its count and
    // its latest line.
    let mut by_name: BTreeMap<String, (usize, &Found)> = BTreeMap::new();
    for item in &found {
        let key = match &item.named {
            Named::Table(table) => format!("table {table}"),
            Named::Space(space) => match space_table(target, *space) {
                Some(table) => format!("table {table}"),
                None => format!("tablespace {space}"),
            },
            Named::Unnamed => format!("log {}", item.file),
        };
        let entry = by_name.entry(key).or_insert((0, item));
        entry.0 += 1;
        entry.1 = item;
    }
    let shown: Vec<String> = by_name
        .iter()
        .take(SHOWN_TABLES)
        .map(|(key, (count, item))| {
            format!(
                "{key}: {count} line(s) in {}, latest: {}",
                item.file, item.line
            )
        })
        .collect();
    let more = by_name.len().saturating_sub(SHOWN_TABLES);
    f.problem(
        Status::Critical,
        format!(
            "the error log of {target} tells of corruption in the last {} s: {}{}",
            settings.window,
            shown.join("; "),
            if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            }
        ),
    );
    Ok(())
}

/// The window's start on the server's clock, local and UTC, as
/// `YYYY-MM-DD HH:MM:SS`.
fn since(target: &str, window: u64) -> Result<(String, String)> {
    let seconds = Value::Int(window as i64);
    let rows = sql::query(
        target,
        "SELECT DATE_FORMAT(NOW() - INTERVAL ? SECOND, '%Y-%m-%d %H:%i:%s') AS local_since, \
                DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL ? SECOND, '%Y-%m-%d %H:%i:%s') AS utc_since",
        &[seconds.clone(), seconds],
    )?;
    let row = rows.first()?;
    Ok((
        row.text("local_since")?.unwrap_or_default().to_string(),
        row.text("utc_since")?.unwrap_or_default().to_string(),
    ))
}

/// The error log files in `root` (not below it), newest first, at most
/// [`MAX_FILES`].
fn log_files(root: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(root)
        .map_err(|e| watchpost_probe::Error::msg(format!("cannot list {}: {e}", root.display())))?;
    let mut files: Vec<(SystemTime, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_log_name(&name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        files.push((modified, entry.path()));
    }
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(files.into_iter().take(MAX_FILES).map(|(_, p)| p).collect())
}

/// `*.err`, `*.log`, and a rotated `*.log.N` / `*.err.N`; not compressed.
fn is_log_name(name: &str) -> bool {
    let base = match name.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    };
    base.ends_with(".err") || base.ends_with(".log")
}

/// The last `limit` bytes of `path` as text, from its first whole line.
fn tail(path: &Path, limit: u64) -> Result<String> {
    let fail = |e: std::io::Error| {
        watchpost_probe::Error::msg(format!("cannot read {}: {e}", path.display()))
    };
    let mut file = File::open(path).map_err(fail)?;
    let len = file.metadata().map_err(fail)?.len();
    let start = len.saturating_sub(limit);
    file.seek(SeekFrom::Start(start)).map_err(fail)?;
    let mut bytes = Vec::with_capacity((len - start) as usize);
    file.take(limit).read_to_end(&mut bytes).map_err(fail)?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if start > 0 {
        // The first line was cut by the seek.
        let cut = text.find('\n').map_or(text.len(), |i| i + 1);
        text.drain(..cut);
    }
    Ok(text)
}

/// The table of InnoDB tablespace `space`, when the account may read it
/// (`PROCESS`); MariaDB's and MySQL 8's view names.
fn space_table(target: &str, space: u64) -> Option<String> {
    for view in [
        "information_schema.INNODB_SYS_TABLESPACES",
        "information_schema.INNODB_TABLESPACES",
    ] {
        let statement = format!("SELECT NAME AS name FROM {view} WHERE SPACE = ?");
        if let Ok(rows) = sql::query(target, &statement, &[Value::Int(space as i64)]) {
            let name = rows
                .iter()
                .next()
                .and_then(|row| row.text("name").ok().flatten().map(String::from));
            return name.as_deref().and_then(corruption::from_space_name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::is_log_name;

    #[test]
    fn which_files_are_logs() {
        for name in ["mysqld.log", "error.log.1", "host.err", "mariadb.err.12"] {
            assert!(is_log_name(name), "{name}");
        }
        for name in [
            "error.log.1.gz",
            "binlog.000001",
            "mysqld.sock",
            "log",
            "error.logs",
        ] {
            assert!(!is_log_name(name), "{name}");
        }
    }
}
