//! Three Redis servers driven by cluster mode, a 3-member etcd and one
//! Watchpost agent per server: the harness of the Redis cluster tests.
//!
//! Each server has its own directory (owned by `nobody`, which the agent,
//! running as root, starts `redis-server` as), with the `redis.conf` cluster
//! mode wants: `dir`, `pidfile`, `daemonize yes`, and `replicaof` nowhere
//! (every server starts as a replica; the agents elect the primary). No
//! persistence (`save ""`) and no wait before a diskless full sync.
//!
//! [`Writer`] is the split-brain detector: one thread per server sends
//! `SET` over a kept connection every few ms and records each write a
//! server acknowledged (`+OK`).

use crate::agent::{Agent, PATIENCE, wait_for};
use crate::etcd::EtcdCluster;
use crate::port::free_port;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The uid and gid the servers run as (`nobody`).
const NOBODY: u32 = 65534;

/// One server's directory and port; dropping it kills the server.
pub struct RedisNode {
    pub port: u16,
    /// Where the test reaches the server: 127.0.0.1, or the node's own
    /// link when the server runs in a network namespace.
    pub host: String,
    dir: TempDir,
}

impl RedisNode {
    /// A directory with its `redis.conf`; not started (its agent starts it).
    pub fn new() -> RedisNode {
        RedisNode::with_conf("")
    }

    /// [`RedisNode::new`] with `extra` lines (each ending in a newline) at
    /// the end of its `redis.conf`.
    pub fn with_conf(extra: &str) -> RedisNode {
        RedisNode::at("127.0.0.1", "127.0.0.1", extra)
    }

    /// [`RedisNode::with_conf`] for a server listening on `bind` (addresses
    /// separated by spaces) that the test reaches at `host`.
    pub fn at(host: &str, bind: &str, extra: &str) -> RedisNode {
        let dir = tempfile::Builder::new()
            .prefix("watchpost-redis-ha-")
            .tempdir()
            .expect("a temporary directory");
        let port = free_port();
        let path = dir.path().display().to_string();
        let conf = format!(
            "port {port}\nbind {bind}\ndir {path}\npidfile {path}/redis.pid\ndaemonize yes\n\
             logfile {path}/redis.log\nsave \"\"\nappendonly no\nrepl-diskless-sync yes\n\
             repl-diskless-sync-delay 0\nreplicaof 127.0.0.1 1\n{extra}"
        );
        let file = dir.path().join("redis.conf");
        std::fs::write(&file, conf).expect("write redis.conf");
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
            std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        RedisNode {
            port,
            host: host.to_string(),
            dir,
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's pid from its pid file, while it runs.
    pub fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.path().join("redis.pid")).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
    }

    /// `redis-cli` with `args`: its output (raw, trimmed), None when it
    /// could not connect.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", &self.host, "-p", &self.port.to_string(), "--raw"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }

    /// One field of `INFO replication`.
    pub fn replication(&self, key: &str) -> Option<String> {
        let text = self.cli(&["INFO", "replication"])?;
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.trim().to_string())
    }

    /// `master` or `slave`, while it answers.
    pub fn role(&self) -> Option<String> {
        self.replication("role")
    }

    /// Whether it takes a write now (`SET`).
    pub fn writable(&self) -> bool {
        self.cli(&["SET", "watchpost:test:probe", "1"]).as_deref() == Some("OK")
    }

    /// A replica of `port` whose link is up.
    pub fn replicates_from(&self, port: u16) -> bool {
        self.role().as_deref() == Some("slave")
            && self.replication("master_port") == Some(port.to_string())
            && self.replication("master_link_status").as_deref() == Some("up")
    }

    /// SIGKILL the server and wait until it is gone.
    pub fn kill9(&self) {
        if let Some(pid) = self.pid() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait_for("redis-server to die", PATIENCE, || {
                (unsafe { libc::kill(pid, 0) } != 0).then_some(())
            });
        }
    }

    /// Start the server by hand, as an operator or a service manager would
    /// (its own config file, as `nobody`), and wait until it answers.
    pub fn start_by_hand(&self) {
        self.start_by_hand_in(None);
    }

    /// [`RedisNode::start_by_hand`] in network namespace `netns` (`None`:
    /// the test's own).
    pub fn start_by_hand_in(&self, netns: Option<&str>) {
        let mut command = match netns {
            Some(ns) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", ns, "setpriv"]);
                c
            }
            None => std::process::Command::new("setpriv"),
        };
        command
            .arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg("redis-server")
            .arg(self.dir.path().join("redis.conf"));
        let status = command.status().expect("run redis-server");
        assert!(status.success(), "redis-server by hand: {status}");
        wait_for("the server started by hand to answer", PATIENCE, || {
            self.cli(&["PING"]).filter(|r| r == "PONG")
        });
    }

    /// The end of the server's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(40).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("redis.conf")
    }

    /// The keys matching `pattern` (`KEYS`: test data sets are small).
    pub fn keys(&self, pattern: &str) -> std::collections::BTreeSet<String> {
        self.try_keys(pattern).unwrap_or_default()
    }

    /// [`RedisNode::keys`], `None` when the server did not answer.
    pub fn try_keys(&self, pattern: &str) -> Option<std::collections::BTreeSet<String>> {
        Some(
            self.cli(&["KEYS", pattern])?
                .lines()
                .map(str::to_string)
                .filter(|k| !k.is_empty())
                .collect(),
        )
    }
}

