//! Running the drill's programs (`tar`, `cp`, the server's start and stop
//! from [`crate::pgserver::ctl`], `pgbackrest`, a user's restore command)
//! as the backup's owner, within a time bound,
//! their output kept bounded *while* it is read: a restore that prints
//! gigabytes of progress never holds more than a few KiB of it. Each runs
//! in a process group of its own, killed whole when the program ends,
//! times out or its drill is aborted: a restore script's `tar`, `cp` or
//! `pgbackrest` children do not go on writing after the drill gave up.
//! (The server's start puts it in a session of its own, so the copy
//! outlives the program that started it; the teardown stops it.)

use super::scratch::Owner;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Output kept for messages: the last 8 KiB.
pub const TAIL: usize = 8 << 10;

/// A program's outcome: success, and the output it kept.
pub struct Ran {
    pub ok: bool,
    /// stdout then stderr, each cut to its last `limit` bytes.
    pub output: String,
    /// True when some output was dropped to keep the bound.
    pub truncated: bool,
}

impl Ran {
    /// The last non-empty output line, for messages.
    pub fn last_line(&self) -> &str {
        self.output
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
    }
}

/// The last `limit` bytes of a stream, read to its end.
async fn tail(mut stream: impl AsyncRead + Unpin, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut dropped = false;
    let mut chunk = vec![0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > 2 * limit {
                    kept.drain(..kept.len() - limit);
                    dropped = true;
                }
            }
        }
    }
    if kept.len() > limit {
        kept.drain(..kept.len() - limit);
        dropped = true;
    }
    (kept, dropped)
}

/// Kills the process group `0` with SIGKILL when dropped (an already
/// empty group is fine).
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; a negative pid names
        // the group the child leads (its pgid stays reserved while any
        // member lives, so it cannot name another group).
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

/// Run `argv` as `owner` in `cwd` within `timeout` (killed after it),
/// keeping the last [`TAIL`] bytes of each of its outputs.
pub async fn run(
    argv: &[String],
    owner: Owner,
    cwd: &Path,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Ran, String> {
    run_keeping(argv, owner, cwd, env, timeout, TAIL).await
}

/// [`run`], keeping up to `limit` bytes of each output (for output that
/// is parsed, such as JSON: check [`Ran::truncated`]).
pub async fn run_keeping(
    argv: &[String],
    owner: Owner,
    cwd: &Path,
    env: &[(String, String)],
    timeout: Duration,
    limit: usize,
) -> Result<Ran, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let _group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(Group);
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let work = async {
        let (out, err, status) =
            tokio::join!(tail(stdout, limit), tail(stderr, limit), child.wait());
        (out, err, status)
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(format!("{program} did not finish within {timeout:?}")),
        Ok((_, _, Err(e))) => Err(format!("{program}: {e}")),
        Ok(((out, cut_out), (err, cut_err), Ok(status))) => {
            let mut text = String::from_utf8_lossy(&out).into_owned();
            text.push_str(&String::from_utf8_lossy(&err));
            Ok(Ran {
                ok: status.success(),
                output: text,
                truncated: cut_out || cut_err,
            })
        }
    }
}

/// Run `argv` as `owner` in `cwd` until `deadline`; its failure is an
/// error naming the program and its last output line.
pub async fn step(
    argv: Vec<String>,
    owner: Owner,
    cwd: &Path,
    env: &[(String, String)],
    deadline: Instant,
) -> Result<(), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let ran = run(&argv, owner, cwd, env, left).await?;
    if ran.ok {
        Ok(())
    } else {
        Err(format!("{} failed: {}", argv.join(" "), ran.last_line()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let script = format!("(sleep 2; touch {}) & sleep 60", marker.display());
        let argv: Vec<String> = vec!["sh".into(), "-c".into(), script];
        let ran = run(&argv, None, dir.path(), &[], Duration::from_millis(300)).await;
        assert!(ran.is_err());
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !marker.exists(),
            "a child of the program went on after the timeout"
        );
    }

    #[tokio::test]
    async fn output_is_cut_while_it_is_read() {
        let argv: Vec<String> = [
            "sh",
            "-c",
            "head -c 5000000 /dev/zero | tr '\\0' x; echo; echo last",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let ran = run(&argv, None, Path::new("/"), &[], Duration::from_secs(30))
            .await
            .unwrap();
        assert!(ran.ok);
        assert!(ran.truncated);
        assert!(ran.output.len() <= TAIL, "{}", ran.output.len());
        assert_eq!(ran.last_line(), "last");
    }
}
