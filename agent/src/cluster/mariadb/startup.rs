//! Fail closed at start, for a MariaDB member: the cluster mode refuses to
//! run (with a message naming the fix) when it cannot tell whether
//! `mariadbd` runs (the data directory or its `mariadbd.pid` unreadable),
//! or when the member's option file, as `mariadbd` reads it (includes
//! followed: [`super::options`]), lacks a setting the cluster mode needs:
//! `read_only = ON` (a restart by an operator or a service manager must
//! never bring a second writable server up beside the leader's), the
//! binary log, `log_slave_updates`, `gtid_strict_mode`, a `server_id`.
//! What it cannot refuse, it warns of ([`warnings`]): a distribution's
//! service enabled at boot, and default option files that would start
//! this data directory writable.

use super::options;
use crate::config::{ClusterSpec, TargetKind};
use crate::pgserver::postmaster::Postmaster;
use std::io;
use std::path::{Path, PathBuf};

/// The largest option file read.
const MAX_OPTION_FILE: u64 = 1 << 20;

/// The data directory `mariadbd` uses when no option names one (Debian's
/// and the upstream packages').
const DEFAULT_DATADIR: &str = "/var/lib/mysql";

/// Refuse cluster mode when the local server's state cannot be read, or
/// its option file lacks a setting the cluster needs: an error naming the
/// fault, the settings and the file. Warnings ([`warnings`]) are logged.
pub fn check_at_start(spec: &ClusterSpec) -> anyhow::Result<()> {
    let seen = super::process::probe(&spec.data_dir);
    let fault = match (&seen.fault, &seen.state) {
        (Some(fault), _) => Some(fault.clone()),
        (None, Postmaster::Unknown(why)) => Some(why.clone()),
        (None, _) => None,
    };
    if let Some(fault) = fault {
        anyhow::bail!(
            "cluster mode refuses to start: it cannot tell whether the MariaDB server of {} runs ({fault}). \
             Fix: let the agent read the data directory and its {} (run the agent as root or as the \
             directory's owner; the pid file must be the server's own: one link, owned by the directory's owner)",
            spec.data_dir.display(),
            super::process::PID_FILE
        );
    }
    crate::pgserver::postmaster::may_signal(&spec.data_dir)
        .map_err(|why| anyhow::anyhow!("cluster mode refuses to start: {why}"))?;
    if let Some(fault) = option_file_fault(spec) {
        anyhow::bail!("cluster mode refuses to start: {fault}");
    }
    for warning in behind_the_agents_back(spec)
        .into_iter()
        .chain(replication_tls_unused(spec))
    {
        tracing::warn!("cluster: {warning}");
    }
    Ok(())
}

/// The `ssl-*` parameters of the target's `replication_dsn`, which the
/// cluster mode does not pass on: its `CHANGE MASTER` sets no `MASTER_SSL`
/// options (and a promotion's `RESET SLAVE ALL` clears any set by hand),
/// so members replicate in plain text whatever the URL says.
fn replication_tls_unused(spec: &ClusterSpec) -> Option<String> {
    let url = spec.server_target.as_ref()?.replication_dsn.as_deref()?;
    let given: Vec<String> = crate::sql::mysql::dsn::params(url)
        .map(|(key, _)| key)
        .filter(|key| key.starts_with("ssl"))
        .collect();
    (!given.is_empty()).then(|| {
        format!(
            "`replication_dsn` sets {}, which the cluster mode does not pass to CHANGE MASTER: \
             members replicate in plain text (TLS of replication is not driven yet; keep it on \
             a private network)",
            given.join(", ")
        )
    })
}

