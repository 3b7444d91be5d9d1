//! The MariaDB server backend of the cluster mode: the HA core
//! ([`super::ha::Ha`]) drives a member's `mariadbd` through the
//! [`Server`] interface, with the same decisions as PostgreSQL's.
//!
//! How MariaDB maps onto what the core compares:
//!
//! - **primary / standby**: the leader key means `read_only = 0`. Every
//!   start is read-only (the member's option file sets `read_only = ON`,
//!   checked at start, and the agent's command line says it again), as
//!   the standby marker does for PostgreSQL; only the key holder turns it
//!   off. `in_recovery` is `read_only`.
//! - **positions** (`lsn`): the sequence number of the last GTID in the
//!   cluster's replication domain (`@@gtid_domain_id`, the same on every
//!   member): a primary's `gtid_binlog_pos`; a replica's furthest of its
//!   binary log, `gtid_slave_pos` (applied: `replayed`) and the IO
//!   thread's `Gtid_IO_Pos` (received). MariaDB numbers a domain's
//!   transactions on from the highest it has seen, whichever server
//!   writes, so these numbers order members as LSNs do.
//! - **timeline**: the term, a row of `watchpost.cluster_term` written by
//!   each promotion (one past the promoted server's own term) as its
//!   first write, and replicated like any other: a member's timeline is
//!   the last term it has applied (1 before any). The core's rule "a
//!   candidate is on the last leader's timeline, or on the one before at
//!   or before the switch point" then holds for GTIDs: a former primary
//!   with transactions the new leader lacks is on the old term past the
//!   switch point, so it is never a candidate.
//! - **unfit** (never a candidate, nor a rival of one): a replica with
//!   errant GTIDs (its own writes, [`crate::remediate::mysql_failover::gtid::errant`];
//!   "cannot tell" counts too), one its upstream refused with 1236
//!   (rebuild required), one whose SQL thread stopped on an error, or one
//!   without a binary log.
//! - **streaming_from**: `Master_Host:Master_Port` while the IO thread
//!   runs.
//!
//! MariaDB cannot rewind: a diverged former primary that the leader
//! refuses (1236) stays read-only and not replicating, recorded as
//! "rebuild required" — never reset. The fence is the watchdog
//! ([`super::watchdog`], SIGKILL by `mariadbd.pid`), and a leader losing
//! its lease sets `read_only = 1` and kills the client sessions before it
//! stops the server. Synchronous mode is PostgreSQL's only.

pub mod accounts;
mod observe;
pub mod options;
pub mod position;
mod process;
pub mod replicate;
mod startup;

pub use startup::{check_at_start, warnings};

use super::local::{Observation, ShutDown};
use super::server::{Replication, Server};
use crate::config::ClusterSpec;
use crate::pgserver::postmaster::Probe;
use crate::remediate::mysql_failover::server::Server as Session;
use crate::sql::SqlTargets;
use crate::sql::mysql::admin::ReplicaLogin;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::time::Duration;

/// How long a statement of the agent's own may take (connecting included).
const STATEMENT: Duration = Duration::from_secs(5);
/// How long the SQL fence before a stop may take (a frozen server is
/// killed without it).
const FENCE: Duration = Duration::from_millis(500);
/// How long a start may take to take sessions (crash recovery included).
const START: Duration = Duration::from_secs(60);

/// The local MariaDB server of a cluster member.
pub struct MariadbServer {
    pub spec: ClusterSpec,
    pub sql: SqlTargets,
    /// What the loop asked for and the server will need later.
    state: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// The accounts that write through `read_only` were looked for (once
    /// the server first answered; again before each promotion).
    accounts_checked: bool,
    /// The leader a stopped server follows once started ([`Server::point_at`]).
    upstream: Option<(String, u16)>,
    /// The term a promotion under way opens.
    term: Option<u64>,
    /// Where the old leader's last term ended (a switchover): its last
    /// GTID's sequence number and its term.
    end: Option<(u64, u64)>,
}

impl MariadbServer {
    pub fn new(spec: ClusterSpec, sql: SqlTargets) -> MariadbServer {
        MariadbServer {
            spec,
            sql,
            state: Mutex::default(),
        }
    }

    /// An admin session to the local server within `within`.
    async fn session(&self, within: Duration) -> Result<Session, String> {
        let session = self
            .sql
            .mysql_admin_session(&self.spec.target, within)
            .await
            .map_err(|e| format!("cannot connect to the local server: {e:?}"))?;
        Ok(Session {
            target: self.spec.target.clone(),
            session,
        })
    }

    /// `work` (which opens its own session), all within `within`.
    async fn bounded<T>(
        within: Duration,
        work: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        tokio::time::timeout(within, work)
            .await
            .map_err(|_| format!("no answer within {within:?}"))?
    }

