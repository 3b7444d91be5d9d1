//! Redis Sentinel, the peer of the Redis failover and partition
//! benchmarks (`tests/examples/redis_failover_bench.rs`,
//! `redis_partition_bench.rs`): one sentinel process watching the primary
//! set `bench` (quorum 2), in the test's network namespace or a node's,
//! killed when dropped. Debian's `redis-sentinel`, or `redis-server
//! --sentinel` when that is missing.

use crate::port::free_port;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Where a sentinel runs and what it watches.
pub struct Place<'a> {
    /// The network namespace to start it in (`None`: the test's own).
    pub netns: Option<&'a str>,
    /// Its `bind` addresses (separated by spaces); the first is where the
    /// test asks it.
    pub bind: &'a str,
    /// The primary's `HOST PORT`.
    pub primary: &'a str,
    /// `down-after-milliseconds` (`None`: Sentinel's default, 30 s).
    pub down_after_ms: Option<u64>,
}

/// One sentinel process.
pub struct Sentinel {
    host: String,
    port: u16,
    child: Child,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

impl Sentinel {
    /// Start one at `place`, its config and log in `dir`.
    pub fn start(dir: &Path, place: &Place) -> Sentinel {
        let port = free_port();
        let conf = dir.join(format!("sentinel-{port}.conf"));
        let mut text = format!(
            "port {port}\nbind {}\nprotected-mode no\ndir {}\nsentinel monitor bench {} 2\n",
            place.bind,
            dir.display(),
            place.primary
        );
        if let Some(ms) = place.down_after_ms {
            text += &format!("sentinel down-after-milliseconds bench {ms}\n");
        }
        std::fs::write(&conf, text).expect("write the sentinel config");
        let log = std::fs::File::create(dir.join(format!("sentinel-{port}.log"))).expect("log");
        // Debian's redis-sentinel takes the config file as its argument;
        // redis-server runs as a sentinel with --sentinel after it.
        let (program, tail): (String, &[&str]) = if which("redis-sentinel") {
            ("redis-sentinel".into(), &[])
        } else {
            (crate::redis::program(), &["--sentinel"])
        };
        let mut command = match place.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let child = command
            .arg(&conf)
            .args(tail)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("start a sentinel");
        let host = place.bind.split_whitespace().next().unwrap_or("127.0.0.1");
        Sentinel {
            host: host.to_string(),
            port,
            child,
        }
    }

    /// `redis-cli` to this sentinel: its output, None when it failed.
    pub fn ask(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", &self.host, "-p", &self.port.to_string(), "--raw"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Whether it sees both replicas and the two other sentinels.
    pub fn ready(&self) -> bool {
        let Some(text) = self.ask(&["SENTINEL", "MASTER", "bench"]) else {
            return false;
        };
        let lines: Vec<&str> = text.lines().collect();
        let field = |name: &str| {
            lines
                .iter()
                .position(|l| *l == name)
                .and_then(|i| lines.get(i + 1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        field("num-slaves") == Some(2) && field("num-other-sentinels") == Some(2)
    }
}
