//! The local Redis server's own configuration file, `DATA_DIR/redis.conf`,
//! as the cluster mode needs it. The operator writes it; the agent keeps
//! one line in it, `replicaof HOST PORT`: the leader to follow, or
//! [`super::info::NOWHERE`] when there is none. So the server **always
//! starts as a replica** — by the agent, an operator or a service manager
//! — and only the agent holding the leader key makes it a primary
//! (`REPLICAOF NO ONE` at run time, never written to the file).
//!
//! At start, cluster mode refuses a file it cannot use (fail closed, the
//! fix named): it must set `dir` to the data directory, `pidfile` to
//! `DATA_DIR/redis.pid` (the agent and its watchdog find the server by
//! it), and `daemonize yes` (the server outlives the agent's start
//! command). The file is read and replaced without following links.

use crate::safefs::OwnedDir;
use std::path::Path;

/// The configuration file's name in the data directory.
pub const CONFIG_FILE: &str = "redis.conf";
/// The pid file's name in the data directory.
pub const PID_FILE: &str = "redis.pid";
/// The largest configuration file read.
const MAX_CONFIG: u64 = 1 << 20;

/// The file's text (an error names the file and why).
pub fn read(data_dir: &Path) -> Result<String, String> {
    let dir = OwnedDir::open(data_dir)
        .map_err(|e| format!("cannot open the data directory {}: {e}", data_dir.display()))?;
    match dir.read(CONFIG_FILE, MAX_CONFIG) {
        Ok(Some(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(None) => Err(format!(
            "{} does not exist",
            dir.entry(CONFIG_FILE).display()
        )),
        Err(e) => Err(format!(
            "cannot read {}: {e}",
            dir.entry(CONFIG_FILE).display()
        )),
    }
}

/// The last value of directive `name` (Redis: the last one wins), its
/// quotes removed.
pub fn directive(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (key, value) = line.split_once(char::is_whitespace)?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().trim_matches('"').to_string())
        })
        .next_back()
}

/// What is wrong with the file for cluster mode, as one message naming
/// each fix; `Ok` when nothing is.
pub fn check(text: &str, data_dir: &Path) -> Result<(), String> {
    let mut wrong = Vec::new();
    let dir = data_dir.display().to_string();
    let pid = data_dir.join(PID_FILE).display().to_string();
    if directive(text, "dir")
        .as_deref()
        .map(|d| d.trim_end_matches('/'))
        != Some(dir.trim_end_matches('/'))
    {
        wrong.push(format!("`dir {dir}` (the server works in its data directory, where the agent and the watchdog look for it)"));
    }
    if directive(text, "pidfile").as_deref() != Some(pid.as_str()) {
        wrong.push(format!(
            "`pidfile {pid}` (the agent and the watchdog find the server by it)"
        ));
    }
    if !directive(text, "daemonize").is_some_and(|v| v.eq_ignore_ascii_case("yes")) {
        wrong.push("`daemonize yes` (the server outlives the agent's start command)".into());
    }
    if directive(text, "replica-read-only").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
        wrong.push(
            "no `replica-read-only no` (a replica must refuse writes: only the leader takes them)"
                .into(),
        );
    }
    if directive(text, "include").is_some() {
        wrong.push(
            "no `include` (a directive in another file could override the agent's `replicaof`)"
                .into(),
        );
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("set {}", wrong.join(", ")))
    }
}

/// `text` with its `replicaof` (or `slaveof`) lines replaced by one
/// `replicaof host port`, appended at the end (the last one wins).
pub fn with_replicaof(text: &str, host: &str, port: u16) -> String {
    let mut out: String = text
        .lines()
        .filter(|line| {
            let key = line.split_whitespace().next().unwrap_or_default();
            !(key.eq_ignore_ascii_case("replicaof") || key.eq_ignore_ascii_case("slaveof"))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    out.push_str(&format!("replicaof {host} {port}\n"));
    out
}

/// Whether the file makes the server start as a replica (a `replicaof`
/// other than `no one`).
pub fn starts_as_replica(text: &str) -> bool {
    let last = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let key = words.next()?;
            (key.eq_ignore_ascii_case("replicaof") || key.eq_ignore_ascii_case("slaveof"))
                .then(|| words.collect::<Vec<_>>().join(" "))
        })
        .next_back();
    last.is_some_and(|v| !v.eq_ignore_ascii_case("no one"))
}

