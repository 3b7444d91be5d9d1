//! Restore drills (`[[drill]]`): a scheduled job that proves a backup
//! restores, and measures how long that takes. It restores the newest
//! backup into a scratch directory under `state_dir/drills/` (after
//! checking that the space is there, and watching it while the drill
//! runs: `disk`), tablespaces included and every path it could write
//! through kept inside that directory (`tablespace`, `confine`,
//! `settings`: a drill
//! never writes to production or to the backup), starts it on a free local port —
//! unix socket only, in that directory — as the owner of the backup, lets
//! recovery replay the WAL archive to its end, runs the verification
//! (configured queries, amcheck over every B-tree index, then
//! `pg_checksums --check` on the stopped copy) and always tears it down.
//!
//! A drill is a [`NativeCheck`]: the daemon schedules it like a probe, and
//! its [`Report`] goes through the same thresholds, states, remediations,
//! events and telemetry. Measurements: `postgresql.restore.duration` (s,
//! from the start of the restore to a promoted server: the recovery time
//! actually achievable, RTO), `postgresql.restore.data_age` (s, now minus
//! the last replayed commit: the recovery point, RPO),
//! `postgresql.restore.verified` (1/0), `postgresql.restore.size` (By) and
//! `postgresql.restore.verify_duration` (s).
//!
//! MariaDB (`method = "mariadb-backup"`: `mariadb`) and Redis (`method =
//! "redis-rdb"`: `redis`) backups are drilled the same way, in the same
//! scratch directory, disk watch and time limit, their servers started by
//! `server`; their measurements are `mysql.restore.*` and
//! `redis.restore.*` (no data age).

mod archive;
mod confine;
mod copy;
mod disk;
mod forker;
mod mariadb;
mod outcome;
mod program;
mod redis;
mod restore;
mod scratch;
mod server;
mod settings;
mod tablespace;
mod verify;

pub use disk::shared_filesystems;
pub use restore::{foreign_hint, foreign_layout};

use crate::config::{DrillMethod, DrillSpec};
use crate::pgserver::ctl::{self, PgCtl, StopMode};
use crate::report::{Measurement, Report, Status};
use crate::runtime::{BoxFuture, NativeCheck, Probe, ProbeInfo};
use scratch::Scratch;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A drill ready to run.
pub struct Drill {
    spec: DrillSpec,
    state_dir: PathBuf,
}

/// The probe that runs the drill `spec`; leftovers of an interrupted
/// earlier drill of that name are removed now, on a blocking thread when
/// there is a runtime (a reload must not stall it), and never a drill of
/// this process that is still running.
pub fn probe(spec: &DrillSpec, state_dir: &Path) -> Probe {
    let (state, name, bin_dir) = (
        state_dir.to_path_buf(),
        spec.name.clone(),
        spec.bin_dir.clone(),
    );
    let sweep = move || {
        if let Ok(drills) = scratch::drills_dir(&state) {
            scratch::sweep(&drills, &name, &bin_dir);
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn_blocking(sweep)),
        Err(_) => sweep(),
    }
    let drill = Drill {
        spec: spec.clone(),
        state_dir: state_dir.to_path_buf(),
    };
    let info = match spec.method.engine() {
        "postgresql" => info(),
        engine => engine_info(engine),
    };
    Probe::native(format!("drill:{}", spec.name), info, Arc::new(drill))
}

/// The MariaDB and Redis drills' measurements (`ENGINE.restore.*`).
fn engine_info(engine: &str) -> ProbeInfo {
    let names = [
        (
            "duration",
            "s",
            "copy, preparation and start until the copy answers (RTO)",
        ),
        ("verified", "1", "1 when every verification passed"),
        ("size", "By", "bytes restored"),
        ("verify_duration", "s", "time the verification took"),
    ]
    .map(|(n, unit, doc)| (format!("{engine}.restore.{n}"), unit, doc));
    let refs: Vec<(&str, &str, &str)> =
        names.iter().map(|(n, u, d)| (n.as_str(), *u, *d)).collect();
    ProbeInfo::native(
        "restore-drill",
        "integrity",
        "copies the newest backup into a scratch directory, starts it on a private socket, verifies it and tears it down",
        &refs,
    )
}

