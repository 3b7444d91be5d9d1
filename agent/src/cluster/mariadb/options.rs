//! The options a member's `mariadbd` starts with, as the server itself
//! reads them: `mariadbd --print-defaults` (the server's own option-file
//! parser: its groups, `!include` and `!includedir` followed, the last
//! setting of an option winning), read into the few settings the cluster
//! mode depends on ([`Settings`]).

use std::path::Path;
use std::process::{Command, Stdio};

/// What the cluster mode needs to know of a server's options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `read_only` on.
    pub read_only: bool,
    /// The binary log on (`log_bin`, with or without a name).
    pub log_bin: bool,
    pub log_slave_updates: bool,
    pub gtid_strict_mode: bool,
    /// `server_id`, as written (`None`: not set).
    pub server_id: Option<String>,
    /// `gtid_domain_id`, as written (`None`: not set, 0).
    pub gtid_domain_id: Option<String>,
    /// `datadir`, as written.
    pub datadir: Option<String>,
}

/// The options `mariadbd` in `bin_dir` would start with, given
/// `--defaults-file=FILE` (or, with `None`, its default files: what a
/// start by a service manager or by hand reads).
pub fn resolve(bin_dir: &Path, defaults_file: Option<&Path>) -> Result<Settings, String> {
    let program = bin_dir.join("mariadbd");
    let mut command = Command::new(&program);
    if let Some(file) = defaults_file {
        command.arg(format!("--defaults-file={}", file.display()));
    }
    let output = command
        .arg("--print-defaults")
        .stdin(Stdio::null())
        .env_remove("MYSQL_GROUP_SUFFIX")
        .env_remove("MARIADB_GROUP_SUFFIX")
        .output()
        .map_err(|e| format!("cannot run {} --print-defaults: {e}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "{} --print-defaults failed ({}): {}",
            program.display(),
            output.status,
            stderr.trim()
        ));
    }
    Ok(settings(&arguments(&stdout)))
}

/// The arguments of `--print-defaults`' output ("... would have been
/// started with the following arguments:" then one line of `--name=value`
/// separated by spaces; a value with spaces in it stays whole unless a
/// space in it is followed by `--`).
pub fn arguments(output: &str) -> Vec<String> {
    let line = output
        .lines()
        .skip_while(|l| !l.trim_end().ends_with("arguments:"))
        .nth(1)
        .unwrap_or("");
    let mut out: Vec<String> = Vec::new();
    for word in line.split(' ') {
        match out.last_mut() {
            Some(last) if !word.starts_with("--") => {
                if !word.is_empty() {
                    last.push(' ');
                    last.push_str(word);
                }
            }
            _ if word.is_empty() => {}
            _ => out.push(word.to_string()),
        }
    }
    out
}

/// Whether a boolean option's value is on (`--name` alone is on).
fn on(value: Option<&str>) -> bool {
    value.is_none_or(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "on" | "true" | "yes"
        )
    })
}

/// The settings of an argument list, the last setting winning, as
/// `mariadbd` reads them: `-` and `_` alike, `loose-` ignored,
/// `skip-`/`disable-` turn a boolean (or the binary log) off, `enable-`
/// on, `maximum-` is a limit, not a setting.
pub fn settings(arguments: &[String]) -> Settings {
    let mut seen = Settings::default();
    for argument in arguments {
        let Some(option) = argument.strip_prefix("--") else {
            continue;
        };
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option, None),
        };
        let name = name.replace('-', "_").to_ascii_lowercase();
        let name = name.strip_prefix("loose_").unwrap_or(&name);
        if name.starts_with("maximum_") {
            continue;
        }
        let (name, value, negated) = if let Some(rest) = name
            .strip_prefix("skip_")
            .or_else(|| name.strip_prefix("disable_"))
        {
            (rest, value, true)
        } else {
            (name.strip_prefix("enable_").unwrap_or(name), value, false)
        };
        let flag = !negated && on(value);
        match name {
            "read_only" => seen.read_only = flag,
            "log_slave_updates" | "log_replica_updates" => seen.log_slave_updates = flag,
            "gtid_strict_mode" => seen.gtid_strict_mode = flag,
            "log_bin" => seen.log_bin = !negated,
            "server_id" if !negated => seen.server_id = value.map(str::to_string),
            "gtid_domain_id" if !negated => seen.gtid_domain_id = value.map(str::to_string),
            "datadir" if !negated => seen.datadir = value.map(str::to_string),
            _ => {}
        }
    }
    seen
}

