//! Real MariaDB servers for the tests: `mariadbd` on a free loopback port
//! and a private unix socket, in a temporary directory of its own (removed
//! when the server is dropped, also when a test panics), its data
//! directory copied from a template made once per test run
//! ([`template`]), so that a server is ready in well under a second.
//!
//! ```no_run
//! let db = watchpost_e2e::mariadb::Mariadb::start();
//! db.execute("CREATE TABLE app.t (id int PRIMARY KEY)");
//! let dsn = db.dsn(); // the probes' account over TCP
//! ```
//!
//! Servers are small (16 MB buffer pool) and unsafe on power loss
//! (`innodb_flush_log_at_trx_commit = 0`); each has its own `server_id`
//! and a binary log, so that replication can be set up between them. The
//! tests' own SQL runs as `root` over the private socket with the
//! `mariadb` client.

pub mod cluster;
mod command;
pub mod pair;
pub mod partition;
pub mod template;

pub use command::{program, try_run};
pub use pair::{HeartbeatWriter, MariadbPair};
pub use template::{ADMIN_USER, MONITOR_USER, PASSWORD, PASSWORD_USER};

use crate::pg::wait_until;
use crate::port::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tempfile::TempDir;

/// How long a server may take to accept sessions.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Server ids handed out in this test process (each server its own).
static NEXT_SERVER_ID: AtomicU32 = AtomicU32::new(1);

/// One `mariadbd` of a test with its own data directory.
pub struct Mariadb {
    server: Server,
    /// Removed after the server stopped (fields drop in order).
    _dir: TempDir,
}

impl Mariadb {
    /// A new server with the default settings, started.
    pub fn start() -> Mariadb {
        Mariadb::with_settings(&[])
    }

    /// A new server started with `settings` added to its command line
    /// (`"max_connections=5"`: without the leading dashes).
    pub fn with_settings(settings: &[&str]) -> Mariadb {
        let dir = tempfile::Builder::new()
            .prefix("watchpost-mariadb-")
            .tempdir()
            .expect("create a temporary directory");
        let data = dir.path().join("data");
        let mut copy = Command::new("cp");
        copy.arg("-a").arg(template::path()).arg(&data);
        command::run(copy);
        let id = NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed);
        let mut server = Server::on(&data, dir.path(), Some(free_port()));
        server.settings = vec![
            format!("server-id={id}"),
            format!("log-bin={}", dir.path().join("binlog").display()),
            "log-slave-updates=1".into(),
            "gtid-strict-mode=1".into(),
        ];
        server
            .settings
            .extend(settings.iter().map(|s| s.to_string()));
        server.start();
        Mariadb { server, _dir: dir }
    }
}

impl std::ops::Deref for Mariadb {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl std::ops::DerefMut for Mariadb {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.server
    }
}

/// A `mariadbd` process on a data directory: start, stop, kill, pause, and
/// SQL as root over its socket. Dropping it kills the process.
pub struct Server {
    data: PathBuf,
    socket: PathBuf,
    /// The server's own `tmpdir`. Never the shared `/tmp`: every `mariadbd`
    /// deletes the `#sql*` files in its tmpdir when it starts (MariaDB's
    /// `mysql_rm_tmp_tables`), which are the temporary tables of any other
    /// server running on the same directory (the host's own service
    /// included).
    tmp: PathBuf,
    log: PathBuf,
    /// None: no TCP (the template's bootstrap).
    port: Option<u16>,
    /// Extra command-line settings, without the leading dashes.
    settings: Vec<String>,
    child: Option<Child>,
}

impl Server {
    /// A server on `data` with its socket, pid file and log in `dir`.
    fn on(data: &Path, dir: &Path, port: Option<u16>) -> Server {
        Server {
            data: data.to_path_buf(),
            socket: dir.join("mysqld.sock"),
            log: dir.join("mysqld.log"),
            tmp: dir.join("tmp"),
            port,
            settings: Vec::new(),
            child: None,
        }
    }

