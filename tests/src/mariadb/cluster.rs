//! Three MariaDB nodes in cluster mode: a 3-member etcd, one `mariadbd`
//! data directory per node (from the template) with the member's own
//! option file (`read_only = ON`, binary log, `log_slave_updates`,
//! `gtid_strict_mode`), and one Watchpost agent per node that starts,
//! promotes, fences and repoints its server. The harness of the MariaDB
//! cluster tests: the agents start the servers; a test kills them, starts
//! one by hand, and writes as an application would (`app`, no `SUPER`, so
//! `read_only` binds it).

use super::command::{program, try_run};
use crate::agent::{Agent, PATIENCE};
use crate::etcd::EtcdCluster;
use crate::port::free_port;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The replication account (created on every node, never logged).
pub const REPLICATION_USER: &str = "repl";
/// Its password, given to the agents in a private file.
pub(crate) const REPLICATION_PASSWORD: &str = "r3pl-s3cret";
/// The application's account: `SELECT, INSERT, CREATE` on `app`.
pub const APP_USER: &str = "app";

/// One node's server: its data directory, option file, socket and port.
/// Dropping it kills the server (by its pid file).
pub struct MariadbNode {
    dir: TempDir,
    pub port: u16,
    /// Where the test's TCP clients reach it.
    pub host: String,
    /// The network namespace it runs in (a partition test's node), if any.
    netns: Option<String>,
}

impl MariadbNode {
    /// A new data directory from the template and the option file of
    /// server `server_id`; not started.
    pub fn new(server_id: u32) -> MariadbNode {
        MariadbNode::new_in(server_id, None, "127.0.0.1")
    }

    /// [`MariadbNode::new`] for a server in network namespace `netns`
    /// (listening on all its addresses), which the test reaches at `host`.
    pub fn new_in(server_id: u32, netns: Option<&str>, host: &str) -> MariadbNode {
        let dir = tempfile::Builder::new()
            .prefix("watchpost-mariadb-cluster-")
            .tempdir()
            .expect("create a temporary directory");
        let mut copy = Command::new("cp");
        copy.arg("-a")
            .arg(super::template::path())
            .arg(dir.path().join("data"));
        super::command::run(copy);
        let node = MariadbNode {
            dir,
            port: free_port(),
            host: host.to_string(),
            netns: netns.map(str::to_string),
        };
        let bind = if netns.is_some() {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        let d = node.dir.path().display().to_string();
        let cnf = format!(
            "[mysqld]\nport = {port}\nbind-address = {bind}\nsocket = {d}/mysqld.sock\n\
             log-error = {d}/mysqld.log\ntmpdir = {d}/tmp\npid-file = {d}/data/mariadbd.pid\nserver-id = {server_id}\n\
             log-bin = {d}/binlog\nlog-slave-updates = 1\ngtid-strict-mode = 1\nread_only = ON\n\
             skip-name-resolve\ninnodb-buffer-pool-size = 16M\ninnodb-log-file-size = 16M\n\
             innodb-flush-log-at-trx-commit = 0\nperformance-schema = OFF\n\
             slave-net-timeout = 2\n",
            port = node.port
        );
        // Its own tmpdir: a starting mariadbd deletes every `#sql*` file in
        // its tmpdir, other servers' temporary tables included.
        std::fs::create_dir_all(node.dir.path().join("tmp")).expect("create the node's tmpdir");
        std::fs::write(node.cnf(), cnf).expect("write the option file");
        node
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn cnf(&self) -> PathBuf {
        self.dir.path().join("node.cnf")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// Start `mariadbd` by hand with the node's own option file (as an
    /// operator or a service manager would) and wait until it answers.
    pub fn start_by_hand(&self) {
        let mut mariadbd = match &self.netns {
            Some(ns) => {
                let mut ip = Command::new("ip");
                ip.args(["netns", "exec", ns]).arg(program("mariadbd"));
                ip
            }
            None => Command::new(program("mariadbd")),
        };
        mariadbd
            .arg(format!("--defaults-file={}", self.cnf().display()))
            .arg(format!("--datadir={}", self.data_dir().display()));
        if super::command::is_root() {
            mariadbd.arg("--user=root");
        }
        let mut child = mariadbd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mariadbd");
        let started = Instant::now();
        while self.try_execute("SELECT 1").is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("mariadbd exited ({status}):\n{}", self.log_tail());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "mariadbd not ready:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Reaped when it exits (killed by the agent or the test).
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }

    /// The pid of the running server (its pid file), if any.
    pub fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir().join("mariadbd.pid")).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        // SAFETY: kill(2) with signal 0 only checks that the process exists.
        (unsafe { libc::kill(pid, 0) } == 0 && !zombie(pid)).then_some(pid)
    }

    /// `kill -9` the server and wait until it is gone.
    pub fn kill(&self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the pid the server's pid file names.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let started = Instant::now();
            while self.pid() == Some(pid) && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Run `sql` as root over the private socket: its output
    /// (tab-separated), or the client's error.
    pub fn try_execute(&self, sql: &str) -> Result<String, String> {
        self.client("root", sql, true)
    }

    /// Run `sql` as the application (over TCP, no `SUPER`).
    pub fn try_execute_as_app(&self, sql: &str) -> Result<String, String> {
        self.client(APP_USER, sql, false)
    }

    fn client(&self, user: &str, sql: &str, socket: bool) -> Result<String, String> {
        let mut client = Command::new(program("mariadb"));
        client.arg("--no-defaults");
        if socket {
            client.arg(format!("--socket={}", self.socket().display()));
        } else {
            client.args([format!("-h{}", self.host), format!("-P{}", self.port)]);
        }
        client
            .arg(format!("-u{user}"))
            .args(["--batch", "--skip-column-names", "--connect-timeout=2"])
            .arg("-e")
            .arg(sql)
            .stdin(Stdio::null());
        try_run(client)
    }

    /// The single value `sql` returns (as root), trimmed; panics on error.
    pub fn value(&self, sql: &str) -> String {
        self.try_execute(sql)
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
            .trim()
            .to_string()
    }

    /// The last 4 KB of the server's error log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("mysqld.log")).unwrap_or_default();
        let start = log.len().saturating_sub(4096);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        log[start..].to_string()
    }
}

fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('Z')))
        .unwrap_or(false)
}

