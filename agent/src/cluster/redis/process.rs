//! Starting and stopping the local `redis-server` of a cluster member:
//! started from its own configuration file (always as a replica, see
//! [`super::conf`]) as the data directory's owner, never as root; stopped
//! cleanly (`SHUTDOWN`, which waits for the replicas to catch up) or at
//! once ([`stop_immediate`]: `SHUTDOWN NOSAVE NOW`, then SIGKILL through
//! the watchdog's checked, pinned signal), and in both cases read back
//! gone.

use super::conf::{CONFIG_FILE, PID_FILE};
use super::session::Local;
use crate::pgserver::pgdata::owner_if_root;
use crate::pgserver::postmaster::{Postmaster, ServerProcess, probe_server};
use crate::process::{self, CommandSpec};
use crate::redis::Error;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a start may take until the server answers (loading a large
/// RDB file takes a while).
pub const START_WAIT: Duration = Duration::from_secs(60);
/// How long a clean shutdown may take (Redis waits up to its
/// `shutdown-timeout`, 10 s by default, for lagging replicas).
pub const STOP_WAIT: Duration = Duration::from_secs(30);

/// How long an immediate stop waits for the server's answer to
/// `SHUTDOWN NOSAVE NOW` (a frozen server never answers), then for it to
/// be gone, before it is killed.
pub const IMMEDIATE_WAIT: Duration = Duration::from_millis(700);

/// How the server's process is found and stopped: `redis.pid` in the data
/// directory, the program `redis-server` (`redis-check-*` are not
/// servers), SIGKILL (Redis has no faster clean stop; its data is the
/// replicas').
pub fn server_process() -> ServerProcess {
    ServerProcess {
        pid_file: PID_FILE.into(),
        programs: vec!["redis-server".into(), "valkey-server".into()],
        stop_signal: libc::SIGKILL,
    }
}

/// Run `redis-server DATA_DIR/redis.conf` (as the directory's owner when
/// the agent is root). The server daemonizes: this returns once it forked.
pub async fn launch(program: &Path, data_dir: &Path) -> Result<(), String> {
    let user = owner_if_root(data_dir).map_err(|e| {
        e.replace("PostgreSQL's programs", "redis-server")
            .replace("chown -R postgres:", "chown -R redis:")
    })?;
    let spec = CommandSpec {
        argv: vec![
            program.display().to_string(),
            data_dir.join(CONFIG_FILE).display().to_string(),
        ],
        timeout: Duration::from_secs(20),
        user,
        ..CommandSpec::default()
    };
    let out = process::run(&spec).await?;
    if out.success() {
        Ok(())
    } else {
        Err(format!("redis-server did not start: {}", out.summary()))
    }
}

/// Wait until the process of `data_dir` is gone (known stopped), within
/// `within`; an error says what is known.
pub async fn wait_stopped(data_dir: &Path, within: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match probe_server(data_dir, &server_process()).state {
            Postmaster::Stopped => return Ok(()),
            state if started.elapsed() >= within => {
                return Err(format!(
                    "the server is not known to be stopped after {within:?}: {state:?}"
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// SIGKILL the server of `data_dir` (checked to be that server, pinned),
/// then make sure it is gone.
pub async fn kill(data_dir: &Path) -> Result<String, String> {
    let dir = data_dir.to_path_buf();
    let done = tokio::task::spawn_blocking(move || {
        crate::cluster::watchdog::fence(&dir, &server_process())
    })
    .await
    .map_err(|e| format!("the stop did not finish: {e}"))??;
    wait_stopped(data_dir, Duration::from_secs(5)).await?;
    Ok(done.1)
}

/// Stop the server of `data_dir` at once, its data left to the replicas:
/// `SHUTDOWN NOSAVE NOW` (`NOW`: no wait for lagging replicas; a server
/// before Redis 7.0 gets `SHUTDOWN NOSAVE`), then, if it does not answer
/// or is not gone within [`IMMEDIATE_WAIT`], SIGKILL by its pid file.
/// `Ok` (how) only once it is known stopped.
pub async fn stop_immediate(local: &Local, data_dir: &Path) -> Result<String, String> {
    let asked = match local
        .call(&["SHUTDOWN", "NOSAVE", "NOW"], IMMEDIATE_WAIT)
        .await
    {
        Err(Error::Server(e)) if e.to_ascii_lowercase().contains("syntax") => {
            local.call(&["SHUTDOWN", "NOSAVE"], IMMEDIATE_WAIT).await
        }
        other => other,
    };
    // The server closes the connection as it exits: the answer is an
    // error then; one that never came (a frozen server) is not waited for.
    let exiting = !matches!(asked, Err(Error::Timeout(_)));
    if exiting && wait_stopped(data_dir, IMMEDIATE_WAIT).await.is_ok() {
        return Ok("SHUTDOWN NOSAVE NOW".into());
    }
    let why = match &asked {
        Ok(reply) => format!("it answered {reply:?}"),
        Err(e) => e.to_string(),
    };
    let killed = kill(data_dir).await?;
    Ok(format!(
        "SHUTDOWN NOSAVE NOW did not stop it ({why}): {killed}"
    ))
}
