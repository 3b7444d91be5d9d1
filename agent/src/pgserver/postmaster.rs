//! Whether the PostgreSQL server of a data directory runs, as a
//! three-valued answer: running, stopped, or **unknown**. Everything that
//! stops, restarts, fences or gives up the leadership of a server asks
//! here, and "cannot read" is never taken for "stopped": a second hard
//! link on `postmaster.pid` (which the safe reader rightly refuses),
//! EACCES, EIO, EMFILE or a foreign owner make the file unusable, not the
//! server dead. When the file cannot be used, the postmaster is looked for
//! another way — a `postgres` process whose working directory is the data
//! directory (every postmaster and backend chdirs there) — and only a
//! complete look at `/proc` that finds none says "stopped". `kill(pid,
//! 0)` failing with EPERM means the process is alive.

use crate::safefs::OwnedDir;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How the server process of one engine is found from its data
/// directory: the pid file in that directory that names it (first line:
/// the pid) and the program names its processes show in `/proc`. The
/// rules here (three-valued, `/proc` by working directory when the file
/// cannot be used) serve every engine the cluster mode drives; PostgreSQL
/// is [`ServerProcess::postgres`], the default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerProcess {
    /// The pid file's name inside the data directory (no `/`).
    pub pid_file: String,
    /// The server's program names, matched exactly against
    /// `/proc/PID/comm` or its executable's file name (a prefix would let
    /// `mysqld_safe`, a wrapper script, pass for `mysqld`).
    pub programs: Vec<String>,
    /// The signal that stops it at once (PostgreSQL: SIGQUIT, its
    /// immediate shutdown); SIGKILL follows after 2 s.
    pub stop_signal: i32,
}

impl ServerProcess {
    /// PostgreSQL: `postmaster.pid`, `postgres`/`postmaster`, SIGQUIT.
    pub fn postgres() -> ServerProcess {
        ServerProcess {
            pid_file: "postmaster.pid".into(),
            programs: vec!["postgres".into(), "postmaster".into()],
            stop_signal: libc::SIGQUIT,
        }
    }

    /// Whether `name` (a `comm` or an executable's file name) is one of
    /// the server's programs: exactly, or the kernel's 15-byte cut of a
    /// longer one (`comm` keeps `TASK_COMM_LEN - 1` bytes).
    fn is_program(&self, name: &str) -> bool {
        self.programs.iter().any(|p| {
            name == p || (name.len() == COMM_LEN && p.len() > COMM_LEN && p.starts_with(name))
        })
    }
}

/// The bytes of a program name `/proc/PID/comm` keeps.
const COMM_LEN: usize = 15;

impl Default for ServerProcess {
    fn default() -> ServerProcess {
        ServerProcess::postgres()
    }
}

/// What is known of a data directory's postmaster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Postmaster {
    /// A live postmaster (its pid).
    Running(u32),
    /// Known stopped: no `postmaster.pid`, its process gone (or a zombie),
    /// or no server process in the data directory at all.
    Stopped,
    /// Cannot tell (why): never to be taken for stopped.
    Unknown(String),
}

impl Default for Postmaster {
    fn default() -> Postmaster {
        Postmaster::Unknown("not looked at yet".into())
    }
}

impl Postmaster {
    /// Known to be stopped (an unknown state is not).
    pub fn stopped(&self) -> bool {
        matches!(self, Postmaster::Stopped)
    }
}

/// One look at a data directory's postmaster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    pub state: Postmaster,
    /// Why `postmaster.pid` could not be used, when it could not (the
    /// state then comes from `/proc`, or is unknown): a fault to report.
    pub fault: Option<String>,
}

/// Whether a pid is alive, as `kill(pid, 0)` and `/proc` tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
}

/// The decision on `kill(pid, 0)`'s result (`errno` when it failed) and
/// whether `/proc/PID/stat` says zombie: ESRCH is dead, EPERM (someone
/// else's live process) and any other error are alive.
pub fn liveness(kill_errno: Option<i32>, zombie: bool) -> Liveness {
    match kill_errno {
        None if zombie => Liveness::Dead,
        Some(libc::ESRCH) => Liveness::Dead,
        _ => Liveness::Alive,
    }
}

/// `/proc/PID/stat` says zombie (exited, not reaped).
pub fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("Z")
}