impl Drop for MariadbNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The accounts every node needs, made without binary logging (so that no
/// node starts with GTIDs of its own).
pub(crate) fn accounts() -> String {
    format!(
        "SET sql_log_bin = 0;
         CREATE USER '{REPLICATION_USER}'@'%' IDENTIFIED BY '{REPLICATION_PASSWORD}';
         GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'%';
         CREATE USER '{APP_USER}'@'%';
         GRANT SELECT, INSERT, CREATE ON app.* TO '{APP_USER}'@'%';"
    )
}

/// Three nodes, etcd and an agent per node.
pub struct MariadbCluster {
    /// Agents first: they stop before the servers and etcd go.
    pub agents: Vec<Agent>,
    pub nodes: Vec<MariadbNode>,
    pub etcd: EtcdCluster,
    /// The replication password's file.
    secrets: TempDir,
}

impl MariadbCluster {
    /// Everything started: the servers by hand (read-only, as after a
    /// reboot), node1's agent first and leading, the others following it.
    pub fn start() -> MariadbCluster {
        let etcd = EtcdCluster::start(3);
        let nodes: Vec<MariadbNode> = (0..3).map(|i| MariadbNode::new(101 + i)).collect();
        for node in &nodes {
            node.start_by_hand();
            node.try_execute(&accounts())
                .unwrap_or_else(|e| panic!("create the accounts: {e}"));
        }
        let secrets = tempfile::tempdir().expect("a directory for the password file");
        let password = secrets.path().join("replication.password");
        std::fs::write(&password, format!("{REPLICATION_PASSWORD}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut ha = MariadbCluster {
            agents: Vec::new(),
            nodes,
            etcd,
            secrets,
        };
        ha.agents.push(Agent::start(&ha.node_config(0)));
        ha.wait_leader(0);
        for i in 1..3 {
            let config = ha.node_config(i);
            ha.agents.push(Agent::start(&config));
        }
        for i in 1..3 {
            ha.wait_replica(i);
        }
        ha
    }

    /// The agent config of node `i` (0-based).
    pub fn node_config(&self, i: usize) -> String {
        let node = &self.nodes[i];
        format!(
            "[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\nnode = \"node{n}\"\n\n\
             [targets.local]\nkind = \"mysql\"\ndsn = \"mysql://watchpost@127.0.0.1:{port}/\"\n\
             admin_dsn = \"mysql://root@127.0.0.1:{port}/\"\n\
             replication_dsn = \"mysql://{REPLICATION_USER}@127.0.0.1:{port}/\"\n\
             replication_password_file = \"{password}\"\ndata_dir = \"{data}\"\n\n\
             [cluster]\nscope = \"mariadb\"\netcd = [{endpoints}]\ntarget = \"local\"\n\
             connect = \"127.0.0.1:{port}\"\ndefaults_file = \"{cnf}\"\nbin_dir = \"{bin}\"\n",
            n = i + 1,
            port = node.port,
            password = self.secrets.path().join("replication.password").display(),
            data = node.data_dir().display(),
            cnf = node.cnf().display(),
            bin = program("mariadbd").parent().unwrap().display(),
            endpoints = self.etcd.endpoints_toml(),
        )
    }

    fn code(&self, i: usize, path: &str) -> u16 {
        self.agents[i].get(path).map(|(c, _)| c).unwrap_or(0)
    }

    /// Wait until node `i` holds the key and serves as the primary.
    pub fn wait_leader(&self, i: usize) {
        let deadline = Instant::now() + PATIENCE * 2;
        while self.code(i, "/v1/role/primary") != 200 {
            assert!(
                Instant::now() < deadline,
                "node{} does not lead: {:?}\n{}\n{}",
                i + 1,
                self.agents[i].get("/v1/role/primary"),
                self.agents[i].log(),
                self.nodes[i].log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until node `i` is a replica of the leader.
    pub fn wait_replica(&self, i: usize) {
        let deadline = Instant::now() + PATIENCE * 2;
        while self.code(i, "/v1/role/replica") != 200 {
            assert!(
                Instant::now() < deadline,
                "node{} is not a replica: {:?}\n{}\n{:#}",
                i + 1,
                self.agents[i].get("/v1/role/replica"),
                self.agents[i].log(),
                self.view(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether node `i` answers as a replica (200 on `/v1/role/replica`).
    pub fn is_replica(&self, i: usize) -> bool {
        self.code(i, "/v1/role/replica") == 200
    }

    /// Whether node `i` answers as the primary.
    pub fn is_primary(&self, i: usize) -> bool {
        self.code(i, "/v1/role/primary") == 200
    }

    /// The cluster as agent `i` sees it (`/v1/cluster`).
    pub fn view(&self, i: usize) -> serde_json::Value {
        self.agents[i].json("/v1/cluster")
    }

    /// Audit records of the cluster mode with `decision`, across agents.
    pub fn records(&self, decision: &str) -> Vec<(usize, serde_json::Value)> {
        crate::agent::cluster_records(&self.agents, decision)
    }

    /// Poll node `i` every 100 ms with an application's write until one
    /// succeeds: the time from `since`.
    pub fn first_write(&self, i: usize, since: Instant, within: Duration) -> Option<Duration> {
        while since.elapsed() < within {
            let ok = self.nodes[i]
                .try_execute_as_app(
                    "CREATE TABLE IF NOT EXISTS app.failover_clock (x int); INSERT INTO app.failover_clock VALUES (1)",
                )
                .is_ok();
            if ok {
                return Some(since.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// The split-brain detector writing every 50 ms to every node as the
    /// application, over kept sessions.
    pub fn writers(&self) -> crate::splitbrain::Writer {
        let targets: Vec<(String, u16)> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("node{}", i + 1), n.port))
            .collect();
        crate::splitbrain::Writer::start_mysql(&targets, APP_USER, Duration::from_millis(50))
    }
}