/// Point the file's `replicaof` at `host:port` (replaced without following
/// links, owned by the directory's owner, its mode kept). Unchanged when
/// it already says so.
pub fn point_at(data_dir: &Path, host: &str, port: u16) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // The host comes from a member's record in etcd: one word of host
    // name or address characters, so that it can never add a directive.
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
    {
        return Err(format!(
            "refused to write `replicaof` for the host {host:?}: not a host name or address"
        ));
    }
    let text = read(data_dir)?;
    let new = with_replicaof(&text, host, port);
    if directive(&text, "replicaof") == Some(format!("{host} {port}")) && starts_as_replica(&text) {
        return Ok(());
    }
    let dir = OwnedDir::open(data_dir).map_err(|e| e.to_string())?;
    let mode = std::fs::symlink_metadata(dir.entry(CONFIG_FILE))
        .map(|m| m.mode() & 0o777)
        .unwrap_or(0o640);
    dir.replace(CONFIG_FILE, new.as_bytes(), mode).map_err(|e| {
        format!(
            "cannot write `replicaof {host} {port}` into {}: {e}",
            dir.entry(CONFIG_FILE).display()
        )
    })
}

/// Keep the file starting the server as a replica: a file that does not
/// (no `replicaof`, or `replicaof no one`) is pointed [`super::info::NOWHERE`].
pub fn mark_replica(data_dir: &Path) -> Result<(), String> {
    let text = read(data_dir)?;
    if starts_as_replica(&text) {
        return Ok(());
    }
    let (host, port) = super::info::NOWHERE;
    point_at(data_dir, host, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_checked_and_its_replicaof_line_kept_by_the_agent() {
        let dir = Path::new("/var/lib/redis/n1");
        let good = "port 6379\ndir /var/lib/redis/n1\npidfile /var/lib/redis/n1/redis.pid\ndaemonize yes\nreplicaof 127.0.0.1 1\n";
        check(good, dir).unwrap();
        let bad = check("port 6379\nreplica-read-only no\n", dir).unwrap_err();
        for part in [
            "`dir /var/lib/redis/n1`",
            "`pidfile /var/lib/redis/n1/redis.pid`",
            "`daemonize yes`",
            "replica-read-only",
        ] {
            assert!(bad.contains(part), "{part} not in {bad}");
        }
        assert!(starts_as_replica(good));
        assert!(!starts_as_replica(
            "replicaof 10.0.0.1 6379\nreplicaof no one\n"
        ));
        assert!(!starts_as_replica("port 1\n"));
        let moved = with_replicaof(good, "10.0.0.2", 6380);
        assert_eq!(
            directive(&moved, "replicaof").as_deref(),
            Some("10.0.0.2 6380")
        );
        assert_eq!(moved.matches("replicaof").count(), 1);
        assert!(moved.contains("daemonize yes\n"));
    }

    #[test]
    fn a_host_that_is_not_one_word_of_a_host_name_is_never_written() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(CONFIG_FILE),
            "port 1\nreplicaof 127.0.0.1 1\n",
        )
        .unwrap();
        for host in ["a\nreplicaof no one", "h dir /etc", ""] {
            let refused = point_at(tmp.path(), host, 6379).unwrap_err();
            assert!(refused.contains("not a host name"), "{refused}");
        }
        let text = read(tmp.path()).unwrap();
        assert_eq!(text, "port 1\nreplicaof 127.0.0.1 1\n");
    }

    #[test]
    fn point_at_rewrites_the_file_in_place_and_refuses_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(CONFIG_FILE), "port 1\nreplicaof no one\n").unwrap();
        mark_replica(tmp.path()).unwrap();
        let text = read(tmp.path()).unwrap();
        assert_eq!(
            directive(&text, "replicaof").as_deref(),
            Some("127.0.0.1 1")
        );
        point_at(tmp.path(), "10.0.0.3", 6379).unwrap();
        assert!(
            read(tmp.path())
                .unwrap()
                .ends_with("replicaof 10.0.0.3 6379\n")
        );
        let other = tmp.path().join("elsewhere.conf");
        std::fs::write(&other, "x\n").unwrap();
        std::fs::remove_file(tmp.path().join(CONFIG_FILE)).unwrap();
        std::os::unix::fs::symlink(&other, tmp.path().join(CONFIG_FILE)).unwrap();
        assert!(point_at(tmp.path(), "10.0.0.3", 6379).is_err());
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "x\n");
    }
}
