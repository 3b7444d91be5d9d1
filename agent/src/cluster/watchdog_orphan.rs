//! The watchdog an earlier run of the agent left armed. An agent killed
//! while it leads leaves its watchdog running with the old deadline (that
//! is its job: the server is fenced before the lease can expire). When the
//! agent is back before that deadline and takes its key back under a new
//! lease, two watchdogs would guard the server, and the old one would stop
//! it at the old deadline while the new run leads (issue 30: "a watchdog
//! left by a crashed agent stays armed with the old deadline and later
//! stops the server the restarted agent leads").
//!
//! So every watchdog the agent starts is written down beside its record
//! (`state_dir/cluster-watchdog.pid`: its pid and its start time, so that
//! a reused pid is never taken for it), the next run finds it at start,
//! and stops it (SIGKILL, through a pidfd) once its own watchdog runs
//! armed: never two armed, and never a moment with none while the server
//! may take writes. A run that does not lead leaves it alone: it fences
//! the server at its deadline, as it was started to.

use super::Pinned;
use std::path::Path;

/// The file, beside the watchdog's record, that names the running one.
pub const PID_FILE: &str = "cluster-watchdog.pid";

/// Write down the watchdog `pid` just started, beside `record`, crash-safely
/// and without following a link. Failure is logged: the next run then
/// cannot find this watchdog, which fences at its deadline as before.
pub(super) fn remember(record: &Path, pid: u32) {
    let Some(dir) = record.parent() else { return };
    let Some(started) = start_time(pid) else {
        return;
    };
    let written = crate::safefs::OwnedDir::open(dir)
        .and_then(|dir| dir.replace(PID_FILE, format!("{pid} {started}\n").as_bytes(), 0o600));
    if let Err(e) = written {
        tracing::warn!(
            "cluster: cannot write {}: {e} (a later run of the agent will not find this watchdog)",
            dir.join(PID_FILE).display()
        );
    }
}

/// The watchdog an earlier run left, pinned: its pid and start time.
pub(super) struct Orphan {
    pinned: Pinned,
    pub(super) pid: u32,
    started: u64,
}

/// The watchdog an earlier run left for the server of `data_dir`, if it
/// still runs (the pid written beside `record`, started when written, and
/// running `watchdog --data-dir DATA_DIR`), pinned.
pub(super) fn find(record: &Path, data_dir: &Path) -> Option<Orphan> {
    let file = record.with_file_name(PID_FILE);
    let text = std::fs::read_to_string(file).ok()?;
    let (pid, started) = parse(&text)?;
    let pinned = Pinned::open(i32::try_from(pid).ok()?);
    // Checked after the pidfd was opened: the pinned process is this one.
    let orphan = Orphan {
        pinned,
        pid,
        started,
    };
    orphan.still(data_dir).then_some(orphan)
}

impl Orphan {
    /// Still that watchdog: alive, started when written down, running
    /// `watchdog --data-dir DATA_DIR`. Checked again right before the
    /// kill, which may come long after [`find`]: without a pidfd (a kernel
    /// before 5.3, a seccomp filter) the signal goes by pid.
    fn still(&self, data_dir: &Path) -> bool {
        let pid = self.pid;
        start_time(pid) == Some(self.started)
            && std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| is_watchdog_of(&cmdline, data_dir))
            && self.pinned.alive()
    }
}

/// Stop the earlier run's watchdog (SIGKILL: it must not fire), if it is
/// still that watchdog, waiting up to 100 ms for it to be gone (a SIGKILL
/// takes effect at once; the loop is not held longer).
pub(super) fn stop(orphan: &Orphan, data_dir: &Path) {
    let pid = orphan.pid;
    if !orphan.still(data_dir) {
        return;
    }
    match orphan.pinned.signal(libc::SIGKILL) {
        Ok(()) => {
            let sent = std::time::Instant::now();
            while orphan.pinned.alive() && sent.elapsed() < std::time::Duration::from_millis(100) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            tracing::info!(
                pid,
                "cluster: stopped the watchdog an earlier run of the agent left armed (this run's own watchdog is armed)"
            );
        }
        Err(e) => tracing::warn!(
            pid,
            "cluster: cannot stop the watchdog an earlier run of the agent left ({e}): it fences the server at that run's deadline"
        ),
    }
}

/// `PID STARTTIME` as written by [`remember`].
fn parse(text: &str) -> Option<(u32, u64)> {
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let started = words.next()?.parse().ok()?;
    words.next().is_none().then_some((pid, started))
}

/// Process `pid`'s start time (`/proc/PID/stat` field 22, clock ticks
/// since boot), which a reused pid does not share.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    start_time_of(&stat)
}

fn start_time_of(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: count from the
    // last `)`, after which field 3 (state) comes first.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a `/proc/PID/cmdline` (NUL-separated) is `… watchdog …
/// --data-dir DATA_DIR …`.
fn is_watchdog_of(cmdline: &[u8], data_dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let wanted = data_dir.as_os_str().as_bytes();
    args.get(1) == Some(&&b"watchdog"[..])
        && args
            .windows(2)
            .any(|pair| pair[0] == b"--data-dir" && pair[1] == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watchdog_is_named_by_its_pid_its_start_and_its_arguments() {
        assert_eq!(parse("4242 123456\n"), Some((4242, 123456)));
        assert_eq!(parse("4242"), None);
        assert_eq!(parse("4242 12 x"), None);
        let stat = "77 (a (b) c) S 1 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(start_time_of(stat), Some(98765));
        let dir = Path::new("/var/lib/postgresql/15/main");
        let ours = b"/usr/bin/watchpost\0watchdog\0--program\0postgres\0--data-dir\0/var/lib/postgresql/15/main\0";
        assert!(is_watchdog_of(ours, dir));
        let other_dir = b"/usr/bin/watchpost\0watchdog\0--data-dir\0/srv/other\0";
        assert!(!is_watchdog_of(other_dir, dir));
        let not_one = b"/usr/bin/watchpost\0run\0--data-dir\0/var/lib/postgresql/15/main\0";
        assert!(!is_watchdog_of(not_one, dir));
        // This process: its own start time, read back.
        let me = std::process::id();
        assert!(start_time(me).is_some());
        assert!(find(Path::new("/nonexistent/cluster-watchdog.json"), dir).is_none());
    }
}
