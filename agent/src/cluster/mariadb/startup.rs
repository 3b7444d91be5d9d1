//! Fail closed at start, for a MariaDB member: the cluster mode refuses to
//! run (with a message naming the fix) when it cannot tell whether
//! `mariadbd` runs (the data directory or its `mariadbd.pid` unreadable),
//! or when the member's option file does not make every start read-only
//! (`read_only = ON`): a restart by an operator or a service manager must
//! never bring a second writable server up beside the leader's.

use crate::config::ClusterSpec;
use crate::pgserver::postmaster::Postmaster;
use std::path::Path;

/// The option groups `mariadbd` reads.
const GROUPS: [&str; 5] = ["mysqld", "server", "mariadb", "mariadbd", "mariadb-10.11"];

/// The largest option file read.
const MAX_OPTION_FILE: u64 = 1 << 20;

/// Refuse cluster mode when the local server's state cannot be read, or
/// its option file does not set `read_only = ON`: an error naming the
/// fault and the fix.
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
    let Some(file) = &spec.defaults_file else {
        anyhow::bail!("cluster mode refuses to start: [cluster] `defaults_file` is not set");
    };
    let text = read_option_file(file)?;
    if !sets_read_only(&text) {
        anyhow::bail!(
            "cluster mode refuses to start: the member's option file {} does not set `read_only = ON` \
             in its [mysqld] (or [mariadb]) group, so a restart not done by the agent would bring the \
             server up writable beside the leader's. Fix: add `read_only = ON` under [mysqld] there",
            file.display()
        );
    }
    Ok(())
}

fn read_option_file(file: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(file)
        .and_then(|f| {
            if f.metadata()?.is_file() {
                Ok(f)
            } else {
                Err(std::io::Error::other("not a regular file"))
            }
        });
    let opened = opened.map_err(|e| {
        anyhow::anyhow!(
            "cluster mode refuses to start: cannot read the option file {} ({e}); \
             fix: `defaults_file` must name a regular file (not a link) the agent can read",
            file.display()
        )
    })?;
    let mut text = String::new();
    opened
        .take(MAX_OPTION_FILE)
        .read_to_string(&mut text)
        .map_err(|e| anyhow::anyhow!("cannot read the option file {}: {e}", file.display()))?;
    Ok(text)
}

/// Whether an option file's text sets `read_only` on in a group
/// `mariadbd` reads (the last setting wins; `read-only` and `read_only`
/// alike; a bare `read_only` is on).
pub fn sets_read_only(text: &str) -> bool {
    let mut group_read = false;
    let mut on = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(group) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            group_read = GROUPS.contains(&group.trim().to_ascii_lowercase().as_str());
            continue;
        }
        if !group_read {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches(['"', '\'']))),
            None => (line, None),
        };
        let key = key.replace('-', "_").to_ascii_lowercase();
        let key = key.strip_prefix("loose_").unwrap_or(&key);
        if key == "read_only" {
            on = value
                .is_none_or(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "true"));
        } else if key == "skip_read_only" {
            on = false;
        }
    }
    on
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_file_must_make_every_start_read_only() {
        assert!(sets_read_only("[mysqld]\nport = 3306\nread_only = ON\n"));
        assert!(sets_read_only("[mariadb]\nread-only\n"));
        assert!(sets_read_only("[server]\nread_only=1 \n"));
        // Not in a group mariadbd reads, turned off later, or absent.
        assert!(!sets_read_only("[client]\nread_only = ON\n"));
        assert!(!sets_read_only(
            "[mysqld]\nread_only = ON\nread_only = OFF\n"
        ));
        assert!(!sets_read_only(
            "[mysqld]\nread_only = ON\nskip-read-only\n"
        ));
        assert!(!sets_read_only("[mysqld]\n# read_only = ON\n"));
        assert!(!sets_read_only("read_only = ON\n"));
    }

    #[test]
    fn cluster_mode_refuses_an_option_file_that_starts_the_server_writable() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let cnf = dir.path().join("node.cnf");
        std::fs::write(&cnf, "[mysqld]\nport = 3306\n").unwrap();
        let text = format!(
            "[targets.local]\nkind = \"mysql\"\ndsn = \"mysql://w@127.0.0.1:3306/\"\nadmin_dsn = \"mysql://root@127.0.0.1:3306/\"\ndata_dir = \"{}\"\n\n[cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.9.9.9:3306\"\ndefaults_file = \"{}\"\n",
            data.display(),
            cnf.display()
        );
        let spec = crate::config::parse_str("w.toml", &text, Path::new("/"))
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(spec.engine, crate::config::TargetKind::Mysql);
        assert_eq!(spec.bin_dir, Path::new("/usr/sbin"));
        let refused = check_at_start(&spec).unwrap_err().to_string();
        assert!(refused.contains("read_only = ON"), "{refused}");
        std::fs::write(&cnf, "[mysqld]\nport = 3306\nread_only = ON\n").unwrap();
        check_at_start(&spec).unwrap();
        // An unusable pid file: refused, naming the fix.
        std::fs::write(data.join("mariadbd.pid"), "1\n").unwrap();
        std::fs::hard_link(data.join("mariadbd.pid"), dir.path().join("x")).unwrap();
        let refused = check_at_start(&spec).unwrap_err().to_string();
        for part in ["refuses to start", "Fix:", "mariadbd.pid"] {
            assert!(refused.contains(part), "{part:?} not in {refused}");
        }
    }
}
