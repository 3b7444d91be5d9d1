//! One PostgreSQL cluster of a test: its data directory, its server
//! process, and the ways a test drives it (SQL as superuser, stop, start,
//! promote, pause replay, corrupt a page). Dropping it stops the server
//! (`pg_ctl stop -m immediate`), also when a test panics.

use super::command::{run, server_command, server_command_in};
use crate::port::free_port;
use postgres::{Client, NoTls, SimpleQueryMessage};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cluster superuser's name (`initdb -U`).
pub const SUPERUSER: &str = "postgres";
/// The role probes connect as: it may log in and holds `pg_monitor`.
pub const MONITOR_USER: &str = "watchpost";
/// Members of this group role must log in over TCP with a password.
pub const PASSWORD_GROUP: &str = "password_users";

/// Size of a PostgreSQL data page.
const PAGE_SIZE: usize = 8192;

pub struct Cluster {
    name: String,
    data: PathBuf,
    /// Directory of the server's unix socket (shared by a pair).
    socket_dir: PathBuf,
    log: PathBuf,
    port: u16,
    running: bool,
    /// The network namespace it is started in, if any.
    netns: Option<String>,
}

impl Cluster {
    /// A new cluster in `root/name`, made by `initdb --data-checksums`,
    /// with `settings` added to its config; not started.
    pub(super) fn init(root: &Path, name: &str, settings: &[(String, String)]) -> Cluster {
        let cluster = Cluster::at(root, name);
        let mut initdb = server_command("initdb", root);
        initdb
            .arg("-D")
            .arg(&cluster.data)
            .args(["--data-checksums", "--no-sync", "--no-instructions"])
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"]);
        run(initdb);
        let mut conf = vec![
            format!("listen_addresses = '127.0.0.1'"),
            format!(
                "unix_socket_directories = '{}'",
                cluster.socket_dir.display()
            ),
            "max_connections = 20".into(),
            "shared_buffers = 16MB".into(),
            "fsync = off".into(),
            "synchronous_commit = off".into(),
            "wal_level = replica".into(),
            "max_wal_senders = 4".into(),
            "hot_standby = on".into(),
            // Standbys report replay progress often, so lag shows quickly.
            "wal_receiver_status_interval = 1s".into(),
            "shared_preload_libraries = 'pg_stat_statements'".into(),
            "log_min_messages = warning".into(),
        ];
        conf.extend(settings.iter().map(|(k, v)| format!("{k} = '{v}'")));
        cluster.append_config(&conf);
        let hba = format!(
            "local all all trust\n\
             local replication all trust\n\
             host all +{PASSWORD_GROUP} 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n\
             host replication all 127.0.0.1/32 trust\n"
        );
        std::fs::write(cluster.data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        cluster
    }

    /// A standby of `primary` in `root/name`, made by `pg_basebackup -R`;
    /// not started.
    pub(super) fn base_backup(primary: &Cluster, root: &Path, name: &str) -> Cluster {
        let standby = Cluster::at(root, name);
        let mut backup = server_command("pg_basebackup", root);
        backup
            .arg("-D")
            .arg(&standby.data)
            .args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync"])
            .arg("-h")
            .arg(&primary.socket_dir)
            .args(["-p", &primary.port.to_string(), "-U", SUPERUSER]);
        run(backup);
        standby
    }

    fn at(root: &Path, name: &str) -> Cluster {
        Cluster {
            name: name.to_string(),
            data: root.join(name),
            socket_dir: root.to_path_buf(),
            log: root.join(format!("{name}.log")),
            port: free_port(),
            running: false,
            netns: None,
        }
    }

    /// Append lines to `postgresql.conf` (later lines win).
    pub fn append_config(&self, lines: &[String]) {
        let path = self.data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        for line in lines {
            writeln!(file, "{line}").expect("append to postgresql.conf");
        }
    }

    /// Start the server and wait until it accepts sessions. A port taken
    /// meanwhile by someone else is replaced by a new one.
    pub fn start(&mut self) {
        for attempt in 1..=3 {
            self.append_config(&[format!("port = {}", self.port)]);
            let mut pg_ctl = server_command_in("pg_ctl", &self.socket_dir, self.netns.as_deref());
            pg_ctl
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&self.log)
                .args(["-w", "-t", "60", "start"]);
            let output = pg_ctl.output().expect("run pg_ctl start");
            if output.status.success() {
                self.running = true;
                return;
            }
            let log = self.log_tail();
            if attempt < 3 && log.contains("could not bind") {
                self.port = free_port();
                continue;
            }
            panic!(
                "starting {} failed: {}\n{}",
                self.name,
                String::from_utf8_lossy(&output.stderr),
                log
            );
        }
    }