    /// How other servers replicate from `host:port`: the login of the
    /// local target's `replication_dsn` (its password from a file), at
    /// that address.
    fn login(&self, host: &str, port: u16) -> Result<ReplicaLogin, String> {
        let login = self
            .sql
            .mysql_replica_login(&self.spec.target)
            .map_err(|e| format!("{e:?}"))?;
        Ok(ReplicaLogin {
            host: host.to_string(),
            port,
            ..login
        })
    }

    /// Read-only and client sessions killed, best effort within [`FENCE`]
    /// (before a stop: whatever is connected stops writing at once).
    async fn fence_sessions(&self) {
        let fenced = Self::bounded(FENCE, async {
            let s = &mut self.session(FENCE).await?;
            s.fence().await.map_err(|e| format!("{e:?}"))
        })
        .await;
        if let Err(e) = fenced {
            tracing::debug!("cluster: no SQL fence before the stop: {e}");
        }
    }

    /// Look for accounts that write through `read_only`
    /// ([`accounts`]) and warn of them. Never a refusal, even with the
    /// target's `strict_privileges`: most installs keep a DBA account with
    /// every privilege, and refusing every promotion for it would leave
    /// the cluster with no leader at all, while the fence already kills
    /// those accounts' sessions on a demoted server.
    async fn check_accounts(&self, s: &mut Session) -> Result<(), String> {
        let problem = match accounts::read(s).await {
            Ok(found) if found.is_empty() => return Ok(()),
            Ok(found) => format!(
                "accounts of the local server write through read_only: {}; a demoted server stops their writes only when the fence kills their sessions: revoke READ_ONLY ADMIN (and SUPER before MariaDB 10.11) from the application's accounts",
                found.join(", ")
            ),
            Err(e) => format!(
                "whether accounts of the local server write through read_only cannot be told: {e}"
            ),
        };
        tracing::warn!("cluster: {problem}");
        Ok(())
    }

    /// Whether the server takes an admin session.
    async fn answers(&self) -> bool {
        Self::bounded(Duration::from_secs(1), async {
            let s = &mut self.session(Duration::from_secs(1)).await?;
            s.value("SELECT 1").await.map_err(|e| format!("{e:?}"))
        })
        .await
        .is_ok()
    }
}

impl Server for MariadbServer {
    type Fence = super::watchdog::Watchdog;

    /// The term row, replicated with the data.
    fn term_is_replicated(&self) -> bool {
        true
    }

    fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    fn fence(&self, record: PathBuf) -> Self::Fence {
        super::watchdog::Watchdog::for_server(
            self.spec.data_dir.clone(),
            process::server_process(),
            record,
        )
    }

    fn postmaster(&self) -> Probe {
        process::probe(&self.spec.data_dir)
    }

    async fn observe(&self, budget: Duration) -> Observation {
        let probe = self.postmaster();
        if probe.state.stopped() {
            return observe::observation(probe, None);
        }
        let reading = Self::bounded(budget, async {
            let s = &mut self.session(budget).await?;
            observe::read(s).await.map_err(|e| format!("{e:?}"))
        })
        .await;
        if let Err(e) = &reading {
            tracing::debug!("cluster: the local MariaDB did not answer: {e}");
        }
        let first =
            reading.is_ok() && !std::mem::replace(&mut self.state.lock().accounts_checked, true);
        if first {
            let checked = Self::bounded(budget, async {
                let s = &mut self.session(budget).await?;
                self.check_accounts(s).await
            })
            .await;
            if let Err(e) = checked {
                tracing::warn!("cluster: the local server must not lead: {e}");
            }
        }
        observe::observation(probe, reading.ok().as_ref())
    }

    async fn rewind_precondition(&self) -> Option<String> {
        let settings = Self::bounded(STATEMENT, async {
            let s = &mut self.session(STATEMENT).await?;
            s.value("SELECT CONCAT(@@GLOBAL.log_bin, ',', @@GLOBAL.log_slave_updates, ',', @@GLOBAL.gtid_strict_mode)")
                    .await
                    .map_err(|e| format!("{e:?}"))
        })
            .await
            .ok()?;
        // `CONCAT` of these reads `ON`/`OFF` on MariaDB 10.11, `1`/`0` elsewhere.
        let on: Vec<bool> = settings
            .split(',')
            .map(|v| matches!(v.trim().to_ascii_uppercase().as_str(), "1" | "ON"))
            .collect();
        (on != [true, true, true]).then(|| format!(
            "the local MariaDB has log_bin, log_slave_updates, gtid_strict_mode = {settings}: the cluster mode needs all three on (a member logs what it applies so that others can follow it after a failover, and strict mode lets errant GTIDs be told from history); set them in its option file and restart it"
        ))
    }

    async fn start(&self) -> Result<(), String> {
        process::start(&self.spec, START, || self.answers()).await?;
        let upstream = self.state.lock().upstream.take();
        if let Some((host, port)) = upstream {
            self.follow(&host, port).await?;
        }
        Ok(())
    }

