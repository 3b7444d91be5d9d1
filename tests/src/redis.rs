//! Real Redis servers for the tests: `redis-server` on a free loopback
//! port, in a temporary directory of its own (removed when the server is
//! dropped, also when a test panics), with no persistence (`--save ''`)
//! and no wait before a diskless full sync (`--repl-diskless-sync-delay
//! 0`), so that a replica links in well under a second.
//!
//! ```no_run
//! let primary = watchpost_e2e::redis::Redis::start();
//! let replica = watchpost_e2e::redis::Redis::replica_of(&primary);
//! primary.cli(&["SET", "k", "v"]);
//! let url = primary.url();
//! ```
//!
//! The tests' own commands go through `redis-cli` (never through the
//! agent, whose allowlist refuses writes).

use crate::pg::wait_until;
use crate::port::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

/// How long a server may take to answer PING, a replica to link.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The uid and gid of `nobody`, which [`Redis::unprivileged`] runs as.
const NOBODY: u32 = 65534;

/// One `redis-server` of a test. Dropping it kills the process.
pub struct Redis {
    port: u16,
    /// The server program: [`program`], or [`valkey_program`].
    program: String,
    /// Extra arguments it was started with (kept for restarts).
    args: Vec<String>,
    /// Run as an unprivileged user when the tests run as root.
    unprivileged: bool,
    child: Option<Child>,
    dir: TempDir,
}

impl Redis {
    /// A new server with the defaults.
    pub fn start() -> Redis {
        Redis::with_args(&[])
    }

    /// A new server with debug commands allowed from loopback
    /// (`DEBUG DIGEST-VALUE`, `DEBUG SLEEP`, `DEBUG POPULATE`).
    pub fn with_debug() -> Redis {
        Redis::with_args(&["--enable-debug-command", "local"])
    }