fn info() -> ProbeInfo {
    ProbeInfo::native(
        "restore-drill",
        "integrity",
        "restores the newest backup into a scratch copy, recovers, verifies it and tears it down",
        &[
            (
                "postgresql.restore.duration",
                "s",
                "restore and recovery until the copy accepts writes (RTO)",
            ),
            (
                "postgresql.restore.data_age",
                "s",
                "age of the last commit the copy replayed (RPO)",
            ),
            (
                "postgresql.restore.verified",
                "1",
                "1 when every verification passed",
            ),
            ("postgresql.restore.size", "By", "bytes restored"),
            (
                "postgresql.restore.verify_duration",
                "s",
                "time the verification took",
            ),
        ],
    )
}

fn measurement(name: &str, value: f64, unit: &str) -> Measurement {
    Measurement {
        name: name.into(),
        value,
        unit: unit.into(),
        attributes: Vec::new(),
    }
}

fn human(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

impl NativeCheck for Drill {
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(self.run())
    }
}

impl Drill {
    async fn run(&self) -> Report {
        let started = Instant::now();
        let deadline = started + self.spec.timeout;
        let mut measurements = Vec::new();
        let (status, message) = match self.drill(deadline, &mut measurements).await {
            Ok(outcome) => outcome,
            Err(why) => {
                let verified = format!("{}.restore.verified", self.spec.method.engine());
                measurements.push(measurement(&verified, 0.0, "1"));
                (Status::Critical, format!("restore drill failed: {why}"))
            }
        };
        Report {
            status,
            message,
            measurements,
            error: None,
            duration: started.elapsed(),
            peak_memory: 0,
        }
    }

    async fn drill(
        &self,
        deadline: Instant,
        out: &mut Vec<Measurement>,
    ) -> Result<(Status, String), String> {
        let spec = &self.spec;
        let owner = scratch::owner_of(&spec.owner_of)?;
        let drills = scratch::drills_dir(&self.state_dir)?;
        scratch::sweep_async(&drills, &spec.name, &spec.bin_dir).await;
        let size = restore::needed_bytes(spec, deadline, owner).await;
        let free = scratch::free_bytes_async(&drills).await?;
        // The copy grows by the WAL it replays: a tenth on top.
        let needed = size + size / 10 + spec.reserve;
        if free < needed {
            let verified = format!("{}.restore.verified", spec.method.engine());
            out.push(measurement(&verified, 0.0, "1"));
            return Ok((
                Status::Critical,
                format!(
                    "restore drill refused: it needs {} ({} backup + 10% + {} reserve) but {} has {} free; \
                     free space there, point `state_dir` elsewhere, or lower `reserve`",
                    human(needed),
                    human(size),
                    human(spec.reserve),
                    drills.display(),
                    human(free)
                ),
            ));
        }
        let s = Scratch::create(&drills, &spec.name, owner, &spec.bin_dir)?;
        let done = match &spec.method {
            DrillMethod::MariadbBackup { backup } => {
                mariadb::drill(spec, backup, &s, &drills, deadline, out).await
            }
            DrillMethod::RedisRdb { backup, aof } => {
                redis::drill(spec, backup, aof.as_deref(), &s, &drills, deadline, out).await
            }
            _ => self.in_scratch(&s, &drills, deadline, out).await,
        };
        s.close().await;
        done
    }

