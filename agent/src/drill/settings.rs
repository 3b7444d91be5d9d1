//! The settings a restored copy starts with. Its `postgresql.conf` and
//! `postgresql.auto.conf` are production's, and many settings name paths
//! or commands the copy would write through: `data_directory` (the copy
//! would open the live data directory!), `hba_file`, `external_pid_file`,
//! `unix_socket_directories`, `archive_command`, `promote_trigger_file`
//! (deleted when found)... Each is overridden on the server's command line
//! (`-c`, which wins over every file) with a value inside the scratch
//! directory or a harmless one, and `include` directives that reach
//! outside the scratch directory (or through a link) are commented out in
//! the copy's files. The promoted copy must not act on the world either:
//! no logical replication workers (its subscriptions would apply and
//! advance production's slots), no triggers or event triggers
//! (`session_replication_role = replica`; 17+ also `event_triggers =
//! off`), libraries only
//! from an allowlist and from `$libdir`, and none of the settings that
//! hide corruption (`zero_damaged_pages`, `ignore_*`).

use super::confine::resolve;
use super::scratch::Scratch;
use std::path::{Path, PathBuf};

/// One `name = value` line of a PostgreSQL config file: the lower-cased
/// name and the value, a quoted one unescaped as PostgreSQL does
/// (`GUC_scanstr`: `''`, `\b \f \n \r \t`, octal `\ooo`, and `\` before
/// any other character is that character).
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
        unquote(quoted)
    } else {
        rest.split(|c: char| c.is_whitespace() || c == '#')
            .next()
            .unwrap_or("")
            .to_string()
    };
    Some((name, value))
}

