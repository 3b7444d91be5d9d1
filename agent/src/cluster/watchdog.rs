//! Self-fencing that does not depend on the agent being alive: while this
//! node leads, the agent keeps a small separate process, `watchpost
//! watchdog`, fed through a pipe with the deadline of its lease (the same
//! one the agent keeps: `ttl` minus a third from before the last good
//! renewal was sent, plus a sixth of `ttl` so that the agent's own stop
//! comes first). If no newer deadline arrives in time — the agent is
//! frozen (SIGSTOP, a stuck disk), its loop is stuck, or it died without
//! stepping down — the watchdog stops the local PostgreSQL at once
//! (SIGQUIT to the postmaster, PostgreSQL's immediate shutdown), still
//! half a third of the lease before etcd can expire it and a standby can
//! take over, and records why.
//!
//! It is a process of its own (its own session too), so that stopping the
//! agent or its process group does not stop it. The agent disarms it when
//! it gives the key up (its server stopped first); on a clean agent exit
//! the pipe closes while disarmed and the watchdog exits without touching
//! the server. `/dev/watchdog` (a kernel watchdog that resets the machine,
//! as Patroni uses) is not used.
//!
//! Protocol, one line each: `arm NS` (deadline, CLOCK_BOOTTIME
//! nanoseconds, shared by every process of the machine, and counting the
//! time it was suspended: [`super::clock`]) and `disarm`. Armed, it reads
//! the clock at least every [`super::clock::WATCHDOG_WAKE`], so that a
//! deadline that passed while the machine slept is acted on at once.

use super::clock;
use super::quiet::Level;
use crate::pgserver::postmaster::ServerProcess;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The exit code of a watchdog that stopped the server.
pub const FENCED: i32 = 2;

/// `watchpost watchdog` (started by the agent, not by hand).
#[derive(clap::Args, Debug)]
pub struct WatchdogArgs {
    /// The data directory of the server to stop.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Where to write why it stopped the server (JSON).
    #[arg(long, value_name = "FILE")]
    pub record: PathBuf,
    /// The pid file (in the data directory) that names the server.
    #[arg(long, value_name = "NAME", default_value = "postmaster.pid")]
    pub pid_file: String,
    /// The server's program names (`/proc/PID/comm`, matched exactly).
    #[arg(long = "program", value_name = "NAME", default_values_t = ["postgres".to_string(), "postmaster".to_string()])]
    pub programs: Vec<String>,
    /// The signal number that stops the server at once (SIGKILL after 2 s).
    #[arg(long, value_name = "SIGNAL", default_value_t = libc::SIGQUIT)]
    pub stop_signal: i32,
}

impl WatchdogArgs {
    /// The server the watchdog guards.
    fn server(&self) -> ServerProcess {
        ServerProcess {
            pid_file: self.pid_file.clone(),
            programs: self.programs.clone(),
            stop_signal: self.stop_signal,
        }
    }
}

/// `at` as CLOCK_BOOTTIME nanoseconds (the watchdog's clock).
fn instant_ns(at: Instant) -> u64 {
    let now = Instant::now();
    clock::boottime_in(
        at.checked_duration_since(now),
        now.saturating_duration_since(at),
    )
}