/// `pid` alive (signal 0, zombie check).
pub fn pid_liveness(pid: u32) -> Liveness {
    let Ok(raw) = i32::try_from(pid) else {
        return Liveness::Dead;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let errno = if unsafe { libc::kill(raw, 0) } == 0 {
        None
    } else {
        std::io::Error::last_os_error().raw_os_error()
    };
    liveness(errno, is_zombie(pid))
}

/// Whether this process may signal the server of `data_dir`, which runs
/// as the directory's owner: only root or that owner may (`kill(2)`
/// otherwise fails with EPERM), and a server the agent cannot signal is
/// one that neither the agent nor its watchdog can fence. `Err`: why
/// not, with the fix.
pub fn may_signal(data_dir: &Path) -> Result<(), String> {
    let owner = std::fs::metadata(data_dir)
        .map_err(|e| format!("cannot look at {}: {e}", data_dir.display()))?
        .uid();
    let me = rustix::process::geteuid().as_raw();
    if me == 0 || me == owner {
        return Ok(());
    }
    Err(format!(
        "the agent (uid {me}) cannot signal a server run by the owner of {} (uid {owner}), so neither it nor its watchdog could fence it. Fix: run the agent as root or as uid {owner}",
        data_dir.display()
    ))
}

/// What `postmaster.pid` says: `Ok(None)` no file, `Ok(Some(pid))`, or
/// why it cannot be used.
fn pid_file(data_dir: &Path, server: &ServerProcess) -> Result<Option<u32>, String> {
    let name = server.pid_file.as_str();
    let dir = match OwnedDir::open(data_dir) {
        Ok(dir) => dir,
        // No data directory: a server can only run in a removed one
        // (looked for by the caller).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open the data directory: {e}")),
    };
    match dir.read(name, super::pgdata::MAX_CONFIG) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => super::pgdata::parse_pid_file(&String::from_utf8_lossy(&bytes))
            .map(|p| Some(p.pid))
            .ok_or_else(|| format!("{} names no pid", dir.entry(name).display())),
        Err(e) => Err(format!("cannot read {name}: {e}")),
    }
}

/// Look at the postmaster of `data_dir`. No `postmaster.pid`, a missing
/// data directory or a dead pid is "stopped" only after a look at
/// `/proc` finds no server process there (a postmaster whose file was
/// removed, backends orphaned by a killed postmaster still take writes).
pub fn probe(data_dir: &Path) -> Probe {
    probe_server(data_dir, &ServerProcess::postgres())
}

/// [`probe`] for the server of any engine (`server`: its pid file and
/// program names).
pub fn probe_server(data_dir: &Path, server: &ServerProcess) -> Probe {
    let confirm = |why: &str| match find_server_by_cwd(data_dir, server) {
        Ok(Postmaster::Stopped) => Probe {
            state: Postmaster::Stopped,
            fault: None,
        },
        Ok(found) => Probe {
            state: found,
            fault: Some(format!(
                "{why}, yet server processes work in the data directory"
            )),
        },
        Err(e) => Probe {
            state: Postmaster::Unknown(format!("{why}; and {e}")),
            fault: None,
        },
    };
    match pid_file(data_dir, server) {
        Ok(None) => confirm(&format!("no {}", server.pid_file)),
        Ok(Some(pid)) => match pid_liveness(pid) {
            Liveness::Alive => Probe {
                state: Postmaster::Running(pid),
                fault: None,
            },
            Liveness::Dead => confirm(&format!("the postmaster (pid {pid}) is gone")),
        },
        Err(fault) => Probe {
            state: match find_server_by_cwd(data_dir, server) {
                Ok(found) => found,
                Err(e) => Postmaster::Unknown(format!("{fault}; and {e}")),
            },
            fault: Some(fault),
        },
    }
}

/// The postmaster of `data_dir` found in `/proc`: the `postgres` process
/// working in the data directory whose parent does not. `Stopped` only
/// when every process could be looked at; an error when some could not
/// (another user's, without the right to look) or the directory itself
/// cannot be looked at.
pub fn find_by_cwd(data_dir: &Path) -> Result<Postmaster, String> {
    find_server_by_cwd(data_dir, &ServerProcess::postgres())
}

