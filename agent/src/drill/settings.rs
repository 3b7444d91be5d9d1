//! The settings a restored copy starts with. Its `postgresql.conf` and
//! `postgresql.auto.conf` are production's, and many settings name paths
//! or commands the copy would write through: `data_directory` (the copy
//! would open the live data directory!), `hba_file`, `external_pid_file`,
//! `unix_socket_directories`, `archive_command`, `promote_trigger_file`
//! (deleted when found)... Each is overridden on the server's command line
//! (`-c`, which wins over every file) with a value inside the scratch
//! directory or a harmless one, and `include` directives that reach
//! outside the scratch directory are commented out in the copy's files.

use super::scratch::Scratch;
use super::tablespace::normalize;
use std::path::{Path, PathBuf};

/// One `name = value` line of a PostgreSQL config file: the lower-cased
/// name and the value (quotes removed, `''` and `\'` unescaped).
pub fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim_start();
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(line.len());
    if end == 0 {
        return None;
    }
    let name = line[..end].to_ascii_lowercase();
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    let value = if let Some(quoted) = rest.strip_prefix('\'') {
        let mut value = String::new();
        let mut chars = quoted.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    value.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                }
                c => value.push(c),
            }
        }
        value
    } else {
        rest.split(|c: char| c.is_whitespace() || c == '#')
            .next()
            .unwrap_or("")
            .to_string()
    };
    Some((name, value))
}

/// What the copy's config files say, read as the server would (includes
/// inside the scratch directory followed).
#[derive(Default)]
pub struct Restored {
    /// Every setting in file order (later wins).
    pub settings: Vec<(String, String)>,
    /// Include directives that were commented out: (file, target).
    pub neutralised: Vec<(PathBuf, PathBuf)>,
}

impl Restored {
    /// The last value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

const INCLUDES: [&str; 3] = ["include", "include_if_exists", "include_dir"];

/// Read `postgresql.conf` and `postgresql.auto.conf` of the copy, and the
/// files they include from inside the scratch directory; comment out
/// (in the copy) every include that leads outside it.
pub fn read(s: &Scratch) -> Result<Restored, String> {
    let mut found = Restored::default();
    for name in ["postgresql.conf", "postgresql.auto.conf"] {
        read_file(s, &s.data.join(name), 0, &mut found)?;
    }
    Ok(found)
}

fn read_file(s: &Scratch, path: &Path, depth: usize, found: &mut Restored) -> Result<(), String> {
    if depth > 10 {
        return Err(format!("{}: includes nested too deeply", path.display()));
    }
    let Some(text) = s.read(path)? else {
        return Ok(());
    };
    let base = path.parent().unwrap_or(Path::new("/"));
    let mut rewritten = Vec::new();
    let mut changed = false;
    for line in text.lines() {
        let Some((name, value)) = parse_line(line) else {
            rewritten.push(line.to_string());
            continue;
        };
        if !INCLUDES.contains(&name.as_str()) {
            found.settings.push((name, value));
            rewritten.push(line.to_string());
            continue;
        }
        let target = normalize(&base.join(&value));
        if !target.starts_with(&s.dir) {
            found.neutralised.push((path.to_path_buf(), target));
            rewritten.push(format!(
                "# watchpost drill: an include outside the drill's copy, not read: {line}"
            ));
            changed = true;
            continue;
        }
        rewritten.push(line.to_string());
        if name == "include_dir" {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&target)
                .map(|e| e.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            files.retain(|f| {
                let n = f
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                n.ends_with(".conf") && !n.starts_with('.')
            });
            files.sort();
            for file in files {
                read_file(s, &file, depth + 1, found)?;
            }
        } else {
            read_file(s, &target, depth + 1, found)?;
        }
    }
    if changed {
        s.replace(path, &(rewritten.join("\n") + "\n"))?;
    }
    Ok(())
}

/// The major version of the copy (`PG_VERSION`).
pub fn major_version(s: &Scratch) -> Result<u32, String> {
    let text = s
        .read(&s.data.join("PG_VERSION"))?
        .ok_or_else(|| format!("{}: no PG_VERSION: not a data directory", s.data.display()))?;
    text.trim()
        .split('.')
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            format!(
                "{}: PG_VERSION {:?} is not a version",
                s.data.display(),
                text.trim()
            )
        })
}

