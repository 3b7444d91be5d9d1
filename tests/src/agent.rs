//! A running `watchpost run` daemon for tests: its own config file, state
//! directory and free port, its log captured to a file, and helpers to talk
//! to its status API and send it signals. Dropping it kills the process.

use crate::cli::watchpost;
use crate::port::free_port;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for things that should happen within a few seconds
/// (generous: CI machines are shared and noisy).
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct Agent {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    starts: u32,
    /// Run without `-c` (the embedded default config).
    embedded: bool,
    /// Extra environment of the agent process.
    env: Vec<(String, String)>,
    /// RLIMIT_NOFILE (soft and hard) of the agent process, if set.
    nofile: Option<u64>,
    /// The network namespace it runs in (`ip netns exec`), if any.
    netns: Option<String>,
    /// The address its API listens on (127.0.0.1 unless in a namespace).
    host: String,
}

/// Poll `check` every 100 ms until it returns `Some`, or fail after `within`
/// with `what` and the last value seen.
pub fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Agent {
    /// Write `config` (with `[agent]` state_dir and listen filled in when
    /// `{STATE}`/`{LISTEN}` appear, or an [agent] table prepended when it
    /// has none) and start the agent on it.
    pub fn start(config: &str) -> Agent {
        Agent::start_with_env(config, &[])
    }

    /// [`Agent::start`] with extra environment variables for the agent.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut agent = Agent {
            dir,
            port,
            child: None,
            starts: 0,
            embedded: false,
            env,
            nofile: None,
            netns: None,
            host: "127.0.0.1".into(),
        };
        agent.write_config(config);
        agent.spawn();
        agent
    }

    /// [`Agent::start_with_env`] in network namespace `netns`, its API
    /// on `host` (an address of that namespace the tests reach).
    pub fn start_in(config: &str, env: &[(&str, &str)], netns: &str, host: &str) -> Agent {
        let mut agent = Agent {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
            starts: 0,
            embedded: false,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            nofile: None,
            netns: Some(netns.to_string()),
            host: host.to_string(),
        };
        agent.write_config(config);
        agent.spawn();
        agent
    }

    /// [`Agent::start`] with at most `nofile` open files (soft and hard
    /// limit), as on a host with the common default of 1024.
    pub fn start_with_nofile(config: &str, nofile: u64) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = Agent {
            dir,
            port: free_port(),
            child: None,
            starts: 0,
            embedded: false,
            env: Vec::new(),
            nofile: Some(nofile),
            netns: None,
            host: "127.0.0.1".into(),
        };
        agent.write_config(config);
        agent.spawn();
        agent
    }

    /// Start `watchpost run` without `-c`: the embedded default config,
    /// which listens on 127.0.0.1:9464 (the state goes to a temp dir).
    pub fn start_embedded_default() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = Agent {
            dir,
            port: 9464,
            child: None,
            starts: 0,
            embedded: true,
            env: Vec::new(),
            nofile: None,
            netns: None,
            host: "127.0.0.1".into(),
        };
        agent.spawn();
        agent
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("watchpost.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("agent-{}.log", self.starts))
    }

    /// Replace the config file (not yet reloaded).
    pub fn write_config(&self, config: &str) {
        let text = if config.contains("[agent]") {
            config.to_string()
        } else {
            format!("[agent]\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\n\n{config}")
        };
        let text = text
            .replace("{STATE}", &self.state_dir().display().to_string())
            .replace("{LISTEN}", &format!("{}:{}", self.host, self.port));
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Start the process (again) and wait for /healthz.
    pub fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut command = match &self.netns {
            // `ip netns exec` execs the program: the pid stays the agent's.
            Some(ns) => {
                let mut command = std::process::Command::new("ip");
                command
                    .args(["netns", "exec", ns])
                    .arg(crate::cli::binary())
                    .env("WATCHPOST_STATE_DIR", crate::cli::shared_state_dir());
                command
            }
            None => watchpost(),
        };
        command.arg("run");
        if self.embedded {
            command.env("WATCHPOST_STATE_DIR", self.state_dir());
        } else {
            command.arg("-c").arg(self.config_path());
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit(2), async-signal-safe, between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command
            .env("WATCHPOST_LOG", "info,watchpost=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(command.spawn().expect("spawn watchpost run"));
        wait_for("the agent's /healthz", PATIENCE, || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the agent exited ({status}) during start:\n{}", self.log());
            }
            self.get("/healthz").ok().filter(|(code, _)| *code == 200)
        });
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Everything the current process logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The address of `path` on the agent's API.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.host, self.port)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into()
    }

    /// The API token the agent uses: the variable its config's
    /// `api_token_env` names (from the agent's environment), else the
    /// token it generated in `state_dir/api-token`.
    pub fn token(&self) -> Option<String> {
        let config = std::fs::read_to_string(self.config_path()).unwrap_or_default();
        let named = config.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "api_token_env").then(|| value.trim().trim_matches('"').to_string())
        });
        if let Some(name) = named {
            return self
                .env
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone());
        }
        std::fs::read_to_string(self.state_dir().join("api-token"))
            .ok()
            .map(|t| t.trim().to_string())
    }

    /// GET with the agent's token: (status code, body).
    pub fn get(&self, path: &str) -> Result<(u16, String), ureq::Error> {
        let mut request = Self::agent().get(&self.url(path));
        if let Some(token) = self.token() {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call()?;
        let code = response.status().as_u16();
        Ok((code, response.body_mut().read_to_string()?))
    }

    /// GET without a token: (status code, body).
    pub fn get_anonymous(&self, path: &str) -> Result<(u16, String), ureq::Error> {
        let mut response = Self::agent().get(&self.url(path)).call()?;
        let code = response.status().as_u16();
        Ok((code, response.body_mut().read_to_string()?))
    }

    /// POST with an empty body and the agent's token: (status code, body).
    pub fn post(&self, path: &str) -> (u16, String) {
        let mut request = Self::agent().post(&self.url(path));
        if let Some(token) = self.token() {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.send_empty().expect("POST");
        let code = response.status().as_u16();
        (code, response.body_mut().read_to_string().unwrap())
    }

    /// POST a JSON body with the agent's token: (status code, body).
    pub fn post_json(&self, path: &str, body: &str) -> (u16, String) {
        let mut request = Self::agent()
            .post(&self.url(path))
            .header("Content-Type", "application/json");
        if let Some(token) = self.token() {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.send(body).expect("POST");
        let code = response.status().as_u16();
        (code, response.body_mut().read_to_string().unwrap())
    }

    /// GET a JSON document (must answer 200).
    pub fn json(&self, path: &str) -> Value {
        let (code, body) = self.get(path).expect("GET");
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
    }

    /// GET a JSON document of up to 512 MiB (must answer 200), waiting
    /// up to a minute.
    pub fn json_large(&self, path: &str) -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut request = agent.get(&self.url(path));
        if let Some(token) = self.token() {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call().expect("GET");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let body = response
            .body_mut()
            .with_config()
            .limit(512 << 20)
            .read_to_string()
            .expect("read the body");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e})"))
    }

    /// One probe from /v1/probes.
    pub fn probe(&self, name: &str) -> Option<Value> {
        let all = self.json("/v1/probes");
        all["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    }

    /// Names of the probes the agent runs.
    pub fn probe_names(&self) -> Vec<String> {
        let all = self.json("/v1/probes");
        all["probes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Wait until `probe` has run at least `runs` times; its view then.
    pub fn wait_for_runs(&self, probe: &str, runs: u64) -> Value {
        wait_for(&format!("{runs} runs of {probe}"), PATIENCE, || {
            self.probe(probe)
                .filter(|p| p["counters"]["runs"].as_u64().unwrap_or(0) >= runs)
        })
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our child's pid.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Wait for the process to exit; its exit code (128+n for a signal).
    pub fn wait_exit(&mut self) -> i32 {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                return status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9 and reap.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit();
    }

    /// After a leading run of this agent was killed: wait (up to
    /// [`PATIENCE`]) until the watchdog it left has fired at the lease's
    /// deadline (its record in the state directory). Until then it stops
    /// any server started in its data directory, one started by hand too.
    pub fn wait_watchdog_fired(&self) {
        let record = self.state_dir().join("cluster-watchdog.json");
        wait_for("the killed run's watchdog to fire", PATIENCE, || {
            record.exists().then_some(())
        });
    }

    pub fn state_file(&self, probe: &str) -> PathBuf {
        self.state_dir()
            .join("probes")
            .join(format!("{probe}.json"))
    }

    /// Every record of the audit log (each line must be valid JSON).
    pub fn audit(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.state_dir().join("audit.log")).unwrap_or_default();
        text.lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// Audit records of `remediation` with `decision`.
    pub fn audit_of(&self, remediation: &str, decision: &str) -> Vec<Value> {
        self.audit()
            .into_iter()
            .filter(|r| r["remediation"] == remediation && r["decision"] == decision)
            .collect()
    }

    /// The first audit record of `remediation` with `decision`, waited for
    /// up to `within`; the assertion carries the whole audit and the log.
    pub fn first_record(&self, remediation: &str, decision: &str, within: Duration) -> Value {
        let started = Instant::now();
        loop {
            if let Some(record) = self.audit_of(remediation, decision).into_iter().next() {
                return record;
            }
            assert!(
                started.elapsed() < within,
                "no `{decision}` record of `{remediation}`: {:#?}\n{}",
                self.audit(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The step records of `remediation` named `name` (a step record's
    /// `reason`: `pre-check`, `fence`, `promote`, ...).
    pub fn steps(&self, remediation: &str, name: &str) -> Vec<Value> {
        self.audit_of(remediation, "step")
            .into_iter()
            .filter(|r| r["reason"] == name)
            .collect()
    }

    /// A path inside the test directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `wasm = "..."` value for a probe built for the tests.
pub fn wasm(probe: &str) -> String {
    crate::probes::path(probe).display().to_string()
}

/// The cluster mode's audit records with `decision` across `agents` (one
/// per node): (node index, record).
pub fn cluster_records(agents: &[Agent], decision: &str) -> Vec<(usize, Value)> {
    agents
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            a.audit_of("cluster", decision)
                .into_iter()
                .map(move |r| (i, r))
        })
        .collect()
}
