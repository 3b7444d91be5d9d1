//! Running a command for an action (exec, restart, fence, post-step): an
//! argv without a shell, in its own process group (a timeout kills the
//! whole group), optionally as another user, with its output captured up
//! to a bound. Commands that start daemons (`pg_ctl start`) may leave their
//! output pipes open: the wait ends when the command exits, not at EOF.

use serde::Serialize;
use std::collections::BTreeMap;
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

/// Who PostgreSQL's programs working in data directory `path` run as:
/// `None` (the agent itself) when the agent is not root, else the
/// directory's owner (uid, gid).
///
/// Errors, when the agent is root, name why nobody but root could be
/// found, so that the caller refuses to act rather than run a program as
/// root in a directory another user controls: the directory is missing,
/// a symlink (never followed), or owned by root.
pub fn owner_if_root(path: &std::path::Path) -> Result<Option<(u32, u32)>, String> {
    if !crate::safefs::is_root() {
        return Ok(None);
    }
    let dir = crate::safefs::OwnedDir::open(path).map_err(|e| {
        format!(
            "refusing to run PostgreSQL's programs as root: cannot open the data directory {} \
             safely: {e}",
            path.display()
        )
    })?;
    dir.run_as().map(Some).ok_or_else(|| {
        format!(
            "{} is owned by root; PostgreSQL's programs run as the data directory's owner, \
             never as root (chown -R postgres: it)",
            path.display()
        )
    })
}

/// How long an operator's fence command may run, in every failover.
pub const FENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Run an operator's fence command `argv` (no shell) within
/// [`FENCE_TIMEOUT`]: `Ok` with a summary of what it printed when it
/// exits 0, else `Err` naming how it failed.
pub async fn fence(argv: &[String]) -> Result<String, String> {
    let spec = CommandSpec {
        argv: argv.to_vec(),
        timeout: FENCE_TIMEOUT,
        ..CommandSpec::default()
    };
    match run(&spec).await {
        Ok(out) if out.success() => Ok(format!("fence command succeeded ({})", out.summary())),
        Ok(out) => Err(format!("fence command failed: {}", out.summary())),
        Err(e) => Err(e),
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

    #[test]
    fn programs_never_run_as_root_in_a_directory_nobody_else_owns() {
        let dir = tempfile::tempdir().unwrap();
        if !crate::safefs::is_root() {
            assert_eq!(owner_if_root(dir.path()), Ok(None));
            return;
        }
        // Root's own directory, a link to one, a missing one: refused.
        let err = owner_if_root(dir.path()).unwrap_err();
        assert!(err.contains("owned by root"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(owner_if_root(&link).is_err());
        assert!(owner_if_root(&dir.path().join("missing")).is_err());
        // Another user's: that user.
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        assert_eq!(owner_if_root(&theirs), Ok(Some((65534, 65534))));
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
}
