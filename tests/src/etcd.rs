//! A real etcd cluster for the cluster-mode tests: Debian's `etcd`
//! (etcd-server 3.4), N members on free loopback ports, data in a
//! temporary directory. Members can be killed and started again; dropping
//! it kills them all.
//!
//! [`EtcdOptions`] close it: TLS with client-certificate auth (the agents'
//! endpoints are then `https` only), a backend quota. The tests' own
//! administration (users, roles, `auth enable`, alarms) goes through a
//! second, plain-http client listener on loopback that the agents are
//! never given: the test's back door, not part of what is tested.

use crate::port::free_port;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct EtcdMember {
    name: String,
    host: String,
    client: u16,
    peer: u16,
    /// The tests' plain-http listener (with TLS only).
    admin: Option<u16>,
    child: Option<Child>,
}

/// The password of etcd's root user once auth is enabled.
const ROOT_PASSWORD: &str = "root-secret";

/// How the members run beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct EtcdOptions {
    /// TLS on the client URLs with `--client-cert-auth`: the CA file
    /// (`--trusted-ca-file`) and the server certificate and key it signed
    /// (which must also allow client authentication: etcd's gateway dials
    /// etcd's gRPC with it).
    pub tls: Option<(PathBuf, crate::pki::Leaf)>,
    /// `--quota-backend-bytes`.
    pub quota_bytes: Option<u64>,
}

pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<EtcdMember>,
    /// The network namespace the members run in, if any.
    netns: Option<String>,
    options: EtcdOptions,
    /// The root user's token once [`EtcdCluster::enable_auth`] ran
    /// (fetched again when etcd says it expired).
    root_token: std::sync::Mutex<Option<String>>,
}

impl EtcdCluster {
    /// Start `n` members and wait until the cluster is healthy.
    pub fn start(n: usize) -> EtcdCluster {
        EtcdCluster::start_in(&vec!["127.0.0.1".to_string(); n], None)
    }

    /// One member per address of `hosts`, in network namespace `netns`
    /// (`ip netns exec`) if given; wait until the cluster is healthy.
    pub fn start_in(hosts: &[String], netns: Option<&str>) -> EtcdCluster {
        EtcdCluster::start_with(hosts, netns, EtcdOptions::default())
    }

    /// [`EtcdCluster::start_in`] with `options`.
    /// Ports come from [`free_port`], which another test may take before
    /// etcd binds them: a cluster whose member found its port taken is
    /// started again on fresh ports (up to three times).
    pub fn start_with(hosts: &[String], netns: Option<&str>, options: EtcdOptions) -> EtcdCluster {
        for attempt in 1.. {
            let cluster = EtcdCluster::start_once(hosts, netns, options.clone());
            match cluster.try_wait_healthy(0) {
                Ok(()) => return cluster,
                Err(_) if attempt < 3 && cluster.a_port_was_taken() => {
                    eprintln!("etcd: a port was taken before etcd bound it; starting again");
                    drop(cluster);
                }
                Err(log) => panic!("etcd did not become healthy: {log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Whether a member's log says its port was taken.
    fn a_port_was_taken(&self) -> bool {
        (0..self.members.len()).any(|i| self.log(i).contains("address already in use"))
    }

    fn start_once(hosts: &[String], netns: Option<&str>, options: EtcdOptions) -> EtcdCluster {
        let n = hosts.len();
        let tls = options.tls.is_some();
        let dir = tempfile::Builder::new()
            .prefix("watchpost-etcd-")
            .tempdir()
            .unwrap();
        let members = (1..=n)
            .map(|i| EtcdMember {
                name: format!("e{i}"),
                host: hosts[i - 1].clone(),
                client: free_port(),
                peer: free_port(),
                admin: tls.then(free_port),
                child: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            dir,
            members,
            netns: netns.map(String::from),
            options,
            root_token: std::sync::Mutex::new(None),
        };
        for i in 0..n {
            cluster.spawn(i, "new");
        }
        cluster
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://{}:{}", m.name, m.host, m.peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let initial = self.initial_cluster();
        let m = &self.members[i];
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", m.name))).unwrap();
        let mut command = match &self.netns {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns, "etcd"]);
                command
            }
            None => Command::new("etcd"),
        };
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut listen = format!("{scheme}://{}:{}", m.host, m.client);
        if let Some(admin) = m.admin {
            listen.push_str(&format!(",http://127.0.0.1:{admin}"));
        }
        if let Some((ca, server)) = &self.options.tls {
            command
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(ca)
                .arg("--cert-file")
                .arg(&server.cert)
                .arg("--key-file")
                .arg(&server.key);
        }
        if let Some(quota) = self.options.quota_bytes {
            command.args(["--quota-backend-bytes", &quota.to_string()]);
        }
        let child = command
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .args(["--listen-client-urls", &listen])
            .args([
                "--advertise-client-urls",
                &format!("{scheme}://{}:{}", m.host, m.client),
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://{}:{}", m.host, m.peer),
            ])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://{}:{}", m.host, m.peer),
            ])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", "watchpost-test"])
            // A new Raft leader within ~0.5 s when one is lost, well inside
            // the 2 s a 3 s lease leaves for a renewal (etcd's default, 1 s
            // randomised up to 2 s, can use it all up; see docs/src/cluster/etcd.md).
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd (Debian package etcd-server)");
        self.members[i].child = Some(child);
    }

