//! `pg_ctl` (and Debian's `pg_ctlcluster`), the programs that start, stop
//! and restart a PostgreSQL server: their command lines are written here
//! once, for every caller — the cluster mode's start and stop, the
//! failover's fence (status, then an immediate stop), the restart and
//! reinit remediations, the restore drill's copy (which runs them with its
//! own bounded runner). [`run`] runs one as the data directory's owner,
//! bounded; [`stop_known`] is a stop that is `Ok` only once the server is
//! known to be stopped.

use super::pgdata::owner_if_root;
use super::postmaster::{self, Postmaster};
use crate::process::{self, CommandOutcome, CommandSpec};
use crate::safefs::Owner;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The program's name, for messages that name it.
pub const PROGRAM: &str = "pg_ctl";

/// A PostgreSQL installation's `pg_ctl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgCtl {
    path: PathBuf,
}

/// How a server stops (`-m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// A clean shutdown: sessions are ended, a shutdown checkpoint written.
    Fast,
    /// At once, without a checkpoint (the next start recovers).
    Immediate,
}

impl StopMode {
    /// The mode by its `pg_ctl -m` name (`fast`, `immediate`).
    pub fn named(name: &str) -> Option<StopMode> {
        match name {
            "fast" => Some(StopMode::Fast),
            "immediate" => Some(StopMode::Immediate),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// What `pg_ctl status` says of a data directory's server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Exit code 0.
    Running,
    /// Exit code 3.
    NotRunning,
    /// Anything else (4: no accessible data directory; a timeout, a
    /// signal): cannot tell, never "not running". Why, naming the program.
    Unknown(String),
}

impl Status {
    /// The status a finished `pg_ctl status` reports.
    pub fn of(outcome: &CommandOutcome) -> Status {
        match (outcome.timed_out, outcome.exit_code) {
            (false, Some(0)) => Status::Running,
            (false, Some(3)) => Status::NotRunning,
            _ => Status::Unknown(format!("{PROGRAM} status: {}", outcome.summary())),
        }
    }
}

impl PgCtl {
    /// `pg_ctl` in `bin_dir`, the directory of PostgreSQL's programs.
    pub fn in_bin_dir(bin_dir: &Path) -> PgCtl {
        PgCtl {
            path: bin_dir.join(PROGRAM),
        }
    }

    /// The `pg_ctl` at `path` (a configured program: a bare name is
    /// looked up in `PATH`).
    pub fn at(path: &Path) -> PgCtl {
        PgCtl {
            path: path.to_path_buf(),
        }
    }

    /// The directory of PostgreSQL's other programs, beside this one
    /// (empty for a bare name: they are looked up in `PATH` too).
    pub fn bin_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    fn argv(&self, args: impl IntoIterator<Item = String>) -> Vec<String> {
        std::iter::once(self.path.display().to_string())
            .chain(args)
            .collect()
    }

    /// `pg_ctl start -D DATA_DIR -l LOG [-o OPTIONS] -w -t WAIT`: start
    /// the server (in a session of its own, so that it outlives the
    /// program), its output to `log`, with `options` for the server
    /// (`-c name=value`, passed through `/bin/sh`), waiting up to `wait`
    /// seconds until it accepts connections.
    pub fn start(
        &self,
        data_dir: &Path,
        log: &Path,
        options: Option<&str>,
        wait: u64,
    ) -> Vec<String> {
        let mut args = vec![
            "start".to_string(),
            "-D".into(),
            data_dir.display().to_string(),
            "-l".into(),
            log.display().to_string(),
        ];
        if let Some(options) = options {
            args.extend(["-o".into(), options.to_string()]);
        }
        args.extend(["-w".into(), "-t".into(), wait.to_string()]);
        self.argv(args)
    }

    /// `pg_ctl stop -D DATA_DIR -m MODE -w [-t WAIT]`: stop the server,
    /// waiting until it is gone (up to `wait` seconds; `pg_ctl`'s own
    /// default of 60 s without one).
    pub fn stop(&self, data_dir: &Path, mode: StopMode, wait: Option<u64>) -> Vec<String> {
        let mut args = vec![
            "stop".to_string(),
            "-D".into(),
            data_dir.display().to_string(),
            "-m".into(),
            mode.as_str().into(),
            "-w".into(),
        ];
        if let Some(wait) = wait {
            args.extend(["-t".into(), wait.to_string()]);
        }
        self.argv(args)
    }

    /// `pg_ctl status -D DATA_DIR` (read its exit code with [`Status::of`]).
    pub fn status(&self, data_dir: &Path) -> Vec<String> {
        self.argv([
            "status".to_string(),
            "-D".into(),
            data_dir.display().to_string(),
        ])
    }

    /// `pg_ctl restart -D DATA_DIR -m fast -w -t WAIT -l LOG`: the restart
    /// remediation's (`restart = "pg_ctl"`).
    pub fn restart(&self, data_dir: &Path, wait: u64, log: &Path) -> Vec<String> {
        self.argv([
            "restart".to_string(),
            "-D".into(),
            data_dir.display().to_string(),
            "-m".into(),
            "fast".into(),
            "-w".into(),
            "-t".into(),
            wait.to_string(),
            "-l".into(),
            log.display().to_string(),
        ])
    }
}

/// Debian's `pg_ctlcluster VERSION CLUSTER restart` (`restart =
/// "pg_ctlcluster"`), found in `PATH`.
pub fn debian_restart(version: &str, cluster: &str) -> Vec<String> {
    vec![
        "pg_ctlcluster".into(),
        version.into(),
        cluster.into(),
        "restart".into(),
    ]
}

/// Run `argv` as `user` (the data directory's owner when the agent is
/// root), within `timeout`: its outcome, or an error when it cannot start.
pub async fn run(
    argv: Vec<String>,
    user: Option<Owner>,
    timeout: Duration,
) -> Result<CommandOutcome, String> {
    process::run(&CommandSpec {
        argv,
        timeout,
        user,
        ..CommandSpec::default()
    })
    .await
}

/// Stop the server of `data_dir` in `mode`, waiting up to `wait` seconds
/// (the program up to `timeout`), as the directory's owner
/// ([`owner_if_root`]). `Ok` only once the server is known to be stopped
/// ([`postmaster::probe`]): at once when it already is; after the
/// program, which succeeds once `postmaster.pid` is gone, the directory
/// is looked at again, and a postmaster still there, or a state that
/// cannot be told, is an error. The program's failure is its
/// [`CommandOutcome::summary`].
pub async fn stop_known(
    pg_ctl: &PgCtl,
    data_dir: &Path,
    mode: StopMode,
    wait: u64,
    timeout: Duration,
) -> Result<(), String> {
    if postmaster::probe(data_dir).state.stopped() {
        return Ok(());
    }
    let user = owner_if_root(data_dir)?;
    let out = run(pg_ctl.stop(data_dir, mode, Some(wait)), user, timeout).await?;
    if !out.success() {
        return Err(out.summary());
    }
    match postmaster::probe(data_dir).state {
        Postmaster::Stopped => Ok(()),
        Postmaster::Running(pid) => Err(format!(
            "{PROGRAM} stop succeeded, but the postmaster (pid {pid}) still runs"
        )),
        Postmaster::Unknown(why) => Err(format!(
            "{PROGRAM} stop succeeded, but whether the server stopped cannot be told: {why}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(argv: &[String]) -> String {
        argv.join(" ")
    }

    #[test]
    fn the_command_lines_are_pg_ctls() {
        let ctl = PgCtl::in_bin_dir(Path::new("/usr/lib/postgresql/16/bin"));
        let data = Path::new("/srv/pg");
        assert_eq!(ctl.bin_dir(), Path::new("/usr/lib/postgresql/16/bin"));
        assert_eq!(
            words(&ctl.start(data, Path::new("/srv/pg/log/x.log"), None, 60)),
            "/usr/lib/postgresql/16/bin/pg_ctl start -D /srv/pg -l /srv/pg/log/x.log -w -t 60"
        );
        assert_eq!(
            ctl.start(data, Path::new("/l"), Some("-c 'port=5'"), 9)[4..],
            ["-l", "/l", "-o", "-c 'port=5'", "-w", "-t", "9"]
        );
        assert_eq!(
            words(&ctl.stop(data, StopMode::Immediate, Some(20))),
            "/usr/lib/postgresql/16/bin/pg_ctl stop -D /srv/pg -m immediate -w -t 20"
        );
        assert_eq!(
            words(&ctl.stop(data, StopMode::Fast, None)),
            "/usr/lib/postgresql/16/bin/pg_ctl stop -D /srv/pg -m fast -w"
        );
        assert_eq!(
            words(&ctl.status(data)),
            "/usr/lib/postgresql/16/bin/pg_ctl status -D /srv/pg"
        );
        let configured = PgCtl::at(Path::new("pg_ctl"));
        assert_eq!(configured.bin_dir(), Path::new(""));
        assert_eq!(
            words(&configured.restart(data, 60, Path::new("/srv/pg/log/r.log"))),
            "pg_ctl restart -D /srv/pg -m fast -w -t 60 -l /srv/pg/log/r.log"
        );
        assert_eq!(
            words(&debian_restart("16", "main")),
            "pg_ctlcluster 16 main restart"
        );
    }

    #[test]
    fn stop_modes_are_named_as_pg_ctl_names_them() {
        for mode in [StopMode::Fast, StopMode::Immediate] {
            assert_eq!(StopMode::named(mode.as_str()), Some(mode));
        }
        assert_eq!(StopMode::named("smart"), None);
    }

    #[test]
    fn only_exit_codes_0_and_3_tell_whether_the_server_runs() {
        let outcome = |exit_code, timed_out| CommandOutcome {
            argv: vec![],
            exit_code,
            timed_out,
            output: "pg_ctl: could not open PID file".into(),
            duration_ms: 1.0,
        };
        assert_eq!(Status::of(&outcome(Some(0), false)), Status::Running);
        assert_eq!(Status::of(&outcome(Some(3), false)), Status::NotRunning);
        assert_eq!(
            Status::of(&outcome(Some(4), false)),
            Status::Unknown("pg_ctl status: exit code 4: pg_ctl: could not open PID file".into())
        );
        assert!(matches!(
            Status::of(&outcome(None, true)),
            Status::Unknown(_)
        ));
        assert!(matches!(
            Status::of(&outcome(None, false)),
            Status::Unknown(_)
        ));
    }
}
