//! The `mariadbd` process of a member: whether it runs (its pid file in
//! the data directory, three-valued by the rules every engine shares:
//! [`crate::pgserver::postmaster::probe_server`]), starting it read-only
//! with the member's own option file, and stopping it — `Ok` only once it
//! is known to be stopped.

use crate::config::ClusterSpec;
use crate::pgserver::postmaster::{self, Postmaster, Probe, ServerProcess};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// The pid file the agent names on `mariadbd`'s command line (and the
/// member's option file should name too): `DATA_DIR/mariadbd.pid`.
pub const PID_FILE: &str = "mariadbd.pid";

/// How a clean stop (SIGTERM) may take before SIGKILL follows.
const CLEAN_STOP: Duration = Duration::from_secs(30);
/// How long a killed server may take to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(10);

/// MariaDB's server process: `mariadbd.pid`, `mariadbd` (or `mysqld`),
/// stopped at once by SIGKILL (InnoDB recovers at the next start).
pub fn server_process() -> ServerProcess {
    ServerProcess {
        pid_file: PID_FILE.into(),
        programs: vec!["mariadbd".into(), "mysqld".into()],
        stop_signal: libc::SIGKILL,
    }
}

/// Whether `mariadbd` runs for `data_dir`: running, stopped or unknown.
pub fn probe(data_dir: &Path) -> Probe {
    postmaster::probe_server(data_dir, &server_process())
}

/// The command line that starts the member's server: its option file
/// first (`mariadbd` reads `--defaults-file` only there), then what the
/// agent insists on: the data directory, the pid file, `read_only = ON`
/// (only the leader's agent turns it off), and the data directory's
/// owner as the user when the agent is root.
pub fn command_line(spec: &ClusterSpec, owner: Option<u32>) -> Result<Vec<String>, String> {
    let defaults = spec.defaults_file.as_ref().ok_or(
        "[cluster] `defaults_file` is not set: mariadbd is started with the member's own option file",
    )?;
    let mut argv = vec![
        spec.bin_dir.join("mariadbd").display().to_string(),
        format!("--defaults-file={}", defaults.display()),
        format!("--datadir={}", spec.data_dir.display()),
        format!("--pid-file={}", pid_path(&spec.data_dir).display()),
        "--read-only=ON".into(),
    ];
    match owner {
        // mariadbd runs as root only when told `--user=root` by name.
        Some(0) => argv.push("--user=root".into()),
        Some(uid) => argv.push(format!("--user={uid}")),
        None => {}
    }
    Ok(argv)
}

fn pid_path(data_dir: &Path) -> PathBuf {
    data_dir.join(PID_FILE)
}

/// The owner of the data directory, when the agent is root (`mariadbd`
/// refuses to run as root unless told a user).
fn owner(data_dir: &Path) -> Result<Option<u32>, String> {
    use std::os::unix::fs::MetadataExt;
    if !crate::safefs::is_root() {
        return Ok(None);
    }
    let meta = std::fs::symlink_metadata(data_dir).map_err(|e| {
        format!(
            "cannot look at the data directory {}: {e}",
            data_dir.display()
        )
    })?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", data_dir.display()));
    }
    Ok(Some(meta.uid()))
}

/// Start `mariadbd` detached (its own process group, so that stopping the
/// agent does not stop it) and wait, up to `within`, until its pid file
/// names a live process and `answers` says it takes sessions. The child is
/// reaped by a task of its own.
pub async fn start<F, Fut>(spec: &ClusterSpec, within: Duration, answers: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    match probe(&spec.data_dir).state {
        Postmaster::Stopped => {}
        Postmaster::Running(pid) => {
            return Err(format!("mariadbd already runs (pid {pid})"));
        }
        Postmaster::Unknown(why) => {
            return Err(format!("whether mariadbd runs cannot be told: {why}"));
        }
    }
    let argv = command_line(spec, owner(&spec.data_dir)?)?;
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(&spec.data_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", argv[0]))?;
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "mariadbd exited at start ({status}); see its error log (log_error in {})",
                argv[1].trim_start_matches("--defaults-file=")
            ));
        }
        if matches!(probe(&spec.data_dir).state, Postmaster::Running(_)) && answers().await {
            break;
        }
        if started.elapsed() > within {
            return Err(format!(
                "mariadbd did not take sessions within {within:?} (it may still be recovering)"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(())
}

/// Stop the server: `fast` is a clean shutdown (SIGTERM, then SIGKILL
/// after [`CLEAN_STOP`]), anything else SIGKILL at once. `Ok` only once
/// it is known stopped; a state that cannot be told is an error.
pub async fn stop(data_dir: &Path, mode: &str) -> Result<(), String> {
    let pid = match probe(data_dir).state {
        Postmaster::Stopped => return Ok(()),
        Postmaster::Running(pid) => pid,
        Postmaster::Unknown(why) => {
            return Err(format!(
                "whether mariadbd runs cannot be told, so it cannot be stopped: {why}"
            ));
        }
    };
    let first = if mode == "fast" {
        libc::SIGTERM
    } else {
        libc::SIGKILL
    };
    signal(pid, first)?;
    let started = Instant::now();
    let mut killed = first == libc::SIGKILL;
    loop {
        match probe(data_dir).state {
            Postmaster::Stopped => return Ok(()),
            Postmaster::Running(now) if now != pid => {
                return Err(format!(
                    "another mariadbd (pid {now}) runs in the data directory"
                ));
            }
            _ => {}
        }
        if !killed && started.elapsed() > CLEAN_STOP {
            signal(pid, libc::SIGKILL)?;
            killed = true;
        }
        if started.elapsed() > CLEAN_STOP + GONE_WITHIN {
            return Err(match probe(data_dir).state {
                Postmaster::Unknown(why) => {
                    format!("whether mariadbd stopped cannot be told: {why}")
                }
                state => format!("mariadbd (pid {pid}) is not gone after SIGKILL: {state:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(pid: u32, signal: i32) -> Result<(), String> {
    // SAFETY: kill(2) with a pid read from the pid file and checked alive
    // (and a mariadbd process) by the probe just before.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::ESRCH) {
        return Ok(()); // gone meanwhile
    }
    Err(format!("cannot signal mariadbd (pid {pid}): {error}"))
}