impl Default for RedisNode {
    fn default() -> Self {
        RedisNode::new()
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The config of node `i` (0-based), `extra` appended to its `[cluster]`.
pub fn node_config(etcd: &EtcdCluster, node: &RedisNode, i: usize, extra: &str) -> String {
    let config = format!(
        "[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\nnode = \"node{n}\"\n\n\
         [targets.local]\nkind = \"redis\"\ndsn = \"redis://127.0.0.1:{port}/0\"\ndata_dir = \"{dir}\"\n\n\
         [cluster]\nscope = \"redis\"\netcd = [{endpoints}]\ntarget = \"local\"\nconnect = \"127.0.0.1:{port}\"\n",
        n = i + 1,
        port = node.port,
        dir = node.data_dir().display(),
        endpoints = etcd.endpoints_toml(),
    );
    format!("{config}{extra}")
}

pub struct RedisHa {
    /// Agents first: they stop before the servers and etcd go.
    pub agents: Vec<Agent>,
    pub nodes: Vec<RedisNode>,
    pub etcd: EtcdCluster,
}

impl RedisHa {
    /// etcd, three server directories, node1's agent (which starts its
    /// server and leads), then the others' (which follow it).
    pub fn start() -> RedisHa {
        RedisHa::start_with("")
    }

    /// [`RedisHa::start`] with `extra` lines in every agent's `[cluster]`.
    pub fn start_with(extra: &str) -> RedisHa {
        RedisHa::start_configured(extra, "")
    }

    /// [`RedisHa::start_with`], and `server` lines in every `redis.conf`.
    pub fn start_configured(extra: &str, server: &str) -> RedisHa {
        let etcd = EtcdCluster::start(3);
        let nodes: Vec<RedisNode> = (0..3).map(|_| RedisNode::with_conf(server)).collect();
        let first = Agent::start(&node_config(&etcd, &nodes[0], 0, extra));
        let mut ha = RedisHa {
            agents: vec![first],
            nodes,
            etcd,
        };
        ha.wait_code(0, "/v1/role/primary", 200);
        for i in 1..3 {
            let config = node_config(&ha.etcd, &ha.nodes[i], i, extra);
            ha.agents.push(Agent::start(&config));
        }
        for i in 1..3 {
            ha.wait_code(i, "/v1/role/replica", 200);
        }
        ha
    }

    pub fn code(&self, i: usize, path: &str) -> u16 {
        self.agents[i].get(path).map(|(c, _)| c).unwrap_or(0)
    }

    /// Wait (up to twice [`PATIENCE`]) until agent `i` answers `path` with `code`.
    pub fn wait_code(&self, i: usize, path: &str, code: u16) {
        let deadline = Instant::now() + PATIENCE * 2;
        while self.code(i, path) != code {
            assert!(
                Instant::now() < deadline,
                "node{}: {path} is not {code}\n{}\n{:#}\n{}",
                i + 1,
                self.agents[i].log(),
                self.agents[i].json("/v1/cluster"),
                self.nodes[i].log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait (up to `within`) until every server but node `leader` (0-based)
    /// replicates from it.
    pub fn wait_replicas_of(&self, leader: usize, within: Duration) {
        let port = self.nodes[leader].port;
        for i in (0..self.nodes.len()).filter(|i| *i != leader) {
            wait_for(
                &format!("node{} to replicate from node{}", i + 1, leader + 1),
                within,
                || self.nodes[i].replicates_from(port).then_some(()),
            );
        }
    }

    /// Audit records of the cluster mode with `decision`: (node, record).
    pub fn records(&self, decision: &str) -> Vec<(usize, serde_json::Value)> {
        crate::agent::cluster_records(&self.agents, decision)
    }

    /// Poll node `i` every 100 ms with `SET` (the peers' clock) until it
    /// takes one: the time from `since`.
    pub fn first_write(&self, i: usize, since: Instant, within: Duration) -> Option<Duration> {
        while since.elapsed() < within {
            if self.nodes[i].writable() {
                return Some(since.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// The split-brain detector on every server.
    pub fn writers(&self) -> Writer {
        writers(&self.nodes)
    }
}

/// The split-brain detector on every one of `nodes`, a `SET` every 20 ms.
pub fn writers(nodes: &[RedisNode]) -> Writer {
    let servers: Vec<(String, u16)> = nodes.iter().map(|n| (n.host.clone(), n.port)).collect();
    Writer::start_at(&servers, Duration::from_millis(20))
}

/// One write a server acknowledged.
#[derive(Clone, Debug)]
pub struct Ack {
    pub port: u16,
    pub seq: u64,
    pub sent: Instant,
    pub acked: Instant,
}

/// The split-brain detector's writer threads.
pub struct Writer {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// `SET key value` over `stream` in RESP: whether the server said `+OK`.
fn set(stream: &mut BufReader<TcpStream>, key: &str, value: &str) -> std::io::Result<bool> {
    let request = format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
        key.len(),
        value.len()
    );
    stream.get_mut().write_all(request.as_bytes())?;
    let mut line = String::new();
    stream.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::other("closed"));
    }
    Ok(line.starts_with("+OK"))
}

impl Writer {
    /// One thread per port on 127.0.0.1, a `SET` every `every`.
    pub fn start(ports: &[u16], every: Duration) -> Writer {
        let servers: Vec<(String, u16)> = ports.iter().map(|p| ("127.0.0.1".into(), *p)).collect();
        Writer::start_at(&servers, every)
    }

    /// One thread per server (`host`, `port`), a `SET` every `every`; the
    /// acknowledged writes are told apart by port.
    pub fn start_at(servers: &[(String, u16)], every: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let seq = Arc::new(AtomicU64::new(1));
        let threads = servers
            .iter()
            .map(|(host, port)| {
                let port = *port;
                let addr: std::net::SocketAddr = format!("{host}:{port}")
                    .parse()
                    .unwrap_or_else(|e| panic!("{host}:{port}: {e}"));
                let (stop, acks, seq) = (stop.clone(), acks.clone(), seq.clone());
                std::thread::spawn(move || {
                    let mut conn: Option<BufReader<TcpStream>> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        if conn.is_none() {
                            conn = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                                .ok()
                                .and_then(|s| {
                                    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
                                    s.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
                                    Some(BufReader::new(s))
                                });
                        }
                        if let Some(c) = conn.as_mut() {
                            let n = seq.fetch_add(1, Ordering::Relaxed);
                            match set(c, &format!("sb:{n}"), &port.to_string()) {
                                Ok(true) => acks.lock().unwrap().push(Ack {
                                    port,
                                    seq: n,
                                    sent: started,
                                    acked: Instant::now(),
                                }),
                                Ok(false) => {}
                                Err(_) => conn = None,
                            }
                        }
                        std::thread::sleep(every.saturating_sub(started.elapsed()));
                    }
                })
            })
            .collect();
        Writer {
            stop,
            acks,
            threads,
        }
    }

    pub fn count(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Stop the threads; every acknowledged write, by time sent.
    pub fn stop(mut self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut acks = std::mem::take(&mut *self.acks.lock().unwrap());
        acks.sort_by_key(|a| a.sent);
        acks
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Pairs of servers that acknowledged writes in overlapping spans (the
/// first write sent to the last acknowledged), counting from `since`:
/// empty when no two primaries took writes at once.
pub fn overlaps(acks: &[Ack], since: Instant) -> Vec<(u16, u16)> {
    overlaps_between(acks, since, None)
}

/// [`overlaps`] over the writes sent from `since` until `until` (`None`:
/// to the end). A window in which each server was the primary at most
/// once: a server that is the primary twice (node1, a switchover to node2,
/// node1 again after node2's crash) has a span that covers the other's,
/// so such a history is checked as two windows.
pub fn overlaps_between(acks: &[Ack], since: Instant, until: Option<Instant>) -> Vec<(u16, u16)> {
    let mut spans: std::collections::BTreeMap<u16, (Instant, Instant)> = Default::default();
    for a in acks
        .iter()
        .filter(|a| a.sent >= since && until.is_none_or(|u| a.sent < u))
    {
        let span = spans.entry(a.port).or_insert((a.sent, a.acked));
        span.0 = span.0.min(a.sent);
        span.1 = span.1.max(a.acked);
    }
    let spans: Vec<_> = spans.into_iter().collect();
    let mut found = Vec::new();
    for (i, (a, (a0, a1))) in spans.iter().enumerate() {
        for (b, (b0, b1)) in &spans[i + 1..] {
            if a0 <= b1 && b0 <= a1 {
                found.push((*a, *b));
            }
        }
    }
    found
}

/// The acknowledged writes as runs of one server each, in the order they
/// were acknowledged: `(port, writes, first sent, last acknowledged)`, the
/// times in ms from `since`. What a split-brain report shows.
pub fn runs(acks: &[Ack], since: Instant) -> Vec<(u16, usize, u128, u128)> {
    let mut sorted: Vec<&Ack> = acks.iter().filter(|a| a.sent >= since).collect();
    sorted.sort_by_key(|a| a.acked);
    let ms = |t: Instant| t.duration_since(since).as_millis();
    let mut out: Vec<(u16, usize, u128, u128)> = Vec::new();
    for a in sorted {
        match out.last_mut() {
            Some(run) if run.0 == a.port => {
                run.1 += 1;
                run.2 = run.2.min(ms(a.sent));
                run.3 = ms(a.acked);
            }
            _ => out.push((a.port, 1, ms(a.sent), ms(a.acked))),
        }
    }
    out
}