    /// Restore, recover and verify in `s`; the caller tears it down.
    async fn in_scratch(
        &self,
        s: &Scratch,
        drills: &Path,
        deadline: Instant,
        out: &mut Vec<Measurement>,
    ) -> Result<(Status, String), String> {
        let spec = &self.spec;
        let restore_started = Instant::now();
        let port = free_port()?;
        let prepared = disk::guarded(
            drills,
            spec.reserve,
            "restoring",
            restore::restore(spec, s, port, deadline),
        )
        .await?;
        let restored = scratch::tree_size_async(&s.dir).await;
        // Start and recover to the end of the archive.
        disk::guarded(drills, spec.reserve, "replaying WAL", async {
            self.start(s, &prepared.options, deadline).await?;
            verify::wait_promoted(spec, s, port, deadline).await
        })
        .await?;
        let rto = restore_started.elapsed().as_secs_f64();
        out.push(measurement("postgresql.restore.duration", rto, "s"));
        out.push(measurement(
            "postgresql.restore.size",
            restored as f64,
            "By",
        ));

        let verify_started = Instant::now();
        // Verifying writes too (amcheck's extension, the shutdown
        // checkpoint): still watched.
        let found = disk::guarded(drills, spec.reserve, "verifying", async {
            let mut found = verify::Findings::default();
            verify::online(spec, s, port, &mut found).await?;
            let stop = PgCtl::in_bin_dir(&spec.bin_dir).stop(&s.data, StopMode::Fast, None);
            let left = deadline.saturating_duration_since(Instant::now());
            let stopped = program::run(&stop, s.owner, &s.dir, &[], left).await?;
            if !stopped.ok {
                found
                    .failures
                    .push(format!("{} stop: {}", ctl::PROGRAM, stopped.last_line()));
            } else if spec.checksums {
                verify::checksums(spec, s, deadline, &mut found).await;
            }
            Ok(found)
        })
        .await?;
        if let Some(age) = found.data_age {
            out.push(measurement(
                "postgresql.restore.data_age",
                age.max(0.0),
                "s",
            ));
        }
        out.push(measurement(
            "postgresql.restore.verify_duration",
            verify_started.elapsed().as_secs_f64(),
            "s",
        ));
        let verified = found.failures.is_empty();
        out.push(measurement(
            "postgresql.restore.verified",
            if verified { 1.0 } else { 0.0 },
            "1",
        ));
        let age = found.data_age.map_or_else(
            || "data age unknown".to_string(),
            |a| format!("data {a:.0} s old (RPO)"),
        );
        let notes = if prepared.notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", prepared.notes.join("; "))
        };
        let source = &prepared.source;
        if verified {
            Ok((
                Status::Ok,
                format!(
                    "restored {} from {source}{notes} in {rto:.1} s (RTO), {age}; verified: {}",
                    human(restored),
                    found.passed.join(", ")
                ),
            ))
        } else {
            Ok((
                Status::Critical,
                format!(
                    "restored {} from {source}{notes} in {rto:.1} s, but verification failed: {}",
                    human(restored),
                    found.failures.join("; ")
                ),
            ))
        }
    }

    /// Start the copy ([`PgCtl::start`]) with `options` (its `-c`
    /// overrides); waits while it recovers.
    async fn start(&self, s: &Scratch, options: &str, deadline: Instant) -> Result<(), String> {
        let left = deadline.saturating_duration_since(Instant::now());
        let argv = PgCtl::in_bin_dir(&self.spec.bin_dir).start(
            &s.data,
            &s.dir.join("server.log"),
            Some(options),
            left.as_secs().max(1),
        );
        let ran = program::run(&argv, s.owner, &s.dir, &[], left + Duration::from_secs(5)).await?;
        if ran.ok {
            return Ok(());
        }
        let log = s
            .read(&s.dir.join("server.log"))
            .ok()
            .flatten()
            .unwrap_or_default();
        let last = log
            .lines()
            .rev()
            .find(|l| l.contains("FATAL") || l.contains("PANIC"))
            .unwrap_or(ran.last_line());
        Err(format!("the restored copy did not start: {}", last.trim()))
    }
}

/// A local TCP port nothing listens on now. The copy listens only on its
/// unix socket, but the port names the socket (and a free one avoids a
/// lock file clash with a server on this host).
fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