/// What a member's settings lack for cluster mode: one line per setting,
/// each naming it and what it must be.
pub fn faults(settings: &Settings) -> Vec<String> {
    let mut faults = Vec::new();
    if !settings.read_only {
        faults.push("`read_only = ON` (every start read-only: a restart not done by the agent must not come up writable beside the leader)".to_string());
    }
    if !settings.log_bin {
        faults.push("`log_bin` (the binary log: a member's writes and what it applies must be there for the others to follow it)".to_string());
    }
    if !settings.log_slave_updates {
        faults.push("`log_slave_updates = ON` (a replica logs what it applies, so that the others can follow it once it leads)".to_string());
    }
    if !settings.gtid_strict_mode {
        faults.push(
            "`gtid_strict_mode = ON` (errant or out-of-order GTIDs are refused, not applied)"
                .to_string(),
        );
    }
    match settings.server_id.as_deref().map(str::trim) {
        None => faults.push(
            "`server_id` set, different on every member (not set, it is 1 on every server)"
                .to_string(),
        ),
        Some(id) if !id.parse::<u32>().is_ok_and(|id| id > 0) => faults.push(format!(
            "`server_id` a number from 1, different on every member (it is {id:?})"
        )),
        Some(_) => {}
    }
    if let Some(domain) = settings.gtid_domain_id.as_deref()
        && domain.trim().parse::<u32>().is_err()
    {
        faults.push(format!(
            "`gtid_domain_id` a number, the same on every member (it is {domain:?})"
        ));
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(line: &str) -> Settings {
        settings(&arguments(&format!(
            "mariadbd would have been started with the following arguments:\n{line} \n"
        )))
    }

    #[test]
    fn print_defaults_output_is_split_into_arguments() {
        let out = "mariadbd would have been started with the following arguments:\n--port=3306 --log-error=/var/log/my file.log --read_only=ON \n";
        assert_eq!(
            arguments(out),
            [
                "--port=3306",
                "--log-error=/var/log/my file.log",
                "--read_only=ON"
            ]
        );
        assert!(arguments("nothing printed\n").is_empty());
    }

    #[test]
    fn the_last_setting_wins_in_mariadbd_spellings() {
        type Read = fn(&Settings) -> bool;
        let table: [(&str, Read, bool); 14] = [
            ("--read_only=ON", |s| s.read_only, true),
            ("--read-only", |s| s.read_only, true),
            ("--read_only=ON --read_only=OFF", |s| s.read_only, false),
            ("--read-only --skip-read-only", |s| s.read_only, false),
            ("--loose-read-only=1", |s| s.read_only, true),
            (
                "--read_only=ON --maximum-read_only=0",
                |s| s.read_only,
                true,
            ),
            ("--log-bin", |s| s.log_bin, true),
            ("--log_bin=/var/lib/mysql/binlog", |s| s.log_bin, true),
            ("--log-bin=x --skip-log-bin", |s| s.log_bin, false),
            ("--log-bin=x --disable-log-bin", |s| s.log_bin, false),
            ("--log-slave-updates", |s| s.log_slave_updates, true),
            ("--log_slave_updates=0", |s| s.log_slave_updates, false),
            ("--gtid-strict-mode=1", |s| s.gtid_strict_mode, true),
            ("--enable-gtid-strict-mode", |s| s.gtid_strict_mode, true),
        ];
        for (line, read, want) in table {
            assert_eq!(read(&of(line)), want, "{line}");
        }
        let seen = of("--server-id=3 --gtid_domain_id=0 --server_id=4");
        assert_eq!(seen.server_id.as_deref(), Some("4"));
        assert_eq!(seen.gtid_domain_id.as_deref(), Some("0"));
    }

    #[test]
    fn every_missing_setting_is_named() {
        let good =
            of("--read_only=ON --log-bin=b --log-slave-updates --gtid-strict-mode=1 --server-id=2");
        assert!(faults(&good).is_empty(), "{:?}", faults(&good));
        let all = faults(&Settings::default()).join("\n");
        for setting in [
            "read_only",
            "log_bin",
            "log_slave_updates",
            "gtid_strict_mode",
            "server_id",
        ] {
            assert!(all.contains(setting), "{setting} not in {all}");
        }
        let zero = faults(&Settings {
            server_id: Some("0".into()),
            gtid_domain_id: Some("x".into()),
            ..good.clone()
        })
        .join("\n");
        assert!(
            zero.contains("server_id") && zero.contains("gtid_domain_id"),
            "{zero}"
        );
    }

    #[test]
    fn includes_are_followed_as_mariadbd_follows_them() {
        // The server's own parser: a file that says read_only = ON and
        // includes one that turns it off starts the server writable.
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("member.cnf");
        let extra = dir.path().join("extra.cnf");
        let conf_d = dir.path().join("conf.d");
        std::fs::create_dir(&conf_d).unwrap();
        std::fs::write(
            &main,
            format!(
                "[mysqld]\nread_only = ON\nserver_id = 2\n!include {}\n!includedir {}\n",
                extra.display(),
                conf_d.display()
            ),
        )
        .unwrap();
        std::fs::write(&extra, "[mariadb]\nlog-bin = b\n").unwrap();
        std::fs::write(conf_d.join("z.cnf"), "[server]\nread_only = OFF\n").unwrap();
        let bin = Path::new("/usr/sbin");
        let seen = resolve(bin, Some(&main)).unwrap();
        assert!(!seen.read_only && seen.log_bin, "{seen:?}");
        std::fs::write(conf_d.join("z.cnf"), "[server]\nlog_slave_updates\n").unwrap();
        let seen = resolve(bin, Some(&main)).unwrap();
        assert!(seen.read_only && seen.log_slave_updates, "{seen:?}");
        // An include that cannot be read adds nothing (mariadbd starts
        // without it): what it was to set is missing.
        std::fs::write(&main, "[mysqld]\n!include /nonexistent/x.cnf\n").unwrap();
        let seen = resolve(bin, Some(&main)).unwrap();
        assert!(!seen.read_only, "{seen:?}");
        // No such file: mariadbd refuses to start; so does the check.
        let absent = resolve(bin, Some(&dir.path().join("absent.cnf"))).unwrap_err();
        assert!(absent.contains("absent.cnf"), "{absent}");
    }
}
