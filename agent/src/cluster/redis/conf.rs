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
use std::io;
use std::path::{Path, PathBuf};

/// The configuration file's name in the data directory.
pub const CONFIG_FILE: &str = "redis.conf";
/// The pid file's name in the data directory.
pub const PID_FILE: &str = "redis.pid";
/// The largest configuration file read.
const MAX_CONFIG: u64 = 1 << 20;

/// Why the configuration file could not be read; its message names the
/// file and why.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot open the data directory {}: {source}", dir.display())]
    Dir { dir: PathBuf, source: io::Error },
    #[error("{} does not exist", file.display())]
    Missing { file: PathBuf },
    #[error("cannot read {}: {source}", file.display())]
    Unreadable { file: PathBuf, source: io::Error },
}

impl ReadError {
    /// Whether the file (or its directory) is there but the system denies
    /// this user access: a fault of who asks (`validate` run as another
    /// user than the agent's), not of the file. The agent's own refusals
    /// (a link, a file someone else owns) are faults of the file.
    pub fn permission_denied(&self) -> bool {
        match self {
            ReadError::Dir { source, .. } | ReadError::Unreadable { source, .. } => {
                crate::safefs::denied_by_the_system(source)
            }
            ReadError::Missing { .. } => false,
        }
    }
}

