//! HAProxy in front of a cluster, routing on the agents' role endpoints as
//! operators deploy it in front of Patroni: one TCP frontend on a free
//! loopback port whose backend is every node's PostgreSQL, each checked
//! every 100 ms with `GET /v1/role/primary` on its agent's API; a server
//! receives connections only while its agent answers 200, and its sessions
//! are cut when it is marked down. Debian's `haproxy`, run in the
//! foreground; dropping it stops it. [`HaProxy::start_checking`] asks
//! another endpoint (Patroni's `/primary`, for the peer benchmark) with the
//! same settings.

use crate::port::free_port;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One backend server: its name, its PostgreSQL port, its agent's API port.
pub struct Backend {
    pub name: String,
    pub pg_port: u16,
    pub api_port: u16,
}

pub struct HaProxy {
    /// The frontend's port on 127.0.0.1.
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

/// The role endpoint HAProxy asks the agents.
const AGENT_CHECK: &str = "/v1/role/primary";

/// The configuration for `backends` behind 127.0.0.1:`port`, each
/// checked with `GET uri` on its API port.
fn config(port: u16, backends: &[Backend], uri: &str) -> String {
    let mut text = format!(
        "global\n  maxconn 512\n\n\
         defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n  timeout check 1s\n\n\
         frontend postgres\n  bind 127.0.0.1:{port}\n  default_backend primary\n\n\
         backend primary\n  option httpchk\n  \
         http-check send meth GET uri {uri} ver HTTP/1.1 hdr Host 127.0.0.1\n  \
         http-check expect status 200\n  \
         default-server inter 100ms fall 1 rise 1 on-marked-down shutdown-sessions\n"
    );
    for b in backends {
        text.push_str(&format!(
            "  server {} 127.0.0.1:{} check port {}\n",
            b.name, b.pg_port, b.api_port
        ));
    }
    text
}

impl HaProxy {
    /// Start HAProxy for `backends`; it is checked (`haproxy -c`) first
    /// and its frontend is accepting connections when this returns.
    pub fn start(backends: &[Backend]) -> HaProxy {
        HaProxy::start_checking(backends, AGENT_CHECK)
    }

    /// [`HaProxy::start`] with the servers checked on `uri` (a path, e.g.
    /// `/primary`) instead of the agents' role endpoint.
    pub fn start_checking(backends: &[Backend], uri: &str) -> HaProxy {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, config(port, backends, uri)).expect("write haproxy.cfg");
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&file)
            .output()
            .expect("run haproxy -c (apt-get install haproxy)");
        assert!(
            check.status.success(),
            "haproxy -c refused the config: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        HaProxy {
            port,
            child,
            _dir: dir,
        }
    }

    /// A DSN through the frontend as `user`.
    pub fn dsn(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres connect_timeout=1",
            self.port
        )
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_is_checked_on_its_agents_role_endpoint() {
        let text = config(
            5000,
            &[Backend {
                name: "node1".into(),
                pg_port: 5433,
                api_port: 9464,
            }],
            AGENT_CHECK,
        );
        assert!(text.contains("bind 127.0.0.1:5000"));
        assert!(text.contains("uri /v1/role/primary"));
        assert!(text.contains("server node1 127.0.0.1:5433 check port 9464"));
    }
}