/// The watchdog process itself: read the agent's lines, stop the server
/// when the deadline passes. Its exit code: 0 (disarmed, agent gone),
/// [`FENCED`] (the server was stopped), 3 (bad use).
pub fn serve(args: WatchdogArgs) -> i32 {
    // Its pages stay in memory (a swapped-out watchdog is a slow one).
    // SAFETY: mlockall only changes how this process's current pages are
    // kept; a failure (no privilege) leaves it as it was.
    unsafe { libc::mlockall(libc::MCL_CURRENT) };
    let server = args.server();
    let stdin = std::io::stdin();
    let fd = stdin.as_raw_fd();
    let mut armed: Option<u64> = None;
    // The postmaster as found when armed, pinned: fenced even if its
    // state cannot be told any more when the deadline passes.
    let mut guarded: Option<(Pinned, i32)> = None;
    let mut open = true;
    let mut pending = Vec::new();
    loop {
        let now = clock::boottime_ns();
        if let Some(deadline) = armed
            && now >= deadline
        {
            return fire(
                &args,
                &server,
                guarded.as_ref(),
                "no heartbeat from the agent before the lease deadline",
            );
        }
        if !open {
            match armed {
                None => return 0,
                Some(deadline) => {
                    let left = Duration::from_nanos(deadline - now);
                    std::thread::sleep(left.min(clock::WATCHDOG_WAKE));
                    continue;
                }
            }
        }
        // Never longer than WATCHDOG_WAKE while armed: poll(2) counts on
        // CLOCK_MONOTONIC, which stops while the machine is suspended.
        let wake = clock::WATCHDOG_WAKE.as_millis() as u64;
        let wait_ms = armed.map_or(-1, |d| ((d - now) / 1_000_000 + 1).min(wake) as i32);
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, owned here, for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, wait_ms) };
        if ready <= 0 {
            continue; // timeout (checked at the top) or EINTR
        }
        // Straight from the descriptor (no buffering that `poll` cannot see).
        let mut buffer = [0u8; 4096];
        // SAFETY: read(2) into a buffer owned here, at most its length.
        let n = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        match n {
            0 => open = false,
            n if n < 0 => {
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    open = false;
                }
            }
            n => pending.extend_from_slice(&buffer[..n as usize]),
        }
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            match line.trim().split_once(' ') {
                Some(("arm", ns)) => match ns.parse::<u64>() {
                    Ok(ns) => {
                        armed = Some(ns);
                        if !guarded.as_ref().is_some_and(|(p, _)| p.alive()) {
                            guarded = pin_server(&args.data_dir, &server);
                        }
                    }
                    Err(_) => eprintln!("watchpost watchdog: ignored a bad line: {line:?}"),
                },
                _ if line.trim() == "disarm" => armed = None,
                _ => eprintln!("watchpost watchdog: ignored a bad line: {line:?}"),
            }
        }
    }
}

/// Stop the server and record why; the exit code.
fn fire(
    args: &WatchdogArgs,
    server: &ServerProcess,
    guarded: Option<&(Pinned, i32)>,
    why: &str,
) -> i32 {
    let outcome = fence_guarded(&args.data_dir, server, guarded);
    let message = match &outcome {
        Ok((true, done)) => format!("the watchdog stopped the local server ({why}): {done}"),
        Ok((false, done)) => format!("the watchdog fired ({why}): {done}"),
        Err(e) => format!("the watchdog could not stop the local server ({why}): {e}"),
    };
    eprintln!("watchpost watchdog: {message}");
    let record = serde_json::json!({
        "at": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "data_dir": args.data_dir,
        "stopped": matches!(outcome, Ok((true, _))),
        "message": message,
    });
    if let Err(e) = write_record(&args.record, &record.to_string()) {
        eprintln!(
            "watchpost watchdog: cannot write {}: {e}",
            args.record.display()
        );
    }
    FENCED
}

