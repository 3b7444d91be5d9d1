//! A private Redis server for the per-run comparison of `redis-alive`
//! with `redis-cli ping` and a `check_tcp` PING/PONG check: `redis-server`
//! on a free loopback port with no persistence (`--save ''`), its working
//! directory under the bench directory. The machine's own server (6379) is
//! left alone. Dropping it stops the server.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where check_tcp lives (Debian's monitoring-plugins-basic).
pub const CHECK_TCP: &str = "/usr/lib/nagios/plugins/check_tcp";

/// Debian packages the comparison needs, if missing.
pub fn missing_packages() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !Path::new(CHECK_TCP).exists() {
        missing.push("monitoring-plugins-basic");
    }
    if !Path::new("/usr/bin/redis-server").exists() {
        missing.push("redis-server");
    }
    if !Path::new("/usr/bin/redis-cli").exists() {
        missing.push("redis-tools");
    }
    missing
}

/// A running private `redis-server`.
pub struct Server {
    child: Child,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

/// Whether `redis-cli ping` on `port` answers PONG.
fn answers(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "ping"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
}

impl Server {
    /// Start a server working in `dir/redis` (made if missing); ready when
    /// it returns. Errors: the program cannot start, or it does not answer
    /// PING within 30 s.
    pub fn start(dir: &Path) -> Result<Server, String> {
        let root = dir.join("redis");
        std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        let server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answers(port) {
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server on port {port} did not answer within 30 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
