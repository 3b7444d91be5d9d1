//! Cluster mode: the agents of a PostgreSQL replication cluster share one
//! view through etcd — the existing consensus store, never a home-made
//! one — the way Patroni does, with a shorter lease.
//!
//! Keys under `/watchpost/SCOPE/`:
//!
//! - `leader`: the leader's name, under the leader's lease. Only the agent
//!   holding it runs its server as a primary; a node that loses it stops
//!   its server before the lease can expire elsewhere.
//! - `optime`: the leader's flush position, written when it moves (no
//!   lease: it is the last known position when the leader disappears).
//! - `timeline`: the leader's timeline, where its term began and who
//!   opened it (`T:LSN:NAME`, [`member::LeaderTimeline`]: PostgreSQL
//!   reuses timeline numbers, so the number names no term), written with the leader key
//!   when a term opens (the timeline its promotion leads to), rewritten
//!   by the leader under its lease with where its timeline really began
//!   once it is promoted ([`term`]), and when it changes (no lease): a
//!   candidate must be on it (the same number begun at the same point:
//!   members publish both) or on its history ([`member::off_timeline`]).
//! - `members/NAME`: each member's view of itself ([`member::Member`]),
//!   under its own lease.
//! - `sync`: with `synchronous = true`, the members among which every
//!   acknowledged commit is ([`sync::SyncSet`]), written by the leader.
//! - `pause`: present in maintenance mode (no automatic failover).
//! - `switchover`: a planned switchover asked for by an operator
//!   ([`switchover::Request`]); `switchover_result` its outcome.
//! - `restart/NAME`: one step of a rolling restart for member NAME
//!   ([`restart::Request`]); `restart_result/NAME` its outcome.
//!
//! [`ha`] is the loop, generic over a consensus store ([`dcs::Dcs`]: etcd,
//! or in memory for tests) and a server ([`server::Server`]: the local
//! PostgreSQL server, or a fake one); its lease side is in `lease`, the
//! leader's in `lead`, its follower and election side in `elect`, a term
//! taken and not opened yet (recorded in `state_dir`) in `pending`; [`ha::Ha::tick`] answers what
//! it did ([`did::Did`]). The table tests and the seeded simulation of
//! several members under faults are in `sim`.
//! [`local`] the local PostgreSQL server, [`mariadb`] the local MariaDB
//! server (the backend chosen by the cluster target's kind), [`etcd`] the client,
//! [`member`] the published view and the election rule, [`sync`] the
//! synchronous standbys and their election rule, [`watchdog`] the
//! separate process that fences a frozen leader. Decisions go to
//! the audit log (`remediation = "cluster"`) and out as events.

pub mod clock;
pub mod dcs;
pub mod did;
mod during;
mod elect;
pub mod etcd;
mod failclosed;
pub mod ha;
mod handover;
pub mod history;
mod lead;
mod lease;
pub mod least;
pub mod local;
pub mod mariadb;
pub mod member;
pub mod observation;
mod owner;
mod pending;
mod pending_term;
mod quiet;
pub mod redis;
pub mod restart;
pub mod server;
#[cfg(test)]
mod sim;
pub mod switchover;
pub mod sync;
mod takeover;
mod term;
pub mod watchdog;

use crate::config::{ClusterSpec, TargetKind};
use crate::remediate::Remediator;
use crate::sql::SqlTargets;
use local::Observation;
use member::Member;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The key names of one scope.
#[derive(Clone, Debug)]
pub struct Keys {
    pub root: String,
    pub leader: String,
    pub optime: String,
    pub timeline: String,
    pub members: String,
    pub pause: String,
    pub sync: String,
    pub switchover: String,
    pub switchover_result: String,
    /// Prefixes of the rolling restart's requests and outcomes.
    pub restart: String,
    pub restart_result: String,
}

impl Keys {
    pub fn new(scope: &str) -> Keys {
        let root = format!("/watchpost/{scope}/");
        Keys {
            leader: format!("{root}leader"),
            optime: format!("{root}optime"),
            timeline: format!("{root}timeline"),
            members: format!("{root}members/"),
            pause: format!("{root}pause"),
            sync: format!("{root}sync"),
            switchover: format!("{root}switchover"),
            switchover_result: format!("{root}switchover_result"),
            restart: format!("{root}restart/"),
            restart_result: format!("{root}restart_result/"),
            root,
        }
    }