fn write_record(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// Immediate shutdown of the postmaster `postmaster.pid` names (read
/// without following a link), after checking that the process is that
/// server: it runs in the data directory and belongs to the directory's
/// owner (a reused pid is left alone), and with the process pinned by a
/// pidfd from before the checks, so no other process can receive the
/// signal. SIGKILL if it is not gone in 2 s.
/// `(whether it signalled the server, what happened)`.
pub fn fence(data_dir: &Path, server: &ServerProcess) -> Result<(bool, String), String> {
    fence_guarded(data_dir, server, None)
}

/// The server of `data_dir` pinned, if it runs and is that server.
fn pin_server(data_dir: &Path, server: &ServerProcess) -> Option<(Pinned, i32)> {
    use crate::pgserver::postmaster::{Postmaster, probe_server};
    let Postmaster::Running(pid) = probe_server(data_dir, server).state else {
        return None;
    };
    let pid = i32::try_from(pid).ok().filter(|pid| *pid > 1)?;
    let pinned = Pinned::open(pid);
    (pinned.alive() && is_server(data_dir, server, pid).is_ok()).then_some((pinned, pid))
}

/// Whether `pid` is the server of `data_dir`: it works there and belongs
/// to the directory's owner.
fn is_server(data_dir: &Path, server: &ServerProcess, pid: i32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let dir =
        std::fs::canonicalize(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
        .map_err(|e| format!("cannot read the working directory of pid {pid}: {e}"))?;
    let owner = std::fs::metadata(&dir).map_err(|e| e.to_string())?.uid();
    let uid = std::fs::metadata(format!("/proc/{pid}"))
        .map_err(|e| e.to_string())?
        .uid();
    if cwd != dir || uid != owner {
        return Err(format!(
            "pid {pid} from {} is not this server (it runs in {} as uid {uid}): not signalled",
            server.pid_file,
            cwd.display()
        ));
    }
    Ok(())
}

/// [`fence`], failing closed: when whether the server runs cannot be
/// told, the postmaster pinned when the watchdog was armed (`guarded`)
/// is stopped if it still runs.
fn fence_guarded(
    data_dir: &Path,
    server: &ServerProcess,
    guarded: Option<&(Pinned, i32)>,
) -> Result<(bool, String), String> {
    use crate::pgserver::postmaster::{Postmaster, probe_server};
    // The same three-valued look as the agent's: a postmaster.pid that
    // cannot be used is not a stopped server (it is looked for in /proc).
    let seen = probe_server(data_dir, server);
    let pid = match seen.state {
        Postmaster::Stopped => {
            return Ok((
                false,
                match seen.fault {
                    None => format!("no {}: the server was not running", server.pid_file),
                    Some(fault) => {
                        format!("no server process works in the data directory ({fault})")
                    }
                },
            ));
        }
        Postmaster::Unknown(why) => {
            return match guarded {
                Some((pinned, pid)) if pinned.alive() => Ok(quit(pinned, *pid, server)),
                Some((_, pid)) => Ok((
                    false,
                    format!(
                        "whether the server runs cannot be told ({why}); the postmaster pinned when armed (pid {pid}) is gone"
                    ),
                )),
                None => Err(format!(
                    "whether the server runs cannot be told, and no postmaster was pinned when armed: it cannot be stopped: {why}"
                )),
            };
        }
        Postmaster::Running(pid) => pid,
    };
    let Some(pid) = i32::try_from(pid).ok().filter(|pid| *pid > 1) else {
        return Err(format!(
            "{} names pid {pid}: not signalled",
            server.pid_file
        ));
    };
    // Pinned before the checks: the signals below reach the process
    // checked, or none (a pid reused meanwhile is never signalled).
    let pinned = Pinned::open(pid);
    if !pinned.alive() {
        return Ok((
            false,
            format!("the postmaster (pid {pid}) was already gone"),
        ));
    }
    is_server(data_dir, server, pid)?;
    if let Err(e) = pinned.signal(server.stop_signal) {
        return Err(format!(
            "signal {} to the server (pid {pid}): {e}",
            server.stop_signal
        ));
    }
    Ok(wait_gone(&pinned, pid, server.stop_signal))
}

/// The stop signal to the pinned server, then [`wait_gone`].
fn quit(pinned: &Pinned, pid: i32, server: &ServerProcess) -> (bool, String) {
    if let Err(e) = pinned.signal(server.stop_signal) {
        return (
            false,
            format!(
                "signal {} to the pinned server (pid {pid}): {e}",
                server.stop_signal
            ),
        );
    }
    wait_gone(pinned, pid, server.stop_signal)
}

/// Wait 2 s for the signalled server to exit, then SIGKILL it.
fn wait_gone(pinned: &Pinned, pid: i32, signal: i32) -> (bool, String) {
    let sent = Instant::now();
    while sent.elapsed() < Duration::from_secs(2) {
        if !pinned.alive() {
            return (
                true,
                format!(
                    "immediate shutdown ({} to the server, pid {pid}) done in {} ms",
                    signal_name(signal),
                    sent.elapsed().as_millis()
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Its backends exit when they see it gone.
    let _ = pinned.signal(libc::SIGKILL);
    (
        true,
        format!(
            "the server (pid {pid}) ignored {} for 2 s: killed (SIGKILL)",
            signal_name(signal)
        ),
    )
}

/// `SIGQUIT`, `SIGKILL`, `SIGTERM`, or the number.
fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// The agent's side: the running watchdog, if any, and its feed.
pub struct Watchdog {
    data_dir: PathBuf,
    server: ServerProcess,
    record: PathBuf,
    child: Option<(Child, ChildStdin)>,
    /// The last deadline sent (None: disarmed).
    sent: Option<Instant>,
    /// Failures to start or feed it, logged once while they last.
    faults: super::quiet::Faults,
    /// The watchdog an earlier run of the agent left, still running:
    /// stopped once this run's runs armed ([`orphan`]).
    orphan: Option<orphan::Orphan>,
}

impl Watchdog {
    /// The watchdog of the PostgreSQL server of `data_dir`.
    pub fn new(data_dir: PathBuf, record: PathBuf) -> Watchdog {
        Watchdog::for_server(data_dir, ServerProcess::postgres(), record)
    }

    /// The watchdog of the server (any engine: `server` names its pid
    /// file, programs and stop signal) of `data_dir`; `record`: where it
    /// writes why it fired.
    pub fn for_server(data_dir: PathBuf, server: ServerProcess, record: PathBuf) -> Watchdog {
        let orphan = orphan::find(&record, &data_dir);
        if let Some(found) = &orphan {
            tracing::warn!(
                pid = found.pid,
                "cluster: an earlier run of the agent left its watchdog running: it fences the server at that run's deadline unless this run leads first (then it is stopped)"
            );
        }
        Watchdog {
            data_dir,
            server,
            record,
            child: None,
            sent: None,
            faults: Default::default(),
            orphan,
        }
    }

    /// Keep the watchdog in step with the lease: armed with `until` while
    /// leading, disarmed otherwise. What it did meanwhile, if it fired
    /// (for the audit log): whether it stopped the server, and its record.
    pub fn sync(&mut self, until: Option<Instant>) -> Option<(bool, String)> {
        let fired = self.reap();
        if until == self.sent {
            return fired;
        }
        let line = match until {
            Some(at) => {
                if self.child.is_none() {
                    let spawned = self.spawn();
                    self.faults
                        .outcome(Level::Error, "start the watchdog", &spawned);
                    if spawned.is_err() {
                        return fired;
                    }
                }
                format!("arm {}\n", instant_ns(at))
            }
            None if self.child.is_none() => {
                self.sent = None;
                return fired;
            }
            None => "disarm\n".into(),
        };
        if let Some((_, stdin)) = self.child.as_mut() {
            const FEED: &str = "feed the watchdog";
            match stdin.write(line.as_bytes()) {
                Ok(n) if n == line.len() => {
                    self.sent = until;
                    self.faults.worked(FEED);
                    // This run's watchdog is armed: the earlier run's goes.
                    if until.is_some()
                        && let Some(left) = self.orphan.take()
                    {
                        orphan::stop(&left, &self.data_dir);
                    }
                }
                Ok(_) => self.faults.failed(Level::Warn, FEED, "its pipe is full"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.faults.failed(Level::Warn, FEED, "its pipe is full")
                }
                Err(e) => {
                    self.faults.failed(Level::Warn, FEED, &e.to_string());
                    self.child = None;
                    self.sent = None;
                }
            }
        }
        fired
    }

    /// Whether a watchdog process runs armed with the last deadline sent.
    pub fn armed(&self) -> bool {
        self.child.is_some() && self.sent.is_some()
    }

    /// A watchdog that exited after firing: whether it stopped the
    /// server, and what it recorded.
    fn reap(&mut self) -> Option<(bool, String)> {
        let (child, _) = self.child.as_mut()?;
        let status = child.try_wait().ok()??;
        self.child = None;
        self.sent = None;
        if status.code() != Some(FENCED) {
            tracing::warn!("cluster: the watchdog exited ({status})");
            return None;
        }
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        let record = serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default();
        let message = record["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| "the watchdog fired".into());
        Some((record["stopped"] == true, message))
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        use std::os::unix::process::CommandExt;
        // This very binary, also when a package upgrade replaced the file.
        let mut command = Command::new("/proc/self/exe");
        command.arg("watchdog");
        for program in &self.server.programs {
            command.arg("--program").arg(program);
        }
        command
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--record")
            .arg(&self.record)
            .arg("--pid-file")
            .arg(&self.server.pid_file)
            .arg("--stop-signal")
            .arg(self.server.stop_signal.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: only setsid(2), async-signal-safe, between fork and exec:
        // its own session, so a signal to the agent's group misses it.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no pipe"))?;
        // The agent never blocks on a watchdog that does not read.
        // SAFETY: fcntl on the pipe's own descriptor.
        unsafe {
            let flags = libc::fcntl(stdin.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(stdin.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        tracing::info!(pid = child.id(), "cluster: watchdog started");
        orphan::remember(&self.record, child.id());
        self.child = Some((child, stdin));
        Ok(())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // A clean drop (the loop ended, the key given up): closing the
        // pipe while disarmed lets it exit; while armed it stays and
        // fences at the deadline.
        if let Some((mut child, stdin)) = self.child.take() {
            drop(stdin);
            if self.sent.is_none() {
                let _ = child.wait();
            }
        }
    }
}

#[path = "watchdog_orphan.rs"]
mod orphan;
#[path = "watchdog_pinned.rs"]
mod pinned;
use pinned::Pinned;

#[cfg(test)]
#[path = "watchdog_tests.rs"]
mod tests;