/// The text of a quoted value after its opening quote, up to the closing
/// one, unescaped as PostgreSQL's `GUC_scanstr` does.
fn unquote(quoted: &str) -> String {
    let mut value: Vec<u8> = Vec::new();
    let bytes = quoted.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => {
                value.push(b'\'');
                i += 2;
            }
            b'\'' => break,
            b'\\' if i + 1 < bytes.len() => {
                i += 1;
                let c = bytes[i];
                i += 1;
                match c {
                    b'b' => value.push(0x08),
                    b'f' => value.push(0x0c),
                    b'n' => value.push(b'\n'),
                    b'r' => value.push(b'\r'),
                    b't' => value.push(b'\t'),
                    b'0'..=b'7' => {
                        let mut octal = u32::from(c - b'0');
                        for _ in 0..2 {
                            match bytes.get(i) {
                                Some(d @ b'0'..=b'7') => {
                                    octal = octal * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        value.push((octal & 0xff) as u8);
                    }
                    other => value.push(other),
                }
            }
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&value).into_owned()
}

/// What the copy's config files say, read as the server would (includes
/// inside the scratch directory followed).
#[derive(Default)]
pub struct Restored {
    /// Every setting in file order (later wins).
    pub settings: Vec<(String, String)>,
    /// Includes not read (commented out, or a linked file removed from
    /// the copy): (file, what it named, why).
    pub neutralised: Vec<(PathBuf, PathBuf, String)>,
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
        // Resolved on the copy's filesystem, never through a link.
        let target = match resolve(&s.dir, base, Path::new(&value)) {
            Ok(target) => target,
            Err(why) => {
                found.neutralised.push((
                    path.to_path_buf(),
                    PathBuf::from(&value),
                    why.to_string(),
                ));
                rewritten.push(format!(
                    "# watchpost drill: an include outside the drill's copy, not read: {line}"
                ));
                changed = true;
                continue;
            }
        };
        rewritten.push(line.to_string());
        if name == "include_dir" {
            // Listed and read from descriptors, never through a link
            // (one swapped in after `resolve` included).
            let mut files: Vec<PathBuf> = match s.list(&target) {
                Ok(names) => names.iter().map(|n| target.join(n)).collect(),
                // A missing directory: the server would fail to start.
                Err(_) if std::fs::symlink_metadata(&target).is_err() => Vec::new(),
                Err(e) => return Err(e),
            };
            files.retain(|f| {
                let n = f
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                n.ends_with(".conf") && !n.starts_with('.')
            });
            files.sort();
            for file in files {
                // A link in the directory: the server would follow it;
                // the copy loses it instead.
                if let Err(why) = resolve(&s.dir, &target, &file) {
                    s.remove(&file)?;
                    found
                        .neutralised
                        .push((file.clone(), file, why.to_string()));
                    continue;
                }
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

/// Libraries the copy may preload: they observe and log, and start
/// nothing that acts outside the server.
pub const SAFE_PRELOAD: [&str; 9] = [
    "pg_stat_statements",
    "auto_explain",
    "pgaudit",
    "pg_prewarm",
    "plpgsql",
    "pg_hint_plan",
    "pg_stat_kcache",
    "pg_wait_sampling",
    "pg_qualstats",
];

/// `shared_preload_libraries` of the copy: the allowlisted ones of
/// `libraries` (a config list, items possibly double-quoted), and the
/// ones dropped.
pub fn preload(libraries: &str) -> (Vec<String>, Vec<String>) {
    libraries
        .split(',')
        .map(|l| l.trim().trim_matches('"').to_string())
        .filter(|l| !l.is_empty())
        .partition(|l| SAFE_PRELOAD.contains(&l.as_str()))
}

/// The `-c` settings the copy starts with (name, value), for major
/// version `major`, listening on `port`; what the copy leaves out that
/// production has goes into `notes`.
pub fn overrides(
    s: &Scratch,
    restored: &Restored,
    major: u32,
    port: u16,
    recovery: &Recovery,
    notes: &mut Vec<String>,
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
        ("dynamic_library_path", "$libdir"),
        ("jit", "off"),
        ("max_logical_replication_workers", "0"),
        ("zero_damaged_pages", "off"),
        ("ignore_checksum_failure", "off"),
        ("ignore_system_indexes", "off"),
        // Triggers and event triggers (bar those ENABLE ALWAYS) do not
        // fire: the drill's own DDL (amcheck's extension) starts nothing.
        ("session_replication_role", "replica"),
    ] {
        set(&mut out, name, value);
    }
    if major >= 11 {
        set(&mut out, "ssl_passphrase_command", "");
    }
    if major >= 13 {
        set(&mut out, "ignore_invalid_pages", "off");
    }
    if major >= 15 {
        set(&mut out, "archive_library", "");
    } else {
        set(&mut out, "stats_temp_directory", "pg_stat_tmp");
    }
    if major >= 17 {
        set(&mut out, "event_triggers", "off");
    }
    if (12..=15).contains(&major) {
        set(&mut out, "promote_trigger_file", "");
    }
    if let Recovery::Command(command) = recovery {
        set(&mut out, "restore_command", command);
    }
    // Libraries act on start (a scheduler's jobs, a replication agent):
    // only those known to observe are kept.
    let (kept, dropped) = preload(restored.get("shared_preload_libraries").unwrap_or(""));
    if !dropped.is_empty() {
        notes.push(format!(
            "shared_preload_libraries {} not loaded in the copy (only {} are)",
            dropped.join(", "),
            SAFE_PRELOAD.join(", ")
        ));
    }
    set(&mut out, "shared_preload_libraries", &kept.join(","));
    out
}

/// `value` quoted for `/bin/sh` (the server's start passes its options
/// through it: [`crate::pgserver::ctl::PgCtl::start`]).
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// The server's start options for `overrides`.
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
        assert_eq!(
            parse_line(r"include '/a\'b\\c\nd\101'"),
            Some(("include".into(), "/a'b\\c\ndA".into()))
        );
        assert_eq!(parse_line("# comment"), None);
        assert_eq!(parse_line("   "), None);
    }

    #[test]
    fn only_allowlisted_libraries_are_preloaded() {
        let (kept, dropped) = preload(r#"pg_stat_statements, "pg_cron",$libdir/x, auto_explain"#);
        assert_eq!(kept, ["pg_stat_statements", "auto_explain"]);
        assert_eq!(dropped, ["pg_cron", "$libdir/x"]);
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