/// How the drill recovers: the `restore_command` it sets (`None`: keep
/// the one a user's restore command wrote).
pub enum Recovery {
    Command(String),
    Keep,
}

/// The `-c` settings the copy starts with (name, value), for major
/// version `major`, listening on `port`.
pub fn overrides(
    s: &Scratch,
    restored: &Restored,
    major: u32,
    port: u16,
    recovery: &Recovery,
) -> Vec<(String, String)> {
    let dir = s.dir.display().to_string();
    let data = s.data.display().to_string();
    fn set(list: &mut Vec<(String, String)>, name: &str, value: &str) {
        list.push((name.to_string(), value.to_string()));
    }
    let mut out = Vec::new();
    for (name, value) in [
        ("data_directory", data.as_str()),
        ("hba_file", &format!("{dir}/hba.conf")),
        ("ident_file", &format!("{dir}/ident.conf")),
        ("external_pid_file", ""),
        ("port", &port.to_string()),
        ("listen_addresses", ""),
        ("unix_socket_directories", &dir),
        ("archive_mode", "off"),
        ("archive_command", ""),
        ("archive_cleanup_command", ""),
        ("recovery_end_command", ""),
        ("primary_conninfo", ""),
        ("primary_slot_name", ""),
        ("synchronous_standby_names", ""),
        ("hot_standby", "off"),
        ("recovery_target", ""),
        ("recovery_target_lsn", ""),
        ("recovery_target_name", ""),
        ("recovery_target_time", ""),
        ("recovery_target_xid", ""),
        ("recovery_target_timeline", "latest"),
        ("logging_collector", "off"),
        ("log_destination", "stderr"),
        ("ssl", "off"),
        ("shared_buffers", "128MB"),
        ("cluster_name", "watchpost-drill"),
        ("session_preload_libraries", ""),
        ("local_preload_libraries", ""),
    ] {
        set(&mut out, name, value);
    }
    if major >= 15 {
        set(&mut out, "archive_library", "");
    } else {
        set(&mut out, "stats_temp_directory", "pg_stat_tmp");
    }
    if (12..=15).contains(&major) {
        set(&mut out, "promote_trigger_file", "");
    }
    if let Recovery::Command(command) = recovery {
        set(&mut out, "restore_command", command);
    }
    // Libraries loaded by path may live anywhere and act on start (a
    // scheduler's jobs): keep only those named as extensions.
    let libraries = restored.get("shared_preload_libraries").unwrap_or("");
    let kept: Vec<&str> = libraries
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('/'))
        .collect();
    set(&mut out, "shared_preload_libraries", &kept.join(","));
    out
}

/// `value` quoted for `/bin/sh` (`pg_ctl -o` passes options through it).
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// The `pg_ctl -o` string for `overrides`.
pub fn command_line(overrides: &[(String, String)]) -> String {
    overrides
        .iter()
        .map(|(n, v)| format!("-c {}", shell_quote(&format!("{n}={v}"))))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines_parse_as_postgresql_reads_them() {
        assert_eq!(
            parse_line("Data_Directory = '/var/lib/it''s' # live"),
            Some(("data_directory".into(), "/var/lib/it's".into()))
        );
        assert_eq!(
            parse_line("include_dir 'conf.d'"),
            Some(("include_dir".into(), "conf.d".into()))
        );
        assert_eq!(
            parse_line("port=5433#x"),
            Some(("port".into(), "5433".into()))
        );
        assert_eq!(parse_line("# comment"), None);
        assert_eq!(parse_line("   "), None);
    }

    #[test]
    fn options_survive_the_shell() {
        let line = command_line(&[
            ("data_directory".into(), "/s/it's here".into()),
            ("external_pid_file".into(), "".into()),
        ]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s|' {line}"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "-c|data_directory=/s/it's here|-c|external_pid_file=|"
        );
    }
}