/// [`find_by_cwd`] for the server of any engine.
pub fn find_server_by_cwd(data_dir: &Path, server: &ServerProcess) -> Result<Postmaster, String> {
    let me = rustix::process::geteuid().as_raw();
    let meta = match std::fs::metadata(data_dir) {
        Ok(meta) => meta,
        // Removed: only a server still working in it (its working
        // directory then reads "DIR (deleted)") could run.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return find_in_removed(data_dir, me, server);
        }
        Err(e) => return Err(format!("cannot look at {}: {e}", data_dir.display())),
    };
    // Without root, another user's processes may be hidden (hidepid) or
    // closed to us: nothing found proves nothing.
    let complete_view = me == 0 || meta.uid() == me;
    let target = (meta.dev(), meta.ino());
    let entries = std::fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?;
    let mut found = Vec::new();
    let mut unseen = None;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if !is_server_process(pid, server) {
            continue;
        }
        match std::fs::metadata(format!("/proc/{pid}/cwd")) {
            Ok(cwd) if (cwd.dev(), cwd.ino()) == target => found.push(pid),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // exited
            Err(e) => unseen = Some(format!("cannot look at process {pid}: {e}")),
        }
    }
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let alive: Vec<u32> = found
        .iter()
        .copied()
        .filter(|pid| pid_liveness(*pid) == Liveness::Alive)
        .collect();
    // Backends without their postmaster (it just died) still count.
    let postmaster = alive
        .iter()
        .find(|pid| parent(**pid).is_none_or(|p| !found.contains(&p)))
        .or(alive.first());
    match (postmaster, unseen) {
        (Some(pid), _) => Ok(Postmaster::Running(*pid)),
        (None, Some(why)) => Err(why),
        (None, None) if !complete_view => Err(format!(
            "the agent (uid {me}) cannot see every process of the data directory's owner (uid {})",
            meta.uid()
        )),
        (None, None) => Ok(Postmaster::Stopped),
    }
}

/// Whether process `pid` is a process of `server`: its name (`comm`, or
/// its executable's, for a binary started through a link of another
/// name) is one of the server's program names (PostgreSQL: `postgres` or
/// `postmaster`), exactly.
fn is_server_process(pid: u32, server: &ServerProcess) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if server.is_program(comm.trim()) {
        return true;
    }
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|exe| {
            exe.file_name()
                .map(|n| server.is_program(&n.to_string_lossy()))
        })
        .unwrap_or(false)
}

