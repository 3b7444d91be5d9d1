//! A real etcd cluster for the cluster-mode tests: Debian's `etcd`
//! (etcd-server 3.4), N members on free loopback ports, data in a
//! temporary directory. Members can be killed and started again; dropping
//! it kills them all.

use crate::agent::free_port;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct EtcdMember {
    name: String,
    host: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<EtcdMember>,
    /// The network namespace the members run in, if any.
    netns: Option<String>,
}

impl EtcdCluster {
    /// Start `n` members and wait until the cluster is healthy.
    pub fn start(n: usize) -> EtcdCluster {
        EtcdCluster::start_in(&vec!["127.0.0.1".to_string(); n], None)
    }

    /// One member per address of `hosts`, in network namespace `netns`
    /// (`ip netns exec`) if given; wait until the cluster is healthy.
    pub fn start_in(hosts: &[String], netns: Option<&str>) -> EtcdCluster {
        let n = hosts.len();
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
                child: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            dir,
            members,
            netns: netns.map(String::from),
        };
        for i in 0..n {
            cluster.spawn(i, "new");
        }
        cluster.wait_healthy(0);
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
        let child = command
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .args([
                "--listen-client-urls",
                &format!("http://{}:{}", m.host, m.client),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://{}:{}", m.host, m.client),
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
        let m = &self.members[i];
        let url = format!("http://{}:{}/health", m.host, m.client);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = ureq::get(&url)
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .is_some_and(|body| body.contains("\"true\""));
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy: {}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The client URLs, as TOML array items.
    pub fn endpoints_toml(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("\"http://{}:{}\"", m.host, m.client))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// kill -9 member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start member `i` again (its data directory is kept).
    pub fn restart(&mut self, i: usize) {
        self.spawn(i, "existing");
    }

    /// Put `key` = `value` (no lease) through member 0's JSON gateway.
    pub fn put(&self, key: &str, value: &str) {
        let (host, port) = self.client(0);
        let body = serde_json::json!({"key": b64(key), "value": b64(value)}).to_string();
        let answer = ureq::post(&format!("http://{host}:{port}/v3/kv/put"))
            .header("content-type", "application/json")
            .send(body.as_str());
        assert!(answer.is_ok(), "etcd put {key}: {answer:?}");
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

/// Standard base64 (with padding), as etcd's JSON gateway wants keys.
fn b64(text: &str) -> String {
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
