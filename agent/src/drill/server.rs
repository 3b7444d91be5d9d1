//! The restored server of a MariaDB or Redis drill (`mariadbd`,
//! `redis-server`): started in the foreground as the backup's owner, in a
//! process group of its own, its output into a log in the scratch
//! directory; asked to stop with SIGTERM and killed (the whole group) when
//! it does not stop in time, when the drill is dropped (its deadline) or
//! when the agent dies (`PDEATHSIG`, forked by [`super::forker`]): a
//! drill's server never outlives the drill. Also where the drill finds
//! these programs: `bin_dir`, else `PATH`, `/usr/sbin`, `/usr/local/sbin`.

use super::scratch::Owner;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long a server has to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// The path of `program`: in `bin_dir` when it is set (an error when it
/// is not there), else the first of `PATH`, `/usr/sbin`, `/usr/local/sbin`
/// that has it.
pub fn find(bin_dir: &Path, program: &str) -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if !bin_dir.as_os_str().is_empty() {
        let path = bin_dir.join(program);
        return if executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "{program} is not in `bin_dir` {}: install it or point `bin_dir` at its directory",
                bin_dir.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| {
            format!(
                "{program} is not in PATH, /usr/sbin or /usr/local/sbin: install it or set `bin_dir` \
                 to its directory"
            )
        })
}

/// A running server of a drill; dropping it kills its process group.
pub struct Server {
    child: tokio::process::Child,
    pgid: i32,
    /// The log of its stdout and stderr as opened when it was made: read
    /// through this, never by its path (the server's user could put a
    /// link there).
    reader: std::fs::File,
    /// The program, for messages.
    pub program: String,
}

/// Start `argv` as `owner` in `cwd`, its output appended to `log` (a new
/// file in the scratch directory).
pub fn start(argv: &[String], owner: Owner, cwd: &Path, log: &Path) -> Result<Server, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let file = std::fs::OpenOptions::new()
        .create_new(true)
        // Appending: the reader below shares the file offset (and reads
        // through this same open file, so it must be readable).
        .read(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(log)
        .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
            .map_err(|e| format!("cannot hand {} to the owner: {e}", log.display()))?;
    }
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let reader = file.try_clone().map_err(|e| e.to_string())?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Forked by the lasting thread, so that PDEATHSIG means the agent died.
    let child = super::forker::spawn(command).map_err(|e| format!("cannot run {program}: {e}"))?;
    let pgid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| format!("{program} exited at once"))?;
    Ok(Server {
        child,
        pgid,
        reader,
        program: program.clone(),
    })
}

impl Server {
    /// `Some(why)` when the server has exited (with its status).
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.program)),
            Ok(None) => None,
            Err(e) => Some(format!("{}: {e}", self.program)),
        }
    }

    /// The last lines of its log (at most `lines`, from its last 64 KiB)
    /// that `pick` accepts, for messages.
    pub fn log_lines(&self, pick: impl Fn(&str) -> bool, lines: usize) -> Vec<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut text = String::new();
        let mut f = &self.reader;
        // Reads move the shared offset; the server appends all the same.
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if f.seek(SeekFrom::Start(len.saturating_sub(64 << 10)))
            .is_ok()
        {
            let mut bytes = Vec::new();
            let _ = f.take(64 << 10).read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let mut picked: Vec<String> = text
            .lines()
            .rev()
            .filter(|l| pick(l))
            .take(lines)
            .map(|l| l.trim().to_string())
            .collect();
        picked.reverse();
        picked
    }

    /// SIGTERM, then wait until `deadline` (at most [`STOP_GRACE`]); the
    /// group is killed after. Ok when it stopped by itself with success.
    pub async fn stop(mut self, deadline: Instant) -> Result<(), String> {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe {
            libc::kill(self.pgid, libc::SIGTERM);
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(STOP_GRACE);
        let stopped = tokio::time::timeout(left, self.child.wait()).await;
        self.kill_group();
        let _ = self.child.wait().await;
        match stopped {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("{} stopped with {status}", self.program)),
            Ok(Err(e)) => Err(format!("{}: {e}", self.program)),
            Err(_) => Err(format!(
                "{} did not stop within {left:?} of SIGTERM; killed",
                self.program
            )),
        }
    }

    fn kill_group(&self) {
        // SAFETY: as above; a negative pid names the group it leads.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_group();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_found_in_bin_dir_or_the_path_and_its_absence_named() {
        let found = find(Path::new(""), "sh").unwrap();
        assert!(found.is_absolute(), "{}", found.display());
        let err = find(Path::new("/nonexistent/bin"), "mariadbd").unwrap_err();
        assert!(err.contains("`bin_dir` /nonexistent/bin"), "{err}");
        let err = find(Path::new(""), "no-such-server-program").unwrap_err();
        assert!(err.contains("set `bin_dir`"), "{err}");
    }

    #[tokio::test]
    async fn a_server_that_ignores_sigterm_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let script = format!(
            "trap '' TERM; (sleep 3; touch {}) & echo started; sleep 60",
            marker.display()
        );
        let argv: Vec<String> = vec!["sh".into(), "-c".into(), script];
        let mut server = start(&argv, None, dir.path(), &dir.path().join("log")).unwrap();
        // Stopped only once the trap is set (it is before the echo).
        while server.log_lines(|l| l.contains("started"), 1).is_empty() {
            assert!(server.exited().is_none());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let err = server
            .stop(Instant::now() + Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(err.contains("did not stop"), "{err}");
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!marker.exists(), "a child outlived the stop");
    }
}
