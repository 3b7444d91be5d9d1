//! The local PostgreSQL server as the cluster mode sees and drives it:
//! one observation per loop (is the postmaster alive, does it answer, is
//! it in recovery, its WAL positions, whom it streams from), and the few
//! things the agent does to it (start, stop, promote, mark as a standby,
//! follow a leader, rewind). Programs run as the data directory's owner;
//! every call is bounded.

pub use super::observation::Observation;
use crate::config::ClusterSpec;
use crate::pgserver::controldata::{self, ControlData};
use crate::pgserver::ctl::{self, PgCtl, StopMode};
use crate::pgserver::pgdata::{self, owner_if_root};
use crate::pgserver::postmaster;
use crate::sql::SqlTargets;
use std::path::Path;
use std::time::Duration;

/// The local server of a cluster member.
pub struct LocalServer {
    pub spec: ClusterSpec,
    pub sql: SqlTargets,
    /// The timeline its WAL receiver last streamed on, and the postmaster
    /// (pid) that streamed it: kept while that postmaster runs, since the
    /// receiver's row goes with the upstream ([`LocalServer::observe`]).
    received: parking_lot::Mutex<Option<(u32, u64)>>,
}

/// One look at the server. Its `timeline` is the one it is on now, not
/// the control file's checkpoint's, which moves only at the next
/// checkpoint (a restartpoint on a standby: up to `checkpoint_timeout`,
/// 5 min by default, after it began following a new leader's timeline;
/// until then the election took a standby of the new leader for one off
/// its history, and a second failover found no candidate). A primary's
/// is its WAL insert position's (the WAL file name's first 8 digits, as
/// Patroni reads it); a standby's the latest of its checkpoint's, its
/// minimum recovery point's and the timeline its WAL receiver streams on
/// (which the startup process asks for only once it follows that
/// timeline: never a timeline the server's WAL diverged from); all of
/// them the server's own history.
const OBSERVE: &str = "SELECT pg_is_in_recovery() AS recovery,
    pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery()
        THEN GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
        ELSE pg_current_wal_flush_lsn() END, '0/0')::float8 AS lsn,
    CASE WHEN pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8 END AS replayed,
    CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS paused,
    CASE WHEN pg_is_in_recovery() THEN GREATEST(
        (SELECT timeline_id FROM pg_control_checkpoint())::int8,
        (SELECT min_recovery_end_timeline FROM pg_control_recovery())::int8,
        (SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming')::int8)
      ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END AS timeline,
    (SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming')::int8 AS received_tli,
    pg_is_in_recovery() AND pg_last_wal_receive_lsn() IS NOT NULL AS wal_end_read,
    (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming') AS upstream";

impl LocalServer {
    /// The member's server as `spec` describes it, reached through `sql`.
    pub fn new(spec: ClusterSpec, sql: SqlTargets) -> LocalServer {
        LocalServer {
            spec,
            sql,
            received: parking_lot::Mutex::new(None),
        }
    }

    fn data_dir(&self) -> &Path {
        &self.spec.data_dir
    }

    fn program(&self, name: &str) -> String {
        self.spec.bin_dir.join(name).display().to_string()
    }

    fn ctl(&self) -> PgCtl {
        PgCtl::in_bin_dir(&self.spec.bin_dir)
    }

    /// Run a PostgreSQL program as the data directory's owner.
    async fn run(&self, argv: Vec<String>, timeout: Duration) -> Result<String, String> {
        let out = ctl::run(argv, owner_if_root(self.data_dir())?, timeout).await?;
        if out.success() {
            Ok(out.summary())
        } else {
            Err(out.summary())
        }
    }

    /// Whether a postmaster process runs for the data directory (a
    /// frozen one counts as running: it is not restarted or replaced),
    /// three-valued: see [`postmaster::probe`].
    pub fn postmaster(&self) -> postmaster::Probe {
        postmaster::probe(self.data_dir())
    }

    /// Look at the server, within `budget`.
    pub async fn observe(&self, budget: Duration) -> Observation {
        let probe = self.postmaster();
        let mut seen = Observation {
            server: probe.state,
            pid_fault: probe.fault,
            ..Observation::default()
        };
        if seen.server.stopped() {
            return seen;
        }
        let pid = match seen.server {
            postmaster::Postmaster::Running(pid) => Some(pid),
            _ => None,
        };
        let query = async {
            let client = self
                .sql
                .admin_session(&self.spec.target, budget)
                .await
                .ok()?;
            let row = client.query_one(OBSERVE, &[]).await.ok()?;
            let timeline = self.current_timeline(&row, pid);
            // Apart: a role that may not read server files still observes.
            let history = client
                .query_opt(super::history::READ_HISTORY, &[&timeline])
                .await
                .map_err(|e| tracing::debug!("cluster: cannot read the timeline history: {e}"))
                .ok()
                .flatten()
                .map(|h| {
                    (
                        h.get::<_, Option<i64>>("timeline"),
                        h.get::<_, Option<String>>("history"),
                    )
                });
            Some((row, history, timeline))
        };
        let Ok(Some((row, history, timeline))) = tokio::time::timeout(budget, query).await else {
            return seen;
        };
        let lsn = |name: &str| row.get::<_, Option<f64>>(name).map(|v| v.max(0.0) as u64);
        seen.answering = true;
        seen.in_recovery = row.get("recovery");
        seen.lsn = lsn("lsn");
        seen.replayed = lsn("replayed");
        seen.replay_paused = row.get::<_, Option<bool>>("paused").unwrap_or(false);
        seen.timeline = timeline.map(|t| t.max(0) as u64);
        seen.wal_end_read = row.get::<_, Option<bool>>("wal_end_read").unwrap_or(false);
        seen.streaming_from = row.get("upstream");
        seen.timeline_start = seen
            .timeline
            .and_then(|timeline| start_of(timeline, &history));
        seen
    }

    /// The timeline the server is on ([`OBSERVE`]'s), or on a standby
    /// whose receiver stopped (its upstream gone: a failover is about to
    /// choose) the one it last streamed on while this postmaster (`pid`)
    /// runs, if later: what the receiver flushed is on that timeline.
    fn current_timeline(&self, row: &tokio_postgres::Row, pid: Option<u32>) -> Option<i64> {
        let timeline = row.get::<_, Option<i64>>("timeline");
        let mut received = self.received.lock();
        if let Some(pid) = pid
            && let Some(streaming) = row.get::<_, Option<i64>>("received_tli")
        {
            *received = Some((pid, streaming.max(0) as u64));
        }
        let recovery: bool = row.get("recovery");
        match *received {
            Some((by, tli)) if recovery && Some(by) == pid => {
                Some(timeline.unwrap_or(0).max(tli as i64))
            }
            _ => timeline,
        }
    }

    /// Why `pg_rewind` could not work on this server, if it could not: it
    /// needs data checksums or `wal_log_hints = on`.
    pub async fn rewind_precondition(&self) -> Option<String> {
        let rows = self
            .rows(
                "SELECT current_setting('data_checksums') AS checksums, current_setting('wal_log_hints') AS hints",
                Duration::from_secs(6),
            )
            .await
            .ok()?;
        let row = rows.first()?;
        let off = |name: &str| row.get::<_, String>(name) == "off";
        (off("checksums") && off("hints")).then(|| {
            "the local server has neither data checksums nor wal_log_hints: pg_rewind cannot rejoin it after a failover; set `wal_log_hints = on` (needs a restart) or enable checksums (`pg_checksums --enable` on a stopped server)".into()
        })
    }

    /// The rows of `statement` on the local server (an admin session), all
    /// within `within`.
    pub(super) async fn rows(
        &self,
        statement: &str,
        within: Duration,
    ) -> Result<Vec<tokio_postgres::Row>, String> {
        let work = async {
            let client = self
                .sql
                .admin_session(&self.spec.target, within)
                .await
                .map_err(|e| format!("{e:?}"))?;
            client
                .query(statement, &[])
                .await
                .map_err(|e| e.to_string())
        };
        tokio::time::timeout(within, work)
            .await
            .map_err(|_| format!("no answer within {within:?}"))?
    }

    /// Run statements on the local server, one at a time (each in its
    /// own implicit transaction: `ALTER SYSTEM` refuses to run in one).
    pub(super) async fn sql_batch(&self, statements: &str, within: Duration) -> Result<(), String> {
        let work = async {
            let client = self
                .sql
                .admin_session(&self.spec.target, within)
                .await
                .map_err(|e| format!("{e:?}"))?;
            for statement in statements.split(";\n") {
                client
                    .batch_execute(statement)
                    .await
                    .map_err(|e| match e.as_db_error() {
                        Some(db) => format!("{statement}: {}", db.message()),
                        None => format!("{statement}: {e}"),
                    })?;
            }
            Ok(())
        };
        tokio::time::timeout(within, work)
            .await
            .map_err(|_| format!("no answer within {within:?}"))?
    }

    /// Ask the local standby to promote, without waiting (the caller
    /// keeps renewing its lease meanwhile).
    pub async fn start_promotion(&self) -> Result<(), String> {
        self.sql_batch("SELECT pg_promote(false)", Duration::from_secs(5))
            .await
    }

    /// After the promotion: a write is accepted, and `primary_conninfo`
    /// is cleared (a restart not by the agent comes back as a standby of
    /// nobody).
    pub async fn confirm_promotion(&self) -> Result<(), String> {
        self.sql_batch(
            // Not waiting for synchronous standbys: they stream from the
            // new primary only once it is one.
            "BEGIN; SET LOCAL synchronous_commit = local; CREATE TEMP TABLE watchpost_promoted (at timestamptz); INSERT INTO watchpost_promoted VALUES (now()); COMMIT;\nALTER SYSTEM RESET primary_conninfo;\nSELECT pg_reload_conf()",
            Duration::from_secs(10),
        )
        .await
    }

    /// A setting as the agent's session sees it (`current_setting`).
    pub async fn setting(&self, name: &str) -> Result<String, String> {
        let rows = self
            .rows(
                &format!(
                    "SELECT current_setting('{}') AS value",
                    name.replace('\'', "''")
                ),
                Duration::from_secs(2),
            )
            .await?;
        Ok(rows
            .first()
            .map(|r| r.get::<_, String>("value"))
            .unwrap_or_default())
    }

    /// `ALTER SYSTEM SET name = 'value'` and reload (`ALTER SYSTEM` runs
    /// on a standby too: a standby keeps the setting for its promotion).
    pub async fn alter_system(&self, name: &str, value: &str) -> Result<(), String> {
        let value = value.replace('\'', "''");
        self.sql_batch(
            &format!("ALTER SYSTEM SET {name} = '{value}';\nSELECT pg_reload_conf()"),
            Duration::from_secs(10),
        )
        .await
    }

    /// The `primary_conninfo` this member uses to stream from `host:port`.
    pub fn conninfo(&self, host: &str, port: u16) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut parts = vec![
            format!("host={}", quote(host)),
            format!("port={port}"),
            format!("user={}", quote(&self.spec.replication_user)),
            format!("application_name={}", quote(&self.spec.name)),
        ];
        if let Some(passfile) = &self.spec.passfile {
            parts.push(format!(
                "passfile={}",
                quote(&passfile.display().to_string())
            ));
        }
        // Also `pg_rewind`'s source (this string and a dbname).
        if self.spec.replication_sslmode.is_some() || self.spec.replication_sslrootcert.is_some() {
            parts.push(format!("sslmode={}", self.spec.sslmode()));
        }
        if let Some(ca) = &self.spec.replication_sslrootcert {
            parts.push(format!("sslrootcert={}", quote(&ca.display().to_string())));
        }
        parts.join(" ")
    }

    /// Repoint a running standby at `host:port` (PostgreSQL 13+ applies
    /// `primary_conninfo` on reload; `recovery_target_timeline` is `latest`).
    pub async fn follow(&self, host: &str, port: u16) -> Result<(), String> {
        self.alter_system("primary_conninfo", &self.conninfo(host, port))
            .await
    }

    /// Mark the data directory a standby's ([`pgdata::mark_standby`]):
    /// a (re)start, by the agent, an operator or a service manager, brings
    /// the server up in recovery. Only the agent holding the leader key
    /// promotes it.
    pub fn mark_standby(&self) -> std::io::Result<()> {
        pgdata::mark_standby(self.data_dir())
    }

    /// Mark the stopped server a standby of `host:port` on disk
    /// ([`pgdata::demote_on_disk`], as the data directory's owner), so
    /// that it starts as one.
    pub fn point_at(&self, host: &str, port: u16) -> Result<(), String> {
        let owner = owner_if_root(self.data_dir())?;
        pgdata::demote_on_disk(self.data_dir(), &self.conninfo(host, port), owner).map_err(|e| {
            format!(
                "cannot write {} and primary_conninfo: {e}",
                pgdata::STANDBY_SIGNAL
            )
        })
    }

    /// Start the server (as a standby when the data directory is marked
    /// so): [`PgCtl::start`], waiting up to 60 s until it answers.
    pub async fn start(&self) -> Result<(), String> {
        let log = self.data_dir().join("log").join("watchpost-cluster.log");
        pgdata::ensure_log_dir(self.data_dir())
            .map_err(|e| format!("cannot prepare the log directory: {e}"))?;
        self.run(
            self.ctl().start(self.data_dir(), &log, None, 60),
            Duration::from_secs(70),
        )
        .await
        .map(|_| ())
    }

    /// Stop the server: `immediate` to stop acknowledging writes at once
    /// (losing the lease), `fast` for a clean shutdown (before a rewind).
    /// `Ok` only once the server is known to be stopped: a state that
    /// cannot be told after the stop is an error ([`ctl::stop_known`]).
    pub async fn stop(&self, mode: &str) -> Result<(), String> {
        let mode = StopMode::named(mode).ok_or_else(|| format!("no stop mode {mode:?}"))?;
        ctl::stop_known(
            &self.ctl(),
            self.data_dir(),
            mode,
            30,
            Duration::from_secs(40),
        )
        .await
    }

    /// What the control file says ([`controldata::read`], as the data
    /// directory's owner).
    async fn controldata(&self) -> Result<ControlData, String> {
        controldata::read(
            &self.spec.bin_dir,
            self.data_dir(),
            owner_if_root(self.data_dir())?,
        )
        .await
    }

    /// The cluster state the control file holds ("shut down", "in
    /// production", ...).
    async fn control_state(&self) -> Result<String, String> {
        self.controldata().await?.state().map(str::to_string)
    }

    /// Rejoin a former primary (running or not) as a standby of
    /// `host:port`: shut it down cleanly (a crashed one is first started
    /// as a standby, which replays its own WAL, then stopped), `pg_rewind`
    /// it against the leader (a no-op when it did not diverge), point it at
    /// the leader and start it.
    pub async fn rewind_and_follow(
        &self,
        host: &str,
        port: u16,
        source: &str,
    ) -> Result<String, String> {
        self.stop("fast").await?;
        if !self.control_state().await?.starts_with("shut down") {
            self.point_at(host, port)?;
            self.start().await?;
            self.stop("fast").await?;
        }
        // pg_rewind copies the source's configuration files over this
        // node's own (its port, its pg_hba): keep them and put them back.
        let kept = keep_config(self.data_dir());
        let rewound = self
            .run(
                vec![
                    self.program("pg_rewind"),
                    "-D".into(),
                    self.data_dir().display().to_string(),
                    format!("--source-server={source}"),
                ],
                Duration::from_secs(300),
            )
            .await;
        restore_config(self.data_dir(), kept);
        let rewound = rewound.map_err(|e| format!("pg_rewind failed: {e}"))?;
        self.point_at(host, port)?;
        self.start().await?;
        Ok(rewound)
    }
}

/// The configuration files a data directory may hold.
const CONFIG_FILES: [&str; 4] = [
    "postgresql.conf",
    "postgresql.auto.conf",
    "pg_hba.conf",
    "pg_ident.conf",
];

/// The largest configuration file kept across a rewind.
const MAX_CONFIG: u64 = 4 << 20;

/// The node's own configuration files, read before a rewind (regular
/// files of the directory's owner only: never through a link).
fn keep_config(data_dir: &Path) -> Vec<(&'static str, Vec<u8>, u32)> {
    use std::os::unix::fs::MetadataExt;
    let Ok(dir) = crate::safefs::OwnedDir::open(data_dir) else {
        return Vec::new();
    };
    CONFIG_FILES
        .iter()
        .filter_map(|name| {
            let bytes = dir.read(name, MAX_CONFIG).ok()??;
            let mode = std::fs::symlink_metadata(dir.entry(name))
                .map(|m| m.mode() & 0o777)
                .unwrap_or(0o600);
            Some((*name, bytes, mode))
        })
        .collect()
}

/// Put the kept files back (replaced under a random temporary name,
/// handed to the directory's owner by descriptor, never through a link).
fn restore_config(data_dir: &Path, kept: Vec<(&'static str, Vec<u8>, u32)>) {
    let dir = match crate::safefs::OwnedDir::open(data_dir) {
        Ok(dir) => dir,
        Err(e) => {
            tracing::error!("cannot restore the configuration files after pg_rewind: {e}");
            return;
        }
    };
    for (name, bytes, mode) in kept {
        if let Err(e) = dir.replace(name, &bytes, mode) {
            tracing::error!("cannot restore {name} after pg_rewind: {e}");
        }
    }
}

/// Where `timeline` began, from the history read beside the observation
/// (`(its timeline, the file's text)`: used only when it is the same
/// timeline).
fn start_of(timeline: u64, history: &Option<(Option<i64>, Option<String>)>) -> Option<u64> {
    match history {
        Some((Some(read), text)) if *read as u64 == timeline => {
            super::history::start(timeline, text.as_deref())
        }
        _ => None,
    }
}

/// Where a cleanly stopped server's stream ended, in the engine's
/// positions (what [`LocalServer::shut_down_at`] and the other backends'
/// `shut_down_at` return).
#[derive(Clone, Debug, PartialEq)]
pub struct ShutDown {
    /// The position a standby must have replayed **up to, inclusive,** to
    /// hold everything the server wrote. PostgreSQL: one byte past the
    /// shutdown checkpoint record's start (the control file's "Latest
    /// checkpoint location", bytes from 0/0:
    /// [`controldata::ShutdownCheckpoint`]); MariaDB: the last GTID's
    /// sequence number; Redis: the replication offset, which is 0 on a
    /// primary with no write since its first replica attached (Redis
    /// counts it only once it keeps a backlog), so "past the position
    /// before it" could not be said.
    pub reach: u64,
    pub timeline: u64,
}

/// The switchover's side of the local server.
impl LocalServer {
    /// `CHECKPOINT`: the shutdown checkpoint that follows has little to
    /// write, so the server stops taking writes for a shorter time.
    pub async fn checkpoint(&self) -> Result<(), String> {
        self.sql_batch("CHECKPOINT", Duration::from_secs(120)).await
    }

    /// After a clean stop: where its WAL ends (the control file's
    /// shutdown checkpoint); an error when the server is not cleanly shut
    /// down.
    pub async fn shut_down_at(&self) -> Result<ShutDown, String> {
        let checkpoint = self.controldata().await?.shutdown_checkpoint()?;
        Ok(ShutDown {
            // Replayed past the checkpoint record's start: it has the record.
            reach: checkpoint.location + 1,
            timeline: checkpoint.timeline,
        })
    }
}

impl LocalServer {
    /// The settings that wait for a restart (`pg_settings.pending_restart`),
    /// by name.
    pub async fn pending_restart(&self) -> Result<Vec<String>, String> {
        let rows = self
            .rows(
                "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name",
                Duration::from_secs(10),
            )
            .await?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    /// The timeline the WAL receiver streams on, while it streams.
    pub async fn receiving_timeline(&self) -> Option<u64> {
        let rows = self
            .rows(
                "SELECT received_tli::int8 AS tli FROM pg_stat_wal_receiver WHERE status = 'streaming'",
                Duration::from_secs(3),
            )
            .await
            .map_err(|e| tracing::debug!("cluster: cannot read the receiving timeline: {e}"))
            .ok()?;
        rows.first()?.get::<_, Option<i64>>("tli").map(|t| t as u64)
    }
}

const REPLICATION: &str = "SELECT current_setting('synchronous_standby_names') AS names,
    current_setting('synchronous_commit') AS commit,
    pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS lsn,
    COALESCE((SELECT json_agg(json_build_array(application_name,
        pg_wal_lsn_diff(flush_lsn, '0/0')::float8, sync_priority > 0))::text
      FROM pg_stat_replication WHERE state = 'streaming' AND flush_lsn IS NOT NULL), '[]') AS streaming";

impl LocalServer {
    /// What the primary says of its synchronous replication.
    pub async fn replication(&self) -> Result<super::server::Replication, String> {
        let rows = self.rows(REPLICATION, Duration::from_secs(2)).await?;
        let row = rows.first().ok_or("the statement returned no row")?;
        let streaming: Vec<(String, f64, bool)> =
            serde_json::from_str(&row.get::<_, String>("streaming")).map_err(|e| e.to_string())?;
        Ok(super::server::Replication {
            names: row.get("names"),
            commit: row.get("commit"),
            lsn: row.get::<_, f64>("lsn").max(0.0) as u64,
            streaming: streaming
                .into_iter()
                .map(|(n, at, candidate)| (n, at.max(0.0) as u64, candidate))
                .collect(),
        })
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
