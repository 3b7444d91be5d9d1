//! A release agent started on a generated config, for the footprint and
//! cold-start benchmarks: its status API, its /proc figures, and a stop.

use super::{Built, watchpost, write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub struct RunningAgent {
    child: Child,
    port: u16,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(19464)
}

/// A config of `count` copies of `wasm`, every `every`, state in `state`.
pub fn config(wasm: &Path, count: usize, every: &str, state: &Path, port: u16) -> String {
    let mut text = format!(
        "[agent]\nnode = \"bench\"\nstate_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n\n",
        state.display()
    );
    for i in 0..count {
        text.push_str(&format!(
            "[[probe]]\nname = \"p{i}\"\nwasm = \"{}\"\nevery = \"{every}\"\n\n",
            wasm.display()
        ));
    }
    text
}

impl RunningAgent {
    /// Start the agent on `count` probes; returns when it was spawned.
    pub fn start(
        built: &Built,
        name: &str,
        count: usize,
        every: &str,
        state: &Path,
    ) -> Result<RunningAgent, String> {
        let port = free_port();
        let text = config(&built.trivial, count, every, state, port);
        RunningAgent::start_config(built, name, &text, port)
    }

    /// Start the agent on the config `text`, whose status API listens on
    /// `port` (see [`free_port`]).
    pub fn start_config(
        built: &Built,
        name: &str,
        text: &str,
        port: u16,
    ) -> Result<RunningAgent, String> {
        let path = write(&built.dir, &format!("{name}.toml"), text)?;
        let log = std::fs::File::create(built.dir.join(format!("{name}.log")))
            .map_err(|e| format!("create the agent log: {e}"))?;
        let child = watchpost(built)
            .args(["run", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the agent: {e}"))?;
        Ok(RunningAgent { child, port })
    }

    pub fn get(&self, path: &str) -> Option<String> {
        ureq::get(&format!("http://127.0.0.1:{}{path}", self.port))
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()
    }

    /// How many probes have run at least once (None: the API is not up).
    pub fn probes_run(&self) -> Option<usize> {
        let text = self.get("/v1/probes")?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(
            v["probes"]
                .as_array()?
                .iter()
                .filter(|p| p["counters"]["runs"].as_u64().unwrap_or(0) >= 1)
                .count(),
        )
    }

    /// Wait until `count` probes have run; the time since `since`.
    pub fn wait_all_run(
        &self,
        count: usize,
        since: Instant,
        poll: Duration,
    ) -> Result<Duration, String> {
        loop {
            if self.probes_run() == Some(count) {
                return Ok(since.elapsed());
            }
            if since.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "the agent did not run all {count} probes within 120 s"
                ));
            }
            std::thread::sleep(poll);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) used so far.
    pub fn cpu_seconds(&self) -> f64 {
        super::proc_cpu_seconds(&format!("/proc/{}/stat", self.child.id()), false)
    }

    /// A `/proc/PID/status` figure in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, key: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(f64::NAN)
    }

    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh, empty state directory under the bench directory.
pub fn fresh_state(built: &Built, name: &str) -> Result<PathBuf, String> {
    let dir = built.dir.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    Ok(dir)
}