/// The file's text.
///
/// Errors: [`ReadError`]; a link in place of the file or the directory is
/// [`ReadError::Unreadable`] or [`ReadError::Dir`] (never followed).
pub fn read(data_dir: &Path) -> Result<String, ReadError> {
    let dir = OwnedDir::open(data_dir).map_err(|source| ReadError::Dir {
        dir: data_dir.to_path_buf(),
        source,
    })?;
    match dir.read(CONFIG_FILE, MAX_CONFIG) {
        Ok(Some(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(None) => Err(ReadError::Missing {
            file: dir.entry(CONFIG_FILE),
        }),
        Err(source) => Err(ReadError::Unreadable {
            file: dir.entry(CONFIG_FILE),
            source,
        }),
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
    if let Some(why) = evicting(
        &directive(text, "maxmemory-policy").unwrap_or_default(),
        &directive(text, "maxmemory").unwrap_or_default(),
    ) {
        wrong.push(format!("no allkeys-* eviction: {why}"));
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

/// The comment line the agent writes above `replicaof` in the file of a
/// server it promoted: the term the server held then. Such a server is
/// restarted in place only if its files bring back every write it
/// acknowledged ([`restores_everything`]), and promoted again only if it
/// came back holding that term ([`super::info::term_of`]).
pub const PROMOTED: &str = "# watchpost: promoted here at term ";

/// The term of the [`PROMOTED`] line, if the file has one.
pub fn promoted_term(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix(PROMOTED))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .next_back()
}

/// `text` with its `replicaof` (or `slaveof`) lines and its [`PROMOTED`]
/// line replaced by one `replicaof host port`, appended at the end (the
/// last one wins), after the [`PROMOTED`] line of `promoted` if given.
pub fn with_replicaof(text: &str, host: &str, port: u16, promoted: Option<u64>) -> String {
    let mut out: String = text
        .lines()
        .filter(|line| {
            let key = line.split_whitespace().next().unwrap_or_default();
            !(key.eq_ignore_ascii_case("replicaof")
                || key.eq_ignore_ascii_case("slaveof")
                || line.trim().starts_with(PROMOTED))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    if let Some(term) = promoted {
        out.push_str(&format!(
            "{PROMOTED}{term}: restarted in place only with every write it acknowledged (appendonly yes, appendfsync always), else the leader key moves to a replica\n"
        ));
    }
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
/// links, owned by the directory's owner, its mode kept), to follow a
/// leader: the [`PROMOTED`] line goes. Unchanged when it already says so.
pub fn point_at(data_dir: &Path, host: &str, port: u16) -> Result<(), String> {
    write_replicaof(data_dir, host, port, None)
}

/// Point the file nowhere with the [`PROMOTED`] line of `term`: the
/// server is being promoted.
pub fn mark_promoted(data_dir: &Path, term: u64) -> Result<(), String> {
    let (host, port) = super::info::NOWHERE;
    write_replicaof(data_dir, host, port, Some(term))
}

/// The file's `replicaof` line set to `host port` after the [`PROMOTED`]
/// line of `promoted` (none: no such line).
pub fn write_replicaof(
    data_dir: &Path,
    host: &str,
    port: u16,
    promoted: Option<u64>,
) -> Result<(), String> {
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
    let text = read(data_dir).map_err(|e| e.to_string())?;
    let new = with_replicaof(&text, host, port, promoted);
    if new == text {
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
/// (no `replicaof`, or `replicaof no one`) is pointed [`super::info::NOWHERE`]
/// (its [`PROMOTED`] line kept).
pub fn mark_replica(data_dir: &Path) -> Result<(), String> {
    let text = read(data_dir).map_err(|e| e.to_string())?;
    if starts_as_replica(&text) {
        return Ok(());
    }
    let (host, port) = super::info::NOWHERE;
    write_replicaof(data_dir, host, port, promoted_term(&text))
}

/// Whether a restart of the server brings back every write it
/// acknowledged: only an append-only file synced before each reply
/// (`appendonly yes`, `appendfsync always`). Else why not.
pub fn restores_everything(text: &str) -> Result<(), String> {
    let aof = directive(text, "appendonly").is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    let sync = directive(text, "appendfsync").unwrap_or_else(|| "everysec".into());
    match (aof, sync.eq_ignore_ascii_case("always")) {
        (true, true) => Ok(()),
        (true, false) => Err(format!(
            "`appendfsync {sync}` loses the writes of the last second (or more) on a crash"
        )),
        (false, _) if directive(text, "save").is_some_and(|v| v.is_empty()) => Err(
            "it has no persistence (`save \"\"`, no `appendonly yes`): it comes back empty".into(),
        ),
        (false, _) => Err("without `appendonly yes` it comes back with its last RDB snapshot at best, older than its last writes".into()),
    }
}

/// Why `maxmemory-policy` may evict the term key (an `allkeys-*` policy
/// under a `maxmemory` limit), if it may. `volatile-*` policies evict only
/// keys with a TTL, which the term key never has.
pub fn evicting(policy: &str, maxmemory: &str) -> Option<String> {
    let policy = policy.trim().trim_matches('"').to_ascii_lowercase();
    let digits: String = maxmemory
        .trim()
        .trim_matches('"')
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let limited = digits.parse::<u64>().map_or(!digits.is_empty(), |n| n > 0);
    (policy.starts_with("allkeys-") && limited).then(|| {
        format!(
            "`maxmemory-policy {policy}` with `maxmemory {}` may evict the term key {} (then no replica can be placed on the leader's history); use a `volatile-*` policy or `noeviction` (the key has no TTL), or `maxmemory 0`",
            maxmemory.trim(),
            super::info::TERM_KEY
        )
    })
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
        let moved = with_replicaof(good, "10.0.0.2", 6380, None);
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

    /// Issue 28 (1, 2): the promotion's line survives the file's other
    /// rewrites (a start's, a loop's) until the server follows a leader,
    /// and a restart in place is allowed only when it brings back every
    /// acknowledged write.
    #[test]
    fn the_promoted_line_stays_until_the_server_follows_a_leader() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(CONFIG_FILE),
            "port 1\nsave \"\"\nreplicaof 10.0.0.1 6379\n",
        )
        .unwrap();
        mark_promoted(tmp.path(), 7).unwrap();
        let text = read(tmp.path()).unwrap();
        assert_eq!(promoted_term(&text), Some(7));
        assert_eq!(
            directive(&text, "replicaof").as_deref(),
            Some("127.0.0.1 1")
        );
        assert_eq!(text.matches("replicaof").count(), 1, "{text}");
        // CONFIG REWRITE on the primary drops `replicaof`: the loop's and
        // the start's rewrite put it back, the term kept.
        let rewritten = text.replace("replicaof 127.0.0.1 1\n", "");
        std::fs::write(tmp.path().join(CONFIG_FILE), &rewritten).unwrap();
        assert!(!starts_as_replica(&rewritten));
        mark_replica(tmp.path()).unwrap();
        let text = read(tmp.path()).unwrap();
        assert!(starts_as_replica(&text) && promoted_term(&text) == Some(7));
        assert_eq!(text.matches(PROMOTED).count(), 1, "{text}");
        // Following a leader: the line goes.
        point_at(tmp.path(), "10.0.0.2", 6379).unwrap();
        assert_eq!(promoted_term(&read(tmp.path()).unwrap()), None);

        let none = restores_everything("save \"\"\nappendonly no\n").unwrap_err();
        assert!(none.contains("comes back empty"), "{none}");
        let rdb = restores_everything("save 60 1\n").unwrap_err();
        assert!(rdb.contains("snapshot"), "{rdb}");
        let everysec = restores_everything("appendonly yes\n").unwrap_err();
        assert!(everysec.contains("appendfsync everysec"), "{everysec}");
        restores_everything("appendonly yes\nappendfsync always\n").unwrap();
    }

    /// Issue 28 (5a): an `allkeys-*` policy under a limit may evict the
    /// term key: refused at start, naming the setting.
    #[test]
    fn an_eviction_policy_that_may_evict_the_term_key_is_refused() {
        let dir = Path::new("/d");
        let base = "dir /d\npidfile /d/redis.pid\ndaemonize yes\n";
        let refused = check(
            &format!("{base}maxmemory 100mb\nmaxmemory-policy allkeys-lru\n"),
            dir,
        )
        .unwrap_err();
        assert!(
            refused.contains("maxmemory-policy allkeys-lru") && refused.contains("volatile-"),
            "{refused}"
        );
        for fine in [
            "maxmemory 0\nmaxmemory-policy allkeys-lfu\n",
            "maxmemory-policy allkeys-random\n",
            "maxmemory 1gb\nmaxmemory-policy volatile-lru\n",
            "maxmemory 1gb\n",
        ] {
            check(&format!("{base}{fine}"), dir).unwrap();
        }
    }
}