    /// Wait until member `i` says it is healthy.
    pub fn wait_healthy(&self, i: usize) {
        if let Err(log) = self.try_wait_healthy(i) {
            panic!("etcd did not become healthy: {log}");
        }
    }

    /// Wait (30 s) until member `i` says it is healthy; else its log.
    fn try_wait_healthy(&self, i: usize) -> Result<(), String> {
        let url = format!("{}/health", self.admin_url(i));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = ureq::get(&url)
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .is_some_and(|body| body.contains("\"true\""));
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline || self.a_port_was_taken() {
                return Err(self.log(i));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The client URLs, as TOML array items.
    pub fn endpoints_toml(&self) -> String {
        (0..self.members.len())
            .map(|i| format!("\"{}\"", self.url(i)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Member `i`'s client URL, as the agents are given it.
    pub fn url(&self, i: usize) -> String {
        let m = &self.members[i];
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}:{}", m.host, m.client)
    }

    /// Member `i`'s URL for the tests' own administration.
    pub fn admin_url(&self, i: usize) -> String {
        match self.members[i].admin {
            Some(admin) => format!("http://127.0.0.1:{admin}"),
            None => self.url(i),
        }
    }

    /// POST `body` to `path` of member 0's JSON gateway, as root once auth
    /// is enabled: (status, answer).
    pub fn call(&self, path: &str, body: Value) -> (u16, Value) {
        self.call_at(0, path, body)
    }

    /// [`EtcdCluster::call`] on member `i`.
    pub fn call_at(&self, i: usize, path: &str, body: Value) -> (u16, Value) {
        let (status, answer) = self.call_once(i, path, &body);
        if answer.to_string().contains("invalid auth token") {
            *self.root_token.lock().unwrap() = None;
            let (_, auth) = self.call_once(
                i,
                "/v3/auth/authenticate",
                &json!({"name": "root", "password": ROOT_PASSWORD}),
            );
            *self.root_token.lock().unwrap() = auth["token"].as_str().map(String::from);
            return self.call_once(i, path, &body);
        }
        (status, answer)
    }

    fn call_once(&self, i: usize, path: &str, body: &Value) -> (u16, Value) {
        self.call_within(i, path, body, Duration::from_secs(10))
    }

    /// One call to member `i`, given up after `timeout` (status 0).
    fn call_within(&self, i: usize, path: &str, body: &Value, timeout: Duration) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        let mut request = agent
            .post(&format!("{}{path}", self.admin_url(i)))
            .header("content-type", "application/json");
        let token = self.root_token.lock().unwrap().clone();
        if let Some(token) = token {
            request = request.header("Authorization", &token);
        }
        match request.send(body.to_string().as_str()) {
            Ok(mut answer) => {
                let status = answer.status().as_u16();
                let text = answer.body_mut().read_to_string().unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    /// [`EtcdCluster::call`] that must succeed.
    fn must(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(path, body.clone());
        assert_eq!(status, 200, "etcd {path} {body}: {answer}");
        answer
    }

    /// `auth enable` with a root user, and for each `(user, password,
    /// prefix)` a role of the same name with readwrite on `prefix` only.
    pub fn enable_auth(&self, users: &[(&str, &str, &str)]) {
        for (user, password, prefix) in users {
            self.must("/v3/auth/role/add", json!({"name": user}));
            self.must(
                "/v3/auth/role/grant",
                json!({"name": user, "perm": {"permType": "READWRITE", "key": b64(prefix), "range_end": b64(&prefix_end(prefix))}}),
            );
            self.must(
                "/v3/auth/user/add",
                json!({"name": user, "password": password}),
            );
            self.must("/v3/auth/user/grant", json!({"user": user, "role": user}));
        }
        self.must(
            "/v3/auth/user/add",
            json!({"name": "root", "password": ROOT_PASSWORD}),
        );
        self.must(
            "/v3/auth/user/grant",
            json!({"user": "root", "role": "root"}),
        );
        self.must("/v3/auth/enable", json!({}));
        let answer = self.must(
            "/v3/auth/authenticate",
            json!({"name": "root", "password": ROOT_PASSWORD}),
        );
        let token = answer["token"].as_str().map(String::from);
        assert!(token.is_some(), "no root token: {answer}");
        *self.root_token.lock().unwrap() = token;
    }

    /// The value of `key`, if it exists (read through the back door).
    pub fn get(&self, key: &str) -> Option<String> {
        let answer = self.must("/v3/kv/range", json!({"key": b64(key)}));
        answer["kvs"][0]["value"].as_str().map(unb64)
    }

    /// The store's current revision (a header of every answer).
    pub fn revision(&self) -> i64 {
        let answer = self.must("/v3/kv/range", json!({"key": b64("/")}));
        answer["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no revision in {answer}"))
    }

    /// kill -9 member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// kill -9 etcd's Raft leader (losing a member, the worst case) and
    /// wait until a survivor takes writes again: the leader's index.
    pub fn kill_raft_leader(&mut self) -> usize {
        let leader = self.raft_leader();
        self.kill(leader);
        let election = self.wait_writable((leader + 1) % self.members.len());
        eprintln!("etcd lost its Raft leader: writable again {election:?} later");
        leader
    }

    /// kill -9 every member still running.
    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// The index of the member that is etcd's Raft leader now, as the
    /// members themselves say (`/v3/maintenance/status`: the `leader`
    /// id that equals a member's own `header.member_id`).
    fn raft_leader(&self) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            for i in 0..self.members.len() {
                if self.members[i].child.is_none() {
                    continue;
                }
                let (status, answer) = self.call_at(i, "/v3/maintenance/status", json!({}));
                if status == 200
                    && answer["leader"].is_string()
                    && answer["leader"] == answer["header"]["member_id"]
                {
                    return i;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no etcd member says it is the Raft leader"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until member `i` takes a write again (a Raft leader exists
    /// among the live members): how long that took.
    fn wait_writable(&self, i: usize) -> Duration {
        let start = std::time::Instant::now();
        loop {
            // Each try short: a put sent while etcd has no leader waits
            // for etcd's own request timeout (5 s), long after a new
            // leader could take it.
            let (status, _) = self.call_within(
                i,
                "/v3/kv/put",
                &json!({"key": b64("/wait-writable"), "value": b64("1")}),
                Duration::from_millis(300),
            );
            if status == 200 {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "etcd member {i} took no write for 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start member `i` again (its data directory is kept).
    pub fn restart(&mut self, i: usize) {
        self.spawn(i, "existing");
    }

    /// Put `key` = `value` (no lease) through member 0's JSON gateway.
    pub fn put(&self, key: &str, value: &str) {
        self.must("/v3/kv/put", json!({"key": b64(key), "value": b64(value)}));
    }

    /// Member `i`'s (address, client port).
    pub fn client(&self, i: usize) -> (String, u16) {
        (self.members[i].host.clone(), self.members[i].client)
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("{}.log", self.members[i].name)),
        )
        .unwrap_or_default()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// The end of a prefix range: its last byte incremented.
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).expect("an ASCII prefix")
}

/// Standard base64 decoding (etcd's values), lossy.
fn unb64(text: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().take_while(|&c| c != b'=') {
        let Some(v) = ABC.iter().position(|&a| a == c) else {
            continue;
        };
        bits = (bits << 6) | v as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 (with padding), as etcd's JSON gateway wants keys.
pub fn b64(text: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