/// What may start the member's server writable behind the agent's back,
/// which the start check cannot refuse: a distribution's MariaDB/MySQL
/// service enabled at boot, and the default option files (what a start
/// without `--defaults-file` reads: a service manager's or an operator's)
/// naming this data directory without `read_only = ON`. Empty for other
/// engines.
/// For `validate`, first what the start would refuse
/// ([`option_file_fault`]).
pub fn warnings(spec: &ClusterSpec) -> Vec<String> {
    if spec.engine != TargetKind::Mysql {
        return Vec::new();
    }
    option_file_fault(spec)
        .map(|fault| {
            // `validate` run as another user than the agent's.
            if fault.permission_denied() {
                format!("cannot check the member's option file as this user ({fault}); the agent checks it again at its start")
            } else {
                format!("the agent will refuse to start cluster mode: {fault}")
            }
        })
        .into_iter()
        .chain(behind_the_agents_back(spec))
        .chain(replication_tls_unused(spec))
        .collect()
}

/// The warnings of [`warnings`] that the start cannot refuse on.
fn behind_the_agents_back(spec: &ClusterSpec) -> Vec<String> {
    let mut out: Vec<String> = enabled_units(Path::new("/"))
        .into_iter()
        .map(|unit| format!(
            "the service manager starts {unit} at boot: it would start mariadbd with the default option files, not the member's; disable it (systemctl disable --now {unit}) and let the agent start the server"
        ))
        .collect();
    match options::resolve(&spec.bin_dir, None) {
        Ok(defaults) if !defaults.read_only && same_dir(defaults.datadir.as_deref(), &spec.data_dir) => out.push(format!(
            "the default option files (/etc/my.cnf, /etc/mysql/my.cnf and their includes, ~/.my.cnf) start mariadbd on {} without `read_only = ON`: a start without --defaults-file (a service manager's, an operator's) would bring it up writable beside the leader; set `read_only = ON` under [mysqld] there too, or do not start it so",
            spec.data_dir.display()
        )),
        Ok(_) => {}
        Err(e) => out.push(format!(
            "cannot tell what a start without --defaults-file would read ({e}); make sure it sets `read_only = ON`"
        )),
    }
    out
}

/// Whether `datadir` (the compiled-in default when not set) is `data_dir`.
fn same_dir(datadir: Option<&str>, data_dir: &Path) -> bool {
    let named = Path::new(datadir.unwrap_or(DEFAULT_DATADIR));
    match (named.canonicalize(), data_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => named == data_dir,
    }
}

/// The MariaDB/MySQL services enabled under `root` (links in
/// `etc/systemd/system/*.wants/`): `mariadb.service`, `mysql.service`,
/// `mysqld.service`, `mariadb@NAME.service`.
pub fn enabled_units(root: &Path) -> Vec<String> {
    let mut units = Vec::new();
    let Ok(targets) = std::fs::read_dir(root.join("etc/systemd/system")) else {
        return units;
    };
    for target in targets.flatten() {
        if !target.file_name().to_string_lossy().ends_with(".wants") {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(target.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let unit = name.strip_suffix(".service").unwrap_or("");
            let ours =
                matches!(unit, "mariadb" | "mysql" | "mysqld") || unit.starts_with("mariadb@");
            if ours && !units.contains(&name) {
                units.push(name);
            }
        }
    }
    units.sort();
    units
}

/// Why the member's option file cannot start a cluster member (unset,
/// unreadable, or lacking a setting the cluster needs), naming the fix;
/// `None` when it can. The start refuses on it; `validate` warns of it
/// ([`warnings`]), so that a config is not called valid while the agent
/// would refuse to start on it.
fn option_file_fault(spec: &ClusterSpec) -> Option<OptionFileFault> {
    let Some(file) = &spec.defaults_file else {
        return Some(OptionFileFault::NotSet);
    };
    if let Err(source) = read_option_file(file) {
        return Some(OptionFileFault::Unreadable {
            file: file.clone(),
            source,
        });
    }
    let settings = match options::resolve(&spec.bin_dir, Some(file)) {
        Ok(settings) => settings,
        Err(why) => {
            return Some(OptionFileFault::Unresolved {
                file: file.clone(),
                why,
            });
        }
    };
    let faults = options::faults(&settings);
    if faults.is_empty() {
        return None;
    }
    Some(OptionFileFault::Unfit {
        file: file.clone(),
        faults,
    })
}

/// What is wrong with the member's option file; the message names the
/// file, the settings and the fix.
#[derive(Debug, thiserror::Error)]
enum OptionFileFault {
    #[error("[cluster] `defaults_file` is not set")]
    NotSet,
    #[error(
        "cannot read the option file {} ({source}); fix: `defaults_file` must name a regular \
         file (not a link) the agent can read",
        file.display()
    )]
    Unreadable { file: PathBuf, source: io::Error },
    #[error(
        "cannot read the options of the member's option file {} as mariadbd reads them: {why}",
        file.display()
    )]
    Unresolved { file: PathBuf, why: String },
    #[error(
        "the member's option file {} (as mariadbd reads it, !include and !includedir followed) \
         does not set {}. Fix: set them under [mysqld] in {}",
        file.display(),
        faults.join("; nor "),
        file.display()
    )]
    Unfit { file: PathBuf, faults: Vec<String> },
}

