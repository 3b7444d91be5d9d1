//! Running a program for the agent (an action's exec, a restart, a fence,
//! a database server's own programs): an argv without a shell, in its own
//! process group (a timeout kills the whole group), optionally as another
//! user, with its output captured up to a bound. Programs that start
//! daemons (a database server's start) may leave their output pipes open:
//! the wait ends when the program exits, not at EOF.
//!
//! A leaf (it imports nothing from the agent), so that the layers that
//! run programs — the PostgreSQL server module for PostgreSQL's,
//! remediation, the cluster mode — share one runner without importing
//! each other.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Bytes of output kept (the tail).
pub const OUTPUT_BYTES: usize = 16 << 10;

/// How to run a command.
#[derive(Clone, Debug, Default)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    /// Run as this uid/gid (e.g. the PostgreSQL data directory's owner).
    pub user: Option<(u32, u32)>,
    /// Run in this directory (`None`: the agent's own).
    pub current_dir: Option<PathBuf>,
}

/// What a command did.
#[derive(Clone, Debug, Serialize)]
pub struct CommandOutcome {
    pub argv: Vec<String>,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// stdout and stderr, interleaved by arrival, last [`OUTPUT_BYTES`].
    pub output: String,
    pub duration_ms: f64,
}

impl CommandOutcome {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// One line for messages.
    pub fn summary(&self) -> String {
        let status = if self.timed_out {
            "timed out".to_string()
        } else {
            match self.exit_code {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_string(),
            }
        };
        let last = self
            .output
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        if last.is_empty() {
            status
        } else {
            format!("{status}: {last}")
        }
    }
}

/// Run the command to its end or its timeout. Err if it cannot start.
pub async fn run(spec: &CommandSpec) -> Result<CommandOutcome, String> {
    let (program, args) = spec.argv.split_first().ok_or("the command is empty")?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some((uid, gid)) = spec.user {
        command.uid(uid).gid(gid);
    }
    if let Some(dir) = &spec.current_dir {
        command.current_dir(dir);
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {program:?}: {e}"))?;
    let pid = child.id();
    let output = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<u8>::new()));
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(tokio::spawn(collect(stdout, output.clone())));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(tokio::spawn(collect(stderr, output.clone())));
    }
    let (exit_code, timed_out) = match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(Ok(status)) => (status.code(), false),
        Ok(Err(e)) => return Err(format!("waiting for {program:?} failed: {e}")),
        Err(_) => {
            if let Some(pid) = pid {
                // SAFETY: kill(2) on the process group we created.
                unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
            }
            let _ = child.wait().await;
            (None, true)
        }
    };
    // Give the pipes a moment to drain; a daemon it started may keep them.
    for reader in readers {
        let _ = tokio::time::timeout(Duration::from_millis(200), reader).await;
    }
    let bytes = output.lock().clone();
    Ok(CommandOutcome {
        argv: spec.argv.clone(),
        exit_code,
        timed_out,
        output: String::from_utf8_lossy(&bytes).into_owned(),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

async fn collect(
    mut pipe: impl tokio::io::AsyncRead + Unpin,
    into: std::sync::Arc<parking_lot::Mutex<Vec<u8>>>,
) {
    let mut buffer = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let mut out = into.lock();
        out.extend_from_slice(&buffer[..n]);
        if out.len() > OUTPUT_BYTES {
            let excess = out.len() - OUTPUT_BYTES;
            out.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str], timeout_ms: u64) -> CommandSpec {
        CommandSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_millis(timeout_ms),
            ..CommandSpec::default()
        }
    }

    #[tokio::test]
    async fn output_and_exit_code_are_captured() {
        let out = run(&spec(
            &["sh", "-c", "echo hello; echo oops >&2; exit 3"],
            5000,
        ))
        .await
        .unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert!(out.output.contains("hello") && out.output.contains("oops"));
        assert_eq!(out.summary(), "exit code 3: oops");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let out = run(&spec(&["sh", "-c", "sleep 30 & sleep 30"], 200))
            .await
            .unwrap();
        assert!(out.timed_out);
        assert!(out.duration_ms < 5000.0);
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_naming_it() {
        let err = run(&spec(&["/no/such/program"], 1000)).await.unwrap_err();
        assert!(err.contains("/no/such/program"), "{err}");
    }

    #[tokio::test]
    async fn a_daemon_holding_the_pipes_does_not_block() {
        let out = run(&spec(&["sh", "-c", "(sleep 5 &) ; echo started"], 5000))
            .await
            .unwrap();
        assert!(out.success());
        assert!(out.duration_ms < 3000.0, "{}", out.duration_ms);
    }

    #[tokio::test]
    async fn it_runs_in_the_directory_given() {
        let dir = tempfile::tempdir().unwrap();
        let mut pwd = spec(&["pwd"], 5000);
        pwd.current_dir = Some(dir.path().to_path_buf());
        let out = run(&pwd).await.unwrap();
        assert_eq!(
            std::path::Path::new(out.output.trim())
                .canonicalize()
                .unwrap(),
            dir.path().canonicalize().unwrap()
        );
    }
}