/// A removed data directory: a server process still working in it, if
/// any (`Stopped` only when root looked at every process).
fn find_in_removed(data_dir: &Path, me: u32, server: &ServerProcess) -> Result<Postmaster, String> {
    let gone = format!("{} (deleted)", data_dir.display());
    let entries = std::fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if is_server_process(pid, server)
            && std::fs::read_link(format!("/proc/{pid}/cwd"))
                .is_ok_and(|cwd| cwd.as_os_str() == gone.as_str())
            && pid_liveness(pid) == Liveness::Alive
        {
            return Ok(Postmaster::Running(pid));
        }
    }
    // Unprivileged (`me` not root), other users' working directories
    // are closed: a missing directory is still taken as no server, as
    // none can be started or promoted there either.
    let _ = me;
    Ok(Postmaster::Stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_results_decide_liveness() {
        let table = [
            (None, false, Liveness::Alive),
            (None, true, Liveness::Dead),
            (Some(libc::ESRCH), false, Liveness::Dead),
            // Someone else's live process: alive, not dead.
            (Some(libc::EPERM), false, Liveness::Alive),
            (Some(libc::EINVAL), false, Liveness::Alive),
        ];
        for (errno, zombie, want) in table {
            assert_eq!(liveness(errno, zombie), want, "{errno:?} {zombie}");
        }
    }

    #[test]
    fn a_process_of_another_user_is_alive() {
        // pid 1 exists; unprivileged, kill(1, 0) fails with EPERM.
        assert_eq!(pid_liveness(1), Liveness::Alive);
    }

    #[test]
    fn no_data_directory_or_no_pid_file_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(probe(&dir.path().join("absent")).state, Postmaster::Stopped);
        assert_eq!(
            probe(dir.path()),
            Probe {
                state: Postmaster::Stopped,
                fault: None
            }
        );
    }

    #[test]
    fn a_pid_file_naming_a_live_process_is_running_and_a_dead_one_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        std::fs::write(dir.path().join("postmaster.pid"), format!("{pid}\n")).unwrap();
        assert_eq!(probe(dir.path()).state, Postmaster::Running(pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(probe(dir.path()).state, Postmaster::Stopped);
    }

    #[test]
    fn an_unusable_pid_file_is_a_fault_and_never_stopped_while_a_server_works_there() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        // A stand-in postmaster: a process named `postgres` working in
        // the data directory.
        let postgres = dir.path().join("postgres");
        // A link (the kernel names the process after it), not a copy: a
        // copy's write descriptor, inherited by a child another test
        // thread forks meanwhile, fails the exec ("Text file busy").
        std::os::unix::fs::symlink("/bin/sleep", &postgres).unwrap();
        let mut child = std::process::Command::new(&postgres)
            .arg("30")
            .current_dir(&data)
            .spawn()
            .unwrap();
        let pid = child.id();
        // spawn returns once exec released the parent's memory, a moment
        // before the kernel renames the process.
        let named = std::time::Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap() != "postgres\n" {
            assert!(
                named.elapsed().as_secs() < 5,
                "the stand-in is not named postgres"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::fs::write(data.join("postmaster.pid"), format!("{pid}\n")).unwrap();
        // A second hard link: the safe reader refuses the file.
        std::fs::hard_link(data.join("postmaster.pid"), dir.path().join("x")).unwrap();
        let seen = probe(&data);
        assert!(
            seen.fault.as_ref().is_some_and(|f| f.contains("hard link")),
            "{seen:?}"
        );
        assert_eq!(seen.state, Postmaster::Running(pid));
        // Unparseable: the same.
        std::fs::remove_file(dir.path().join("x")).unwrap();
        std::fs::write(data.join("postmaster.pid"), "garbage\n").unwrap();
        assert_eq!(probe(&data).state, Postmaster::Running(pid));
        // No postmaster.pid, or one naming a dead postmaster, while a
        // server process (an orphaned backend) still works there: running.
        std::fs::remove_file(data.join("postmaster.pid")).unwrap();
        let seen = probe(&data);
        assert_eq!(seen.state, Postmaster::Running(pid), "{seen:?}");
        assert!(seen.fault.is_some_and(|f| f.contains("no postmaster.pid")));
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        std::fs::write(data.join("postmaster.pid"), format!("{dead_pid}\n")).unwrap();
        assert_eq!(probe(&data).state, Postmaster::Running(pid));
        std::fs::write(data.join("postmaster.pid"), "garbage\n").unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        // Nothing works in the directory any more (a complete look: our
        // own directory): stopped, still with the fault.
        let seen = probe(&data);
        assert_eq!(seen.state, Postmaster::Stopped);
        assert!(seen.fault.is_some());
    }

    #[test]
    fn program_names_match_exactly_not_by_prefix() {
        let mariadb = ServerProcess {
            pid_file: "mariadbd.pid".into(),
            programs: vec!["mariadbd".into(), "mysqld".into()],
            stop_signal: libc::SIGKILL,
        };
        let postgres = ServerProcess::postgres();
        let long = ServerProcess {
            programs: vec!["a-server-named-long".into()],
            ..ServerProcess::postgres()
        };
        let table: [(&ServerProcess, &str, bool); 9] = [
            (&mariadb, "mariadbd", true),
            (&mariadb, "mysqld", true),
            // The wrapper script that starts mysqld, and others alike.
            (&mariadb, "mysqld_safe", false),
            (&mariadb, "mysqld_multi", false),
            (&mariadb, "mariadbd-safe", false),
            (&postgres, "postgres", true),
            (&postgres, "postgres_exporter", false),
            // comm keeps 15 bytes of a longer name.
            (&long, "a-server-named-", true),
            (&long, "a-server-named", false),
        ];
        for (server, name, want) in table {
            assert_eq!(server.is_program(name), want, "{name}");
        }
    }

    #[test]
    fn a_wrapper_working_in_the_data_directory_is_not_the_server() {
        // mysqld_safe, the parent of mysqld: with a prefix match it was
        // taken for the server (and, having no server parent, as the one
        // to signal), so a fence would kill the wrapper and leave the
        // server running.
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let wrapper = dir.path().join("mysqld_safe");
        std::os::unix::fs::symlink("/bin/sleep", &wrapper).unwrap();
        let mut child = std::process::Command::new(&wrapper)
            .arg("30")
            .current_dir(&data)
            .spawn()
            .unwrap();
        let pid = child.id();
        let named = std::time::Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap() != "mysqld_safe\n" {
            assert!(named.elapsed().as_secs() < 5, "the stand-in is not named");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mariadb = ServerProcess {
            pid_file: "mariadbd.pid".into(),
            programs: vec!["mariadbd".into(), "mysqld".into()],
            stop_signal: libc::SIGKILL,
        };
        let seen = probe_server(&data, &mariadb);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(seen.state, Postmaster::Stopped, "{seen:?}");
    }
}