    /// Stop the server cleanly (`-m fast`: a shutdown checkpoint writes every
    /// page, so the data files are complete on disk).
    pub fn stop(&mut self) {
        self.pg_ctl_stop("fast");
    }

    /// Stop the server the hard way (`-m immediate`, like a crash).
    pub fn kill(&mut self) {
        self.pg_ctl_stop("immediate");
    }

    fn pg_ctl_stop(&mut self, mode: &str) {
        if !self.running {
            return;
        }
        let mut pg_ctl = server_command("pg_ctl", &self.socket_dir);
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "-t", "60", "stop"]);
        run(pg_ctl);
        self.running = false;
    }

    /// Promote a standby to a primary and wait until it accepts writes.
    pub fn promote(&mut self) {
        let mut pg_ctl = server_command("pg_ctl", &self.socket_dir);
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "promote"]);
        run(pg_ctl);
        wait_until(
            Duration::from_secs(30),
            "the promoted server to leave recovery",
            || self.value("SELECT pg_is_in_recovery()") == "f",
        );
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The DSN a probe uses: the monitoring role over TCP.
    pub fn dsn(&self) -> String {
        self.dsn_as(MONITOR_USER, None)
    }

    /// A DSN over TCP for `user`, with a password if given.
    pub fn dsn_as(&self, user: &str, password: Option<&str>) -> String {
        let mut dsn = format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres",
            self.port
        );
        if let Some(password) = password {
            dsn.push_str(&format!(" password={password}"));
        }
        dsn
    }

    /// Start `pg_receivewal` (a WAL archiver, not a standby) streaming
    /// this server's WAL into `dir` (owned by the server's OS user).
    pub fn receivewal(&self, dir: &Path) -> std::process::Child {
        super::command::hand_over(dir);
        let mut command = server_command("pg_receivewal", dir);
        command
            .arg("-D")
            .arg(dir)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
            ])
            .args(["--no-loop", "--no-password"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command.spawn().expect("start pg_receivewal")
    }

    /// A new superuser session over the unix socket.
    pub fn connect(&self) -> Client {
        let dsn = format!(
            "host={} port={} user={SUPERUSER} dbname=postgres",
            self.socket_dir.display(),
            self.port
        );
        Client::connect(&dsn, NoTls)
            .unwrap_or_else(|e| panic!("connect to {} as superuser: {e}", self.name))
    }

    /// A new session over TCP for `user` (e.g. to hold a connection slot).
    pub fn connect_as(&self, user: &str) -> Result<Client, postgres::Error> {
        Client::connect(&self.dsn_as(user, None), NoTls)
    }

    /// Run statements (separated by `;`) as superuser; panic on an error.
    pub fn execute(&self, statements: &str) {
        self.connect()
            .batch_execute(statements)
            .unwrap_or_else(|e| panic!("on {}: {statements}: {}", self.name, describe(&e)));
    }

    /// Rows of one statement as superuser, every value as text (NULL: None).
    pub fn sql(&self, statement: &str) -> Vec<Vec<Option<String>>> {
        let messages = self
            .connect()
            .simple_query(statement)
            .unwrap_or_else(|e| panic!("on {}: {statement}: {}", self.name, describe(&e)));
        messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(String::from))
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    /// The first value of the first row of `statement` (empty for NULL).
    pub fn value(&self, statement: &str) -> String {
        self.sql(statement)
            .first()
            .and_then(|row| row.first().cloned())
            .unwrap_or_else(|| panic!("on {}: {statement} returned no rows", self.name))
            .unwrap_or_default()
    }

    /// Pause WAL replay (on a standby) and wait until it is paused.
    pub fn pause_replay(&self) {
        self.execute("SELECT pg_wal_replay_pause()");
        wait_until(Duration::from_secs(30), "replay to pause", || {
            self.value("SELECT pg_get_wal_replay_pause_state()") == "paused"
        });
    }

    /// Resume WAL replay (on a standby).
    pub fn resume_replay(&self) {
        self.execute("SELECT pg_wal_replay_resume()");
    }

    /// Corrupt the first data page of `table` on disk: stop the server,
    /// overwrite bytes in the middle of the page's tuple area (its header
    /// and line pointers stay intact, so only the checksum can tell), and
    /// start it again. The table must hold at least one row.
    pub fn corrupt_first_page(&mut self, table: &str) {
        let relative = self.value(&format!("SELECT pg_relation_filepath('{table}')"));
        let path = self.data.join(relative);
        self.stop();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let mut page = vec![0u8; PAGE_SIZE];
        file.read_exact(&mut page).expect("read the first page");
        // PageHeaderData: pd_upper (start of tuple data) at byte 14,
        // pd_special (end of it) at byte 16, both little-endian u16.
        let upper = usize::from(u16::from_le_bytes([page[14], page[15]]));
        let special = usize::from(u16::from_le_bytes([page[16], page[17]]));
        assert!(
            upper >= 24 && upper + 32 <= special && special <= PAGE_SIZE,
            "{table}: page 0 has no tuple data to corrupt (pd_upper {upper}, pd_special {special})"
        );
        let offset = upper + (special - upper) / 2;
        file.seek(SeekFrom::Start(offset as u64)).expect("seek");
        file.write_all(&[0xA5; 16]).expect("scribble on the page");
        file.sync_all().expect("sync");
        self.start();
    }

    /// The postmaster's pid, from `postmaster.pid` (None when not running).
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The pid of the postmaster's child process whose title names
    /// `role` (`startup`, `checkpointer`: `postgres: … startup …`), if
    /// one runs.
    pub fn child_process(&self, role: &str) -> Option<i32> {
        let postmaster = self.postmaster_pid()?;
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                // After the command in parentheses: state, then the parent.
                let ppid: i32 = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
                let title = std::fs::read(entry.path().join("cmdline")).ok()?;
                let title = String::from_utf8_lossy(&title);
                (ppid == postmaster && title.contains(role)).then_some(pid)
            })
    }

    /// Start the server (from now on) in network namespace `netns`,
    /// listening on every address there (`listen_addresses = '*'`) and
    /// trusting `net` (a CIDR) for sessions and replication.
    pub fn move_to_netns(&mut self, netns: &str, net: &str) {
        self.append_config(&["listen_addresses = '*'".to_string()]);
        let mut hba = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("pg_hba.conf"))
            .expect("open pg_hba.conf");
        writeln!(
            hba,
            "host all all {net} trust\nhost replication all {net} trust"
        )
        .expect("append to pg_hba.conf");
        self.netns = Some(netns.to_string());
    }

    /// Tell the harness whether the server runs, after something else (the
    /// agent's remediation, a signal) started or stopped it, so that Drop
    /// stops what runs.
    pub fn set_running(&mut self, running: bool) {
        self.running = running;
    }

    /// Start the server by hand with `pg_ctl start`, as an operator would,
    /// and say whether it started (it may refuse).
    pub fn try_start(&mut self) -> bool {
        let mut pg_ctl = server_command_in("pg_ctl", &self.socket_dir, self.netns.as_deref());
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "30", "start"]);
        let ok = pg_ctl.output().map(|o| o.status.success()).unwrap_or(false);
        self.running |= ok;
        ok
    }

    /// The first value of `statement` as superuser, or the error.
    pub fn try_value(&self, statement: &str) -> Result<String, String> {
        let dsn = format!(
            "host={} port={} user={SUPERUSER} dbname=postgres connect_timeout=2",
            self.socket_dir.display(),
            self.port
        );
        let mut client = Client::connect(&dsn, NoTls).map_err(|e| describe(&e))?;
        let messages = client.simple_query(statement).map_err(|e| describe(&e))?;
        messages
            .into_iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or_default().to_string()),
                _ => None,
            })
            .ok_or_else(|| "no rows".to_string())
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(log.len());
        format!("--- {} log ---\n{}", self.name, &log[start..])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let mut pg_ctl = server_command("pg_ctl", &self.socket_dir);
            pg_ctl
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"]);
            let _ = pg_ctl.output();
        }
    }
}

/// An error with the server's own message, when it sent one.
fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// Poll `done` every 50 ms until it holds; panic after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "gave up waiting {limit:?} for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
