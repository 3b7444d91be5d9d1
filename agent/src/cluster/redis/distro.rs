//! What else may start the local Redis server as a primary, as warnings
//! for `validate` and the agent's start: a configuration file the agent
//! manages with no `replicaof` line yet (a start by anyone before the
//! agent writes it is a primary's), and the distribution's systemd unit
//! (`redis-server.service` on Debian, `redis.service`, Valkey's) enabled
//! for the same port or directory: its own file (`/etc/redis/redis.conf`)
//! has no `replicaof` the agent keeps, so at boot or on `systemctl
//! restart` it starts a primary beside (or instead of) the server the
//! agent manages. The fix: `systemctl disable --now redis-server`.

use super::conf;
use crate::config::{ClusterSpec, Config, TargetKind};
use std::path::{Path, PathBuf};

/// The units a distribution ships, with the files they start from.
const UNITS: [(&str, &[&str]); 4] = [
    (
        "redis-server.service",
        &["etc/redis/redis.conf", "etc/redis.conf"],
    ),
    ("redis.service", &["etc/redis/redis.conf", "etc/redis.conf"]),
    ("valkey-server.service", &["etc/valkey/valkey.conf"]),
    ("valkey.service", &["etc/valkey/valkey.conf"]),
];

/// The warnings for `config`'s Redis `[cluster]` (none for another
/// engine), first what the agent's start would refuse: a configuration
/// file it cannot read, or one that does not keep the server in the
/// member's directory (a config is not called valid while the agent
/// would refuse to start on it).
pub fn for_config(config: &Config) -> Vec<String> {
    let Some(spec) = config.cluster.as_ref() else {
        return Vec::new();
    };
    if spec.engine != TargetKind::Redis {
        return Vec::new();
    }
    let refused = |why: String| format!("the agent will refuse to start cluster mode: {why}");
    match conf::read(&spec.data_dir) {
        Ok(text) => {
            let mut found: Vec<String> = conf::check(&text, &spec.data_dir)
                .err()
                .map(|e| refused(format!("{}: {e}", conf::CONFIG_FILE)))
                .into_iter()
                .collect();
            found.extend(warnings(spec, &text));
            found
        }
        // `validate` run as another user than the agent's.
        Err(e) if e.permission_denied() => vec![format!(
            "cannot check the Redis server's configuration as this user ({e}); the agent checks it again at its start"
        )],
        Err(e) => vec![refused(format!(
            "{e}. Fix: write the server's configuration there (see examples/cluster/redis-node1.toml)"
        ))],
    }
}

/// The warnings for the server of `spec`, whose file says `text`.
pub fn warnings(spec: &ClusterSpec, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    if !conf::starts_as_replica(text) {
        let (host, port) = super::info::NOWHERE;
        found.push(format!(
            "{} has no `replicaof` line: a start of the server by anyone before the agent writes one is a primary's, without the leader key; the agent writes `replicaof {host} {port}` at its start (write it yourself before the first start)",
            spec.data_dir.join(conf::CONFIG_FILE).display()
        ));
    }
    let port = conf::directive(text, "port")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(6379);
    found.extend(enabled_units(Path::new("/"), port, &spec.data_dir));
    found
}

/// The distribution's units enabled under `root` (`/`, or a test's
/// directory) that start a server on `port` or in `data_dir`, each as a
/// warning naming the fix.
pub fn enabled_units(root: &Path, port: u16, data_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (unit, files) in enabled(root) {
        let file = files.iter().map(|f| root.join(f)).find(|f| f.is_file());
        let text = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .unwrap_or_default();
        let its_port = conf::directive(&text, "port")
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(6379);
        let its_dir = conf::directive(&text, "dir").map(PathBuf::from);
        let same_dir = its_dir.is_some_and(|d| d == data_dir);
        if its_port != port && !same_dir {
            continue;
        }
        let from = file
            .map(|f| {
                format!(
                    " (from {})",
                    Path::new("/")
                        .join(f.strip_prefix(root).unwrap_or(f.as_path()))
                        .display()
                )
            })
            .unwrap_or_default();
        let name = unit.trim_end_matches(".service");
        found.push(format!(
            "the distribution's unit {unit} is enabled and starts a Redis server on port {its_port}{from}, this cluster member's {}: its file has no `replicaof` the agent keeps, so at boot or on `systemctl restart {name}` it starts a primary without the leader key. Fix: systemctl disable --now {name} (the agent starts the server)",
            if same_dir { "directory" } else { "port" }
        ));
    }
    found
}