impl OptionFileFault {
    /// Whether the file is there but the system denies this user access:
    /// a fault of who asks (`validate` run as another user than the
    /// agent's), not of the file.
    fn permission_denied(&self) -> bool {
        matches!(self, OptionFileFault::Unreadable { source, .. }
            if crate::safefs::denied_by_the_system(source))
    }
}

/// The option file itself must be a regular file (not a link) the agent
/// can open: what it says is read by `mariadbd` ([`options::resolve`]).
fn read_option_file(file: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(file)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        Err(io::Error::other("not a regular file"))
    } else if meta.len() > MAX_OPTION_FILE {
        Err(io::Error::other("larger than 1 MiB"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary directory holding a data directory and the path of an
    /// option file (not written).
    fn layout() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let cnf = dir.path().join("node.cnf");
        (dir, data, cnf)
    }

    /// A MariaDB member's `[cluster]` over `data` with option file `cnf`.
    fn member(data: &Path, cnf: &Path) -> ClusterSpec {
        let text = format!(
            "[targets.local]\nkind = \"mysql\"\ndsn = \"mysql://w@127.0.0.1:3306/\"\nadmin_dsn = \"mysql://root@127.0.0.1:3306/\"\ndata_dir = \"{}\"\n\n[cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.9.9.9:3306\"\ndefaults_file = \"{}\"\n",
            data.display(),
            cnf.display()
        );
        crate::config::parse_str("w.toml", &text, Path::new("/"))
            .unwrap()
            .cluster
            .unwrap()
    }

    #[test]
    fn cluster_mode_refuses_an_option_file_that_starts_the_server_writable() {
        let (dir, data, cnf) = layout();
        std::fs::write(&cnf, "[mysqld]\nport = 3306\n").unwrap();
        let spec = member(&data, &cnf);
        assert_eq!(spec.engine, crate::config::TargetKind::Mysql);
        assert_eq!(spec.bin_dir, Path::new("/usr/sbin"));
        let refused = check_at_start(&spec).unwrap_err().to_string();
        assert!(refused.contains("read_only = ON"), "{refused}");
        // Read-only, but without what replication by GTID needs: each
        // setting named, with the file.
        std::fs::write(&cnf, "[mysqld]\nport = 3306\nread_only = ON\n").unwrap();
        let refused = check_at_start(&spec).unwrap_err().to_string();
        for part in [
            "log_bin",
            "log_slave_updates",
            "gtid_strict_mode",
            "server_id",
            cnf.to_str().unwrap(),
        ] {
            assert!(refused.contains(part), "{part:?} not in {refused}");
        }
        assert!(!refused.contains("read_only = ON"), "{refused}");
        let good = "[mysqld]\nport = 3306\nread_only = ON\nlog-bin = b\nlog-slave-updates\n\
                    gtid-strict-mode = 1\nserver-id = 2\n";
        std::fs::write(&cnf, good).unwrap();
        check_at_start(&spec).unwrap();
        // An included file that turns read_only off: refused (mariadbd
        // would start writable).
        let extra = dir.path().join("extra.cnf");
        std::fs::write(&extra, "[mariadb]\nskip-read-only\n").unwrap();
        std::fs::write(&cnf, format!("{good}!include {}\n", extra.display())).unwrap();
        let refused = check_at_start(&spec).unwrap_err().to_string();
        assert!(refused.contains("read_only = ON"), "{refused}");
        std::fs::write(&cnf, good).unwrap();
        // An unusable pid file: refused, naming the fix.
        std::fs::write(data.join("mariadbd.pid"), "1\n").unwrap();
        std::fs::hard_link(data.join("mariadbd.pid"), dir.path().join("x")).unwrap();
        let refused = check_at_start(&spec).unwrap_err().to_string();
        for part in ["refuses to start", "Fix:", "mariadbd.pid"] {
            assert!(refused.contains(part), "{part:?} not in {refused}");
        }
    }

    #[test]
    fn tls_asked_of_replication_is_warned_as_not_passed_on() {
        let (_dir, data, cnf) = layout();
        let mut spec = member(&data, &cnf);
        assert_eq!(replication_tls_unused(&spec), None);
        let target = spec.server_target.as_mut().unwrap();
        target.replication_dsn = Some("mysql://repl@10.9.9.9:3306/".into());
        assert_eq!(replication_tls_unused(&spec), None);
        let target = spec.server_target.as_mut().unwrap();
        target.replication_dsn =
            Some("mysql://repl@10.9.9.9:3306/?ssl-mode=REQUIRED&ssl_ca=/ca.pem".into());
        let warned = replication_tls_unused(&spec).unwrap();
        assert!(warned.contains("ssl-mode, ssl-ca"), "{warned}");
        assert!(warned.contains("plain text"), "{warned}");
        assert!(
            warnings(&spec).iter().any(|w| w.contains("plain text")),
            "validate shows it"
        );
    }

    /// A new user's finding: `validate` called a config valid whose
    /// option file the start then refused.
    #[test]
    fn validate_warns_of_an_option_file_the_start_would_refuse() {
        let (_dir, data, cnf) = layout();
        let spec = member(&data, &cnf);
        let missing = warnings(&spec);
        assert!(
            missing.iter().any(|w| w.contains("will refuse to start")
                && w.contains("cannot read the option file")
                && w.contains(cnf.to_str().unwrap())),
            "{missing:?}"
        );
        std::fs::write(&cnf, "[mysqld]\nport = 3306\n").unwrap();
        let writable = warnings(&spec);
        assert!(
            writable
                .iter()
                .any(|w| w.contains("will refuse to start") && w.contains("read_only = ON")),
            "{writable:?}"
        );
        std::fs::write(
            &cnf,
            "[mysqld]\nport = 3306\nread_only = ON\nlog-bin = b\nlog-slave-updates\n\
             gtid-strict-mode = 1\nserver-id = 2\n",
        )
        .unwrap();
        let good = warnings(&spec);
        assert!(
            !good.iter().any(|w| w.contains("will refuse to start")),
            "{good:?}"
        );
    }

    #[test]
    fn a_distribution_service_enabled_at_boot_is_named() {
        let root = tempfile::tempdir().unwrap();
        assert!(enabled_units(root.path()).is_empty());
        let wants = root
            .path()
            .join("etc/systemd/system/multi-user.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        for unit in [
            "mariadb.service",
            "ssh.service",
            "mysqld_exporter.service",
            "mariadb@b.service",
        ] {
            std::os::unix::fs::symlink("/lib/systemd/system/x", wants.join(unit)).unwrap();
        }
        assert_eq!(
            enabled_units(root.path()),
            ["mariadb.service", "mariadb@b.service"]
        );
    }
}
