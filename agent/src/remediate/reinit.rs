//! `reinit`: restore a standby that is corrupt or cannot rejoin, by
//! re-cloning it from the current primary. Steps, each bounded by what is
//! left of the action's `timeout`: refuse unless the target is a standby
//! (or, when it does not answer, its data directory is marked a
//! standby's: [`crate::pgserver::pgdata::STANDBY_SIGNAL`])
//! and the primary answers as a primary; stop the standby; rename its data
//! directory aside (never delete it); make a new empty one owned by the
//! old one's owner; `pg_basebackup` from the primary as that owner (the
//! password in its environment, never in its argv); copy back the
//! standby's own `postgresql.conf`, `pg_hba.conf` and `pg_ident.conf` (as
//! that owner, without following links); mark it a standby of the
//! primary, with a `primary_conninfo` whose password is in a passfile (see
//! [`crate::pgserver::pgdata`]); start it; wait until its WAL receiver
//! streams. The server's start and stop are [`crate::pgserver::ctl`]'s.

use super::outcome::{ActionOutcome, CONNECT, pg_error};
use crate::config::ReinitAction;
use crate::pgserver::ctl::{PgCtl, StopMode};
use crate::pgserver::pgdata::{self, STANDBY_SIGNAL};
use crate::pgserver::postmaster::ServerProcess;
use crate::process::{self, CommandSpec};
use crate::sql::SqlTargets;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Config files kept from the old directory (the clone has the primary's).
const KEEP: [&str; 3] = ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"];

struct Steps {
    started: Instant,
    limit: Duration,
    done: Vec<Value>,
}

impl Steps {
    fn left(&self) -> Duration {
        self.limit.saturating_sub(self.started.elapsed())
    }

    fn note(&mut self, step: &str, ok: bool, message: impl Into<String>) {
        self.done
            .push(json!({ "step": step, "ok": ok, "message": message.into() }));
    }

    fn outcome(self, ok: bool, message: String, action: &ReinitAction) -> ActionOutcome {
        ActionOutcome {
            ok,
            message,
            detail: json!({
                "standby": action.standby,
                "primary": action.primary,
                "data_dir": action.data_dir,
                "steps": self.done,
            }),
        }
    }
}

/// Whether `target` answers and is in recovery: `Some(in_recovery)`, or
/// `None` when it does not answer.
async fn in_recovery(sql: &SqlTargets, target: &str) -> Result<Option<bool>, String> {
    let Ok(client) = sql.admin_session(target, CONNECT).await else {
        return Ok(None);
    };
    let row = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map_err(|e| pg_error(&e))?;
    Ok(Some(row.get(0)))
}

async fn run_as(
    argv: Vec<String>,
    user: Option<(u32, u32)>,
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<String, String> {
    let spec = CommandSpec {
        argv,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        timeout,
        user,
        current_dir: None,
    };
    let out = process::run(&spec).await?;
    if out.success() {
        Ok(out.summary())
    } else {
        Err(format!("{}: {}", spec.argv[0], out.summary()))
    }
}

fn bin(action: &ReinitAction, program: &str) -> String {
    action.bin_dir.join(program).display().to_string()
}

/// Re-clone the standby of `action`.
pub async fn reinit(sql: &SqlTargets, action: &ReinitAction) -> ActionOutcome {
    let mut steps = Steps {
        started: Instant::now(),
        limit: action.timeout,
        done: Vec::new(),
    };
    match run(sql, action, &mut steps).await {
        Ok(message) => steps.outcome(true, message, action),
        Err(message) => {
            let message = format!("reinit of `{}`: {message}", action.standby);
            steps.outcome(false, message, action)
        }
    }
}

async fn run(sql: &SqlTargets, action: &ReinitAction, steps: &mut Steps) -> Result<String, String> {
    let dir = &action.data_dir;
    // Refusals first: nothing has changed yet.
    match in_recovery(sql, &action.standby).await? {
        Some(false) => {
            return Err(format!(
                "refused: `{}` answers as a primary (not in recovery); reinit only re-clones standbys",
                action.standby
            ));
        }
        Some(true) => steps.note("check", true, "the target is a standby"),
        None => {
            let signal = pgdata::open(dir)
                .and_then(|d| d.kind(STANDBY_SIGNAL))
                .map_err(|e| format!("refused: {e}"))?;
            if signal != Some(rustix::fs::FileType::RegularFile) {
                return Err(format!(
                    "refused: `{}` does not answer and {} has no {STANDBY_SIGNAL}, so it is not known to be a standby",
                    action.standby,
                    dir.display()
                ));
            }
            steps.note(
                "check",
                true,
                format!("the target does not answer; its directory has {STANDBY_SIGNAL}"),
            );
        }
    }
    match in_recovery(sql, &action.primary).await? {
        Some(false) => {}
        Some(true) => {
            return Err(format!(
                "refused: the primary `{}` is in recovery",
                action.primary
            ));
        }
        None => {
            return Err(format!(
                "refused: the primary `{}` does not answer",
                action.primary
            ));
        }
    }
    // A link in place of the directory, or a root-owned one, is refused.
    let data = pgdata::open(dir).map_err(|e| format!("refused: {e}"))?;
    let owner = data.run_as();
    let owner_ids = data.owner();

    // Stop: fast, else immediate (a server that does not run is fine).
    let ctl = PgCtl::in_bin_dir(&action.bin_dir);
    if data
        .exists(&ServerProcess::postgres().pid_file)
        .unwrap_or(true)
    {
        let stop = |mode| ctl.stop(dir, mode, Some(30));
        let left = steps.left().min(Duration::from_secs(40));
        if let Err(e) = run_as(stop(StopMode::Fast), owner, &[], left).await {
            let left = steps.left().min(Duration::from_secs(40));
            run_as(stop(StopMode::Immediate), owner, &[], left)
                .await
                .map_err(|e2| format!("cannot stop the standby: {e}; {e2}"))?;
        }
        steps.note("stop", true, "stopped");
    }

    // Move aside.
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = dir
        .file_name()
        .ok_or("the data directory has no name")?
        .to_string_lossy()
        .into_owned();
    let aside = dir.with_file_name(format!("{name}.reinit-{stamp}"));
    std::fs::rename(dir, &aside).map_err(|e| {
        format!(
            "cannot move {} aside to {}: {e}",
            dir.display(),
            aside.display()
        )
    })?;
    steps.note(
        "move-aside",
        true,
        format!("kept the old directory as {}", aside.display()),
    );

    // A new, empty directory for the owner: made beside the old one
    // without following a link, and handed over by descriptor.
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let fresh = crate::safefs::OwnedDir::open(parent)
        .map(|p| p.expecting(owner_ids))
        .and_then(|p| p.subdir(&name, true))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    drop(fresh);

    // Clone, as the owner; the password (if the primary's DSN has one) in
    // the environment, never on the command line.
    let login = sql
        .replication_login(&action.primary, &action.standby)
        .map_err(|e| e.to_string())?;
    let argv = vec![
        bin(action, "pg_basebackup"),
        "-D".into(),
        dir.display().to_string(),
        "-X".into(),
        "stream".into(),
        "--checkpoint=fast".into(),
        "-d".into(),
        login.conninfo.clone(),
    ];
    let env: Vec<(&str, String)> = login
        .password
        .iter()
        .map(|p| ("PGPASSWORD", p.clone()))
        .collect();
    let cloned = Instant::now();
    run_as(argv, owner, &env, steps.left()).await.map_err(|e| {
        format!(
            "pg_basebackup failed (the old directory is at {}): {e}",
            aside.display()
        )
    })?;
    steps.note(
        "clone",
        true,
        format!(
            "cloned from `{}` in {:.1} s",
            action.primary,
            cloned.elapsed().as_secs_f64()
        ),
    );

    // Keep the standby's own config files, as the owner (`cp -P` copies a
    // link as a link).
    let kept: Vec<String> = KEEP
        .iter()
        .filter(|f| std::fs::symlink_metadata(aside.join(f)).is_ok())
        .map(|f| f.to_string())
        .collect();
    for file in &kept {
        let argv = vec![
            "cp".into(),
            "-P".into(),
            aside.join(file).display().to_string(),
            dir.join(file).display().to_string(),
        ];
        run_as(argv, owner, &[], steps.left().min(Duration::from_secs(30))).await?;
    }
    steps.note("config", true, format!("kept {}", kept.join(", ")));

    // A standby of the primary (the signal file and primary_conninfo), its
    // password in a passfile of the owner's.
    let demoted = match &login.password {
        Some(password) => pgdata::demote_with_password(dir, &login.conninfo, &login.user, password),
        None => pgdata::demote_on_disk(dir, &login.conninfo, Some(owner_ids)),
    };
    demoted.map_err(|e| format!("cannot make {} a standby: {e}", dir.display()))?;

    // Start.
    let log: PathBuf = dir.join("watchpost-reinit.log");
    let argv = ctl.start(dir, &log, None, steps.left().as_secs().clamp(1, 3600));
    run_as(argv, owner, &[], steps.left()).await.map_err(|e| {
        format!(
            "the re-cloned standby did not start (log: {}): {e}",
            log.display()
        )
    })?;
    steps.note("start", true, "started");

    // Streaming?
    let within = action.stream_within.min(steps.left());
    let waited = Instant::now();
    let mut last = String::from("no answer");
    while waited.elapsed() < within {
        if let Ok(client) = sql.admin_session(&action.standby, CONNECT).await {
            let query = "SELECT pg_is_in_recovery() AS r, (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS s";
            match client.query_one(query, &[]).await {
                Ok(row) => {
                    let recovery: bool = row.get("r");
                    let status: Option<String> = row.get("s");
                    if recovery && status.as_deref() == Some("streaming") {
                        steps.note("stream", true, "streaming");
                        return Ok(format!(
                            "reinit of `{}`: re-cloned from `{}`, streaming; the old directory is at {}",
                            action.standby,
                            action.primary,
                            aside.display()
                        ));
                    }
                    last = format!(
                        "in recovery {recovery}, WAL receiver {}",
                        status.unwrap_or_else(|| "absent".into())
                    );
                }
                Err(e) => last = pg_error(&e),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!(
        "started but not streaming within {within:?} ({last})"
    ))
}