    async fn stop(&self, mode: &str) -> Result<(), String> {
        if self.postmaster().state.stopped() {
            return Ok(());
        }
        self.fence_sessions().await;
        process::stop(&self.spec.data_dir, mode).await
    }

    /// The whole promotion, its term written before `read_only` is lifted
    /// ([`replicate::promote`]: safe to stop after any step).
    async fn start_promotion(&self) -> Result<(), String> {
        let apply_within = (self.spec.ttl / 3).max(Duration::from_millis(500));
        let name = self.spec.name.clone();
        let term = Self::bounded(STATEMENT + apply_within, async {
            let s = &mut self.session(STATEMENT + apply_within).await?;
            self.check_accounts(s)
                .await
                .map_err(|e| format!("not promoted: {e}"))?;
            replicate::promote(s, apply_within, &name).await
        })
        .await?;
        self.state.lock().term = Some(term);
        Ok(())
    }

    /// Writable now: its term read back (written by the promotion; after
    /// an agent restart, one past the term it holds is written).
    async fn confirm_promotion(&self) -> Result<(), String> {
        let term = self.state.lock().term;
        let name = self.spec.name.clone();
        Self::bounded(STATEMENT, async {
            let s = &mut self.session(STATEMENT).await?;
            let held = observe::term(s).await.ok_or("cannot read its term")?;
            match term {
                Some(term) if held >= term => Ok(()),
                Some(term) => Err(format!(
                    "its term reads {held} after the promotion wrote {term}"
                )),
                None => replicate::open_term(s, held + 1, &name).await,
            }
        })
        .await?;
        self.state.lock().term = None;
        Ok(())
    }

    /// Nothing to write: every start is read-only already (the option
    /// file, checked at start, and the agent's command line).
    fn mark_standby(&self) -> std::io::Result<()> {
        Ok(())
    }

    /// Remembered: the server follows `host:port` once started.
    fn point_at(&self, host: &str, port: u16) -> Result<(), String> {
        self.state.lock().upstream = Some((host.to_string(), port));
        Ok(())
    }

    async fn follow(&self, host: &str, port: u16) -> Result<(), String> {
        let login = self.login(host, port)?;
        Self::bounded(STATEMENT, async {
            let s = &mut self.session(STATEMENT).await?;
            replicate::follow(s, &login, false).await
        })
        .await
    }

    fn conninfo(&self, host: &str, port: u16) -> String {
        format!("{host}:{port}")
    }

    async fn rewind_and_follow(
        &self,
        host: &str,
        port: u16,
        _source: &str,
    ) -> Result<String, String> {
        let login = self.login(host, port)?;
        Self::bounded(STATEMENT * 3, async {
            let s = &mut self.session(STATEMENT * 3).await?;
            replicate::rejoin(s, &login).await
        })
        .await
    }

    async fn setting(&self, name: &str) -> Result<String, String> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{name:?} is not a server variable's name"));
        }
        let statement = format!("SELECT CAST(@@GLOBAL.{name} AS CHAR)");
        Self::bounded(STATEMENT, async {
            let s = &mut self.session(STATEMENT).await?;
            s.value(&statement).await.map_err(|e| format!("{e:?}"))
        })
        .await
    }

    async fn alter_system(&self, name: &str, _value: &str) -> Result<(), String> {
        Err(format!(
            "changing `{name}` is PostgreSQL's synchronous mode, which the MariaDB backend does not drive"
        ))
    }

    /// Before a switchover's stop: read-only and client sessions killed
    /// (no write after this point), then where its term ends.
    async fn checkpoint(&self) -> Result<(), String> {
        let end = Self::bounded(STATEMENT, async {
            let s = &mut self.session(STATEMENT).await?;
            s.fence()
                .await
                .map_err(|e| format!("cannot make it read-only: {e:?}"))?;
            replicate::end_of_term(s).await
        })
        .await?;
        self.state.lock().end = Some(end);
        Ok(())
    }

    /// Where the stopped leader's term ended, as read when it became
    /// read-only ([`Server::checkpoint`]): its last GTID's sequence number,
    /// which a replica that applied that last transaction has reached.
    async fn shut_down_at(&self) -> Result<ShutDown, String> {
        let (last, term) = self
            .state
            .lock()
            .end
            .take()
            .ok_or("the end of the term was not read before the stop")?;
        Ok(ShutDown {
            reach: last,
            timeline: term,
        })
    }

    async fn pending_restart(&self) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    async fn receiving_timeline(&self) -> Option<u64> {
        let seen = self.observe(STATEMENT).await;
        seen.streaming_from.and(seen.timeline)
    }

    async fn replication(&self) -> Result<Replication, String> {
        Err("synchronous mode is PostgreSQL's only".into())
    }
}