/// The units of [`UNITS`] (and their `@instance` forms) enabled under
/// `root`: linked from a `*.wants` directory of `etc/systemd/system`.
fn enabled(root: &Path) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let Ok(dirs) = std::fs::read_dir(root.join("etc/systemd/system")) else {
        return found;
    };
    for dir in dirs.flatten() {
        if !dir.file_name().to_string_lossy().ends_with(".wants") {
            continue;
        }
        let Ok(links) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for link in links.flatten() {
            let name = link.file_name().to_string_lossy().into_owned();
            if let Some((_, files)) = UNITS.iter().find(|(unit, _)| *unit == name) {
                found.push((name, files.iter().map(|f| f.to_string()).collect()));
            } else if let Some((kind, instance)) = name
                .strip_suffix(".service")
                .and_then(|n| n.split_once('@'))
                .filter(|(kind, _)| matches!(*kind, "redis-server" | "valkey-server"))
            {
                let (dir, stem) = if kind == "redis-server" {
                    ("etc/redis", "redis")
                } else {
                    ("etc/valkey", "valkey")
                };
                found.push((name.clone(), vec![format!("{dir}/{stem}-{instance}.conf")]));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root with the Debian unit enabled (a `*.wants` link) and its file.
    fn debian(port_line: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let wants = root
            .path()
            .join("etc/systemd/system/multi-user.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        std::os::unix::fs::symlink(
            "/lib/systemd/system/redis-server.service",
            wants.join("redis-server.service"),
        )
        .unwrap();
        std::fs::create_dir_all(root.path().join("etc/redis")).unwrap();
        std::fs::write(
            root.path().join("etc/redis/redis.conf"),
            format!("bind 127.0.0.1\n{port_line}\ndir /var/lib/redis\n"),
        )
        .unwrap();
        root
    }

    /// A new user's finding: `validate` said nothing of a member whose
    /// `redis.conf` is missing, and the agent then refused to start.
    #[test]
    fn validate_warns_of_a_missing_or_unusable_configuration_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[targets.local]\nkind = \"redis\"\ndsn = \"redis://127.0.0.1:6379/0\"\ndata_dir = \"{}\"\n\n[cluster]\nscope = \"cache\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"127.0.0.1:6379\"\n",
            dir.path().display()
        );
        let config = crate::config::parse_str("w.toml", &text, Path::new("/")).unwrap();
        let missing = for_config(&config);
        assert!(
            missing.iter().any(|w| w.contains("will refuse to start")
                && w.contains("does not exist")
                && w.contains("Fix:")),
            "{missing:?}"
        );
        // A file that keeps the server elsewhere: the start's refusal,
        // named.
        std::fs::write(dir.path().join(conf::CONFIG_FILE), "port 6379\ndir /tmp\n").unwrap();
        let elsewhere = for_config(&config);
        assert!(
            elsewhere
                .iter()
                .any(|w| w.contains("will refuse to start") && w.contains(conf::CONFIG_FILE)),
            "{elsewhere:?}"
        );
    }

    #[test]
    fn an_enabled_distribution_unit_on_the_same_port_or_directory_is_named_with_the_fix() {
        let root = debian("port 6379");
        let found = enabled_units(root.path(), 6379, Path::new("/srv/redis"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("redis-server.service")
                && found[0].contains("systemctl disable --now redis-server")
                && found[0].contains("/etc/redis/redis.conf"),
            "{}",
            found[0]
        );
        // Another port and directory: no clash.
        assert!(enabled_units(root.path(), 6380, Path::new("/srv/redis")).is_empty());
        // The same directory on another port is the same server.
        let dir = enabled_units(root.path(), 6380, Path::new("/var/lib/redis"));
        assert!(dir[0].contains("directory"), "{dir:?}");
        // No `port` line: Redis's default, 6379.
        let default = debian("");
        assert_eq!(
            enabled_units(default.path(), 6379, Path::new("/srv/redis")).len(),
            1
        );
        // Not enabled (no link): nothing.
        let off = debian("port 6379");
        std::fs::remove_file(
            off.path()
                .join("etc/systemd/system/multi-user.target.wants/redis-server.service"),
        )
        .unwrap();
        assert!(enabled_units(off.path(), 6379, Path::new("/srv/redis")).is_empty());
    }

    #[test]
    fn an_instance_unit_is_read_from_its_own_file() {
        let root = tempfile::tempdir().unwrap();
        let wants = root
            .path()
            .join("etc/systemd/system/multi-user.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        std::os::unix::fs::symlink("/x", wants.join("redis-server@cache.service")).unwrap();
        std::fs::create_dir_all(root.path().join("etc/redis")).unwrap();
        std::fs::write(
            root.path().join("etc/redis/redis-cache.conf"),
            "port 6390\n",
        )
        .unwrap();
        assert_eq!(
            enabled_units(root.path(), 6390, Path::new("/srv/redis")).len(),
            1
        );
        assert!(enabled_units(root.path(), 6379, Path::new("/srv/redis")).is_empty());
    }
}