    pub fn member(&self, name: &str) -> String {
        format!("{}{name}", self.members)
    }

    /// What one read of the scope's prefix (`kvs`) says: the leader key,
    /// the leader's last position, the members (by name) and the pause.
    pub fn snapshot<'a>(&self, kvs: &'a [etcd::Kv]) -> Snapshot<'a> {
        let timeline = kvs.iter().find(|kv| kv.key == self.timeline);
        let mut members: Vec<Member> = kvs
            .iter()
            .filter(|kv| kv.key.starts_with(&self.members))
            .filter_map(|kv| serde_json::from_str(&kv.value).ok())
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot {
            leader: kvs.iter().find(|kv| kv.key == self.leader),
            optime: kvs
                .iter()
                .find(|kv| kv.key == self.optime)
                .and_then(|kv| kv.value.parse().ok()),
            timeline: timeline.and_then(|kv| member::LeaderTimeline::parse(&kv.value)),
            timeline_text: timeline.map(|kv| kv.value.as_str()),
            members,
            paused: kvs.iter().any(|kv| kv.key == self.pause),
            sync: kvs.iter().find(|kv| kv.key == self.sync),
        }
    }

    /// The rolling restart's request for member `name`.
    pub fn restart_of(&self, name: &str) -> String {
        format!("{}{name}", self.restart)
    }

    /// The outcome of the rolling restart's request for member `name`.
    pub fn restart_result_of(&self, name: &str) -> String {
        format!("{}{name}", self.restart_result)
    }
}

/// A new id for an operator's request (switchover, restart step): the
/// time in ns and the asking process, so that its outcome can be told
/// from an earlier one's.
pub fn request_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{nanos}-{}", std::process::id())
}

/// One read of a scope, parsed ([`Keys::snapshot`]).
pub struct Snapshot<'a> {
    /// The leader key (its value names the leader; its lease is the
    /// leader's).
    pub leader: Option<&'a etcd::Kv>,
    /// The leader's last published flush position (bytes from 0/0).
    pub optime: Option<u64>,
    /// The leader's last published timeline.
    pub timeline: Option<member::LeaderTimeline>,
    /// The `timeline` key's value as read (compared by a transaction
    /// that takes the key: [`ha::Ha`]'s `timeline_read`).
    pub timeline_text: Option<&'a str>,
    /// The live members, by name.
    pub members: Vec<Member>,
    /// Maintenance mode.
    pub paused: bool,
    /// The synchronous set ([`sync::SyncSet`]), as written (its revision
    /// is the election rule's reference).
    pub sync: Option<&'a etcd::Kv>,
}

impl Snapshot<'_> {
    /// The leader's name.
    pub fn leader_name(&self) -> Option<String> {
        self.leader.map(|kv| kv.value.clone())
    }
}

/// What the loop last saw, for the role endpoints, the API and metrics.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    pub observation: Observation,
    /// The leader key's holder, as last read.
    pub leader: Option<String>,
    /// This node holds the leader key (and its lease is not past the
    /// safety deadline).
    pub is_leader: bool,
    pub members: Vec<Member>,
    pub leader_optime: Option<u64>,
    pub paused: bool,
    /// The synchronous set (`synchronous = true`), as last read.
    pub sync: Option<sync::SyncSet>,
    /// When the loop last completed a look at etcd.
    pub updated: Option<Instant>,
}