    /// Start the server and wait until it accepts sessions. A port taken
    /// meanwhile by someone else is replaced by a new one.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        std::fs::create_dir_all(&self.tmp).expect("create the server's tmpdir");
        for attempt in 1..=3 {
            let mut mariadbd = Command::new(program("mariadbd"));
            mariadbd
                .arg("--no-defaults")
                .arg(format!("--datadir={}", self.data.display()))
                .arg(format!("--tmpdir={}", self.tmp.display()))
                .arg(format!("--socket={}", self.socket.display()))
                .arg(format!("--log-error={}", self.log.display()))
                .arg(format!(
                    "--pid-file={}",
                    self.socket.with_extension("pid").display()
                ))
                .args([
                    "--skip-name-resolve",
                    "--innodb-buffer-pool-size=16M",
                    "--innodb-log-file-size=16M",
                    "--innodb-flush-log-at-trx-commit=0",
                    "--performance-schema=OFF",
                ]);
            match self.port {
                Some(port) => {
                    mariadbd.args(["--bind-address=127.0.0.1", &format!("--port={port}")]);
                }
                None => {
                    mariadbd.arg("--skip-networking");
                }
            }
            if command::is_root() {
                mariadbd.arg("--user=root");
            }
            mariadbd.args(self.settings.iter().map(|s| format!("--{s}")));
            mariadbd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = mariadbd.spawn().expect("spawn mariadbd");
            self.child = Some(child);
            match self.wait_ready() {
                Ok(()) => return,
                Err(why) => {
                    self.kill();
                    let log = self.log_tail();
                    if attempt < 3 && self.port.is_some() && log.contains("Address already in use")
                    {
                        self.port = Some(free_port());
                        continue;
                    }
                    panic!("starting mariadbd failed: {why}\n{log}");
                }
            }
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("mariadbd exited: {status}"));
            }
            if self.try_execute("SELECT 1").is_ok() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("not ready after {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the server cleanly (SIGTERM) and wait for it to exit.
    pub fn stop(&mut self) {
        self.signal_and_wait(libc::SIGTERM);
    }

    /// Kill the server (`kill -9`, like a crash) and wait for it to exit.
    pub fn kill(&mut self) {
        self.signal_and_wait(libc::SIGKILL);
    }

    fn signal_and_wait(&mut self, signal: libc::c_int) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child not yet reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
            let _ = child.wait();
        }
    }

    /// Freeze the server (SIGSTOP) or let it go on (SIGCONT).
    pub fn set_paused(&self, paused: bool) {
        if let Some(child) = &self.child {
            let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: kill(2) on the pid of a running child.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        }
    }

    /// The process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Run `sql` (one or more statements) as root; panic on failure.
    pub fn execute(&self, sql: &str) -> String {
        self.try_execute(sql)
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
    }

    /// Run `sql` as root: its output (tab-separated, no column names), or
    /// the client's error.
    pub fn try_execute(&self, sql: &str) -> Result<String, String> {
        let mut client = Command::new(program("mariadb"));
        client
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args([
                "-uroot",
                "--batch",
                "--skip-column-names",
                "--connect-timeout=5",
            ])
            .arg("-e")
            .arg(sql)
            .stdin(Stdio::null());
        try_run(client)
    }

    /// The single value `sql` returns, trimmed.
    pub fn value(&self, sql: &str) -> String {
        self.execute(sql).trim().to_string()
    }

    /// The TCP port (panics for the template's socket-only bootstrap).
    pub fn port(&self) -> u16 {
        self.port.expect("a test server listens on TCP")
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The probes' account over TCP, as a `mysql` target's DSN.
    pub fn dsn(&self) -> String {
        self.dsn_as(MONITOR_USER)
    }

    /// Account `user` (no password) over TCP, as a `mysql` target's DSN.
    pub fn dsn_as(&self, user: &str) -> String {
        format!("mysql://{user}@127.0.0.1:{}/app", self.port())
    }

    /// The server's error log (`--log-error`): a file of its own in the
    /// server's directory, beside its socket and binary logs.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last 4 KB of the server's error log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(4096);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        log[start..].to_string()
    }

    /// Wait until `sql` returns `expected` (polled every 50 ms).
    pub fn wait_for_value(&self, sql: &str, expected: &str, timeout: Duration) {
        wait_until(timeout, &format!("`{sql}` to return {expected}"), || {
            self.try_execute(sql).is_ok_and(|v| v.trim() == expected)
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.set_paused(false);
        self.kill();
    }
}