    /// A new server with `args` added to its command line
    /// (`["--maxclients", "5"]`).
    pub fn with_args(args: &[&str]) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("watchpost-redis-")
            .tempdir()
            .expect("create a temporary directory");
        let mut redis = Redis {
            port: free_port(),
            program: program(),
            args: args.iter().map(|s| s.to_string()).collect(),
            unprivileged: false,
            child: None,
            dir,
        };
        redis.launch();
        redis
    }

    /// A new Valkey server ([`valkey_program`]) with `args`, started.
    pub fn valkey(args: &[&str]) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("watchpost-valkey-")
            .tempdir()
            .expect("create a temporary directory");
        let mut redis = Redis {
            port: free_port(),
            program: valkey_program(),
            args: args.iter().map(|s| s.to_string()).collect(),
            unprivileged: false,
            child: None,
            dir,
        };
        redis.launch();
        redis
    }

    /// A new Valkey server replicating `primary`, started and linked.
    pub fn valkey_replica_of(primary: &Redis) -> Redis {
        let port = primary.port.to_string();
        let replica = Redis::valkey(&["--replicaof", "127.0.0.1", &port]);
        replica.wait_linked();
        replica
    }

    /// A new server with `args` that runs as an unprivileged user (uid and
    /// gid 65534, `nobody`) when the tests run as root, so that a
    /// directory made read-only is read-only for it too (root writes
    /// anywhere). Its directory is handed to that user.
    pub fn unprivileged(args: &[&str]) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("watchpost-redis-")
            .tempdir()
            .expect("create a temporary directory");
        let as_root = unsafe { libc::geteuid() } == 0;
        if as_root {
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY))
                .expect("hand the server's directory to nobody");
        }
        let mut redis = Redis {
            port: free_port(),
            program: program(),
            args: args.iter().map(|s| s.to_string()).collect(),
            unprivileged: as_root,
            child: None,
            dir,
        };
        redis.launch();
        redis
    }

    /// A new server with `args` replicating `primary`, started and linked
    /// (`["--replica-read-only", "no"]`).
    pub fn replica_with(primary: &Redis, args: &[&str]) -> Redis {
        let port = primary.port.to_string();
        let mut all = vec!["--replicaof", "127.0.0.1", &port];
        all.extend_from_slice(args);
        let replica = Redis::with_args(&all);
        replica.wait_linked();
        replica.wait_online_at(primary);
        replica
    }

    /// The server's working directory (`--dir`): RDB and AOF files.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A new server replicating `primary`, started and linked.
    pub fn replica_of(primary: &Redis) -> Redis {
        Redis::replica_with(primary, &[])
    }

    /// (Re)start the process with its arguments and wait for PING.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::File::create(self.log()).expect("create the server log");
        let mut command = if self.unprivileged {
            let mut setpriv = Command::new("setpriv");
            setpriv
                .arg(format!("--reuid={NOBODY}"))
                .arg(format!("--regid={NOBODY}"))
                .arg("--clear-groups")
                .arg(&self.program);
            setpriv
        } else {
            Command::new(&self.program)
        };
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--repl-diskless-sync", "yes"])
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--logfile", ""])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log);
        self.child = Some(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", self.program)),
        );
        let what = format!("{} on port {} to answer PING", self.program, self.port);
        wait_until(START_TIMEOUT, &what, || {
            self.try_cli(&["PING"]).is_some_and(|r| r == "PONG")
        });
    }

    /// The agent's URL of this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("the server runs").id() as i32
    }

    /// The server's log so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// `redis-cli` with `args`: its output (raw, trimmed). Panics when it
    /// fails or prints an error.
    pub fn cli(&self, args: &[&str]) -> String {
        match self.try_cli(args) {
            Some(out) if !out.starts_with("ERR") && !out.starts_with("NOPERM") => out,
            other => panic!(
                "redis-cli -p {} {args:?} failed: {other:?}\n{}",
                self.port,
                self.log_text()
            ),
        }
    }

    /// `redis-cli` with `args`; None when it could not run or connect.
    pub fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--raw"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || text.starts_with("Could not connect") {
            return None;
        }
        Some(text)
    }

    /// One field of `INFO section`.
    pub fn info(&self, section: &str, key: &str) -> Option<String> {
        let text = self.try_cli(&["INFO", section])?;
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.trim().to_string())
    }

    /// How many times `command` ran (`INFO commandstats`), 0 if never.
    pub fn calls(&self, command: &str) -> u64 {
        self.info(
            "commandstats",
            &format!("cmdstat_{}", command.to_lowercase()),
        )
        .and_then(|v| {
            v.split(',')
                .find_map(|kv| kv.strip_prefix("calls=").map(str::to_string))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
    }

    /// Wait until this replica's link to its primary is up.
    pub fn wait_linked(&self) {
        wait_until(START_TIMEOUT, "the replica to link", || {
            self.info("replication", "master_link_status").as_deref() == Some("up")
        });
    }

    /// Wait until `primary` lists this replica as `state=online`. The
    /// replica's own `master_link_status:up` comes first: after a diskless
    /// sync the primary shows `wait_bgsave` until the replica's first
    /// `REPLCONF ACK`, up to a second later (`replicationCron`).
    pub fn wait_online_at(&self, primary: &Redis) {
        let entry = format!("port={},state=online", self.port);
        wait_until(
            START_TIMEOUT,
            "the primary to list the replica online",
            || {
                primary
                    .try_cli(&["INFO", "replication"])
                    .is_some_and(|text| text.contains(&entry))
            },
        );
    }

    /// Wait until this replica has applied everything `primary` had
    /// written when called (its offset past the primary's).
    pub fn wait_caught_up(&self, primary: &Redis) {
        let offset = |r: &Redis, key: &str| -> u64 {
            r.info("replication", key)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let wanted = offset(primary, "master_repl_offset");
        wait_until(START_TIMEOUT, "the replica to catch up", || {
            offset(self, "slave_repl_offset") >= wanted
        });
    }

    /// Kill the server with SIGKILL and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freeze the server (SIGSTOP) or let it go on (SIGCONT).
    pub fn pause(&self, paused: bool) {
        let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: a signal to our own child process.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "signal the server");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `redis-server` (Debian's), or `WATCHPOST_REDIS_SERVER` (a Valkey
/// build, say).
pub fn program() -> String {
    std::env::var("WATCHPOST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// Valkey's server: `WATCHPOST_VALKEY_SERVER`, else the one `cargo xtask
/// setup` unpacks from Debian's bookworm-backports into
/// `target/tools/valkey`, else `valkey-server` on the PATH; a panic
/// naming the setup step when there is none.
pub fn valkey_program() -> String {
    if let Ok(program) = std::env::var("WATCHPOST_VALKEY_SERVER") {
        return program;
    }
    let unpacked = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tools/valkey/usr/bin/valkey-server");
    if unpacked.exists() {
        return unpacked.display().to_string();
    }
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("valkey-server").is_file())
    });
    assert!(
        on_path,
        "no Valkey server: run `cargo xtask setup` (it unpacks valkey-server from Debian's \
         bookworm-backports into target/tools/valkey), or set WATCHPOST_VALKEY_SERVER"
    );
    "valkey-server".to_string()
}