/// The running cluster member: a handle on its loop's view.
pub struct Cluster {
    pub spec: ClusterSpec,
    view: Arc<Mutex<ClusterView>>,
    /// The loop's task, which steps down when the agent stops.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Cluster {
    /// Start the member's loop. `api` is this agent's status API address,
    /// published for the others; decisions are recorded through `audit`.
    /// The server backend is chosen by the cluster target's engine
    /// ([`ClusterSpec::engine`]).
    ///
    /// Errors: the local server cannot be used safely (fail closed, named
    /// fix), or the etcd client cannot be built.
    pub fn start(
        spec: ClusterSpec,
        sql: SqlTargets,
        audit: Arc<Remediator>,
        api: String,
        state_dir: &std::path::Path,
        stop: CancellationToken,
    ) -> anyhow::Result<Arc<Cluster>> {
        match spec.engine {
            TargetKind::Postgres => {
                failclosed::check_at_start(&spec)?;
                let local = local::LocalServer::new(spec.clone(), sql);
                Self::spawn(spec, local, audit, api, state_dir, stop)
            }
            TargetKind::Mysql => {
                mariadb::check_at_start(&spec)?;
                let local = mariadb::MariadbServer::new(spec.clone(), sql);
                Self::spawn(spec, local, audit, api, state_dir, stop)
            }
            TargetKind::Redis => {
                let server = redis::check_at_start(&spec, spec.server_target.as_deref())?;
                Self::spawn(spec, server, audit, api, state_dir, stop)
            }
        }
    }

    /// For `validate`: why a PostgreSQL member's start would be refused
    /// now (its server's state cannot be read, or cannot be signalled),
    /// so that a config is not called valid while the agent would refuse
    /// to start on it. MariaDB's and Redis's say the same through their
    /// own warnings ([`mariadb::warnings`], [`redis::distro::for_config`]).
    pub fn start_refusal(spec: &ClusterSpec) -> Option<String> {
        if spec.engine != TargetKind::Postgres {
            return None;
        }
        failclosed::check_at_start(spec)
            .err()
            .map(|e| e.to_string())
    }

    /// Run the HA loop over etcd and the server backend `server`.
    fn spawn<S: server::Server>(
        spec: ClusterSpec,
        server: S,
        audit: Arc<Remediator>,
        api: String,
        state_dir: &std::path::Path,
        stop: CancellationToken,
    ) -> anyhow::Result<Arc<Cluster>> {
        let request_timeout = spec
            .loop_wait
            .max(Duration::from_millis(300))
            .min(spec.ttl / 3);
        let etcd =
            etcd::Etcd::for_cluster(&spec, request_timeout).map_err(|e| anyhow::anyhow!("{e}"))?;
        let view = Arc::new(Mutex::new(ClusterView::default()));
        let mut ha = ha::Ha::new(
            etcd,
            server,
            Keys::new(&spec.scope),
            Some(audit),
            view.clone(),
            api,
            state_dir.join("cluster-leader"),
        );
        let every = spec.loop_wait;
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => { ha.tick().await; }
                    _ = stop.cancelled() => break,
                }
            }
            ha.step_down().await;
        });
        tracing::info!(
            scope = %spec.scope,
            member = %spec.name,
            "cluster mode: leader lease {}, loop every {}",
            crate::config::units::format_duration(spec.ttl),
            crate::config::units::format_duration(spec.loop_wait)
        );
        Ok(Arc::new(Cluster {
            spec,
            view,
            task: Mutex::new(Some(task)),
        }))
    }

    /// Wait (up to `bound`) for the loop to step down after the agent's
    /// shutdown token was cancelled.
    pub async fn stopped(&self, bound: Duration) {
        let task = self.task.lock().take();
        if let Some(task) = task
            && tokio::time::timeout(bound, task).await.is_err()
        {
            tracing::error!("cluster: stepping down took longer than {bound:?}");
        }
    }

    pub fn view(&self) -> ClusterView {
        self.view.lock().clone()
    }

    /// Whether the view is recent enough to answer from (two leases).
    pub fn fresh(view: &ClusterView, ttl: Duration) -> bool {
        view.updated.is_some_and(|at| at.elapsed() < ttl * 2)
    }

    /// The view as JSON, for `/v1/cluster`.
    pub fn json(&self) -> Value {
        let view = self.view();
        json!({
            "scope": self.spec.scope,
            "member": self.spec.name,
            "leader": view.leader,
            "is_leader": view.is_leader,
            "paused": view.paused,
            "leader_optime": view.leader_optime,
            "synchronous": view.sync,
            "local": {
                "role": view.observation.role(),
                "lsn": view.observation.lsn,
                "timeline": view.observation.timeline,
                "streaming_from": view.observation.streaming_from,
            },
            "members": view.members,
        })
    }
}
