//! The high-availability loop of one member, every `loop_wait`:
//!
//! 1. renew its lease (first: the leader's safety depends on it);
//! 2. look at the local server;
//! 3. publish itself (and, as the leader, its flush position);
//! 4. read the scope (leader, last leader position, members, pause);
//! 5. act: as the leader, keep a healthy primary (restart it in place if
//!    it crashed, hand over if it stays down) and, with `synchronous =
//!    true`, its synchronous standbys ([`super::sync`]); as a follower, keep
//!    following the leader (repoint, or demote and rewind a server that
//!    runs as a primary); with no leader, the most advanced healthy standby
//!    takes the key in one transaction and promotes.
//!
//! The leader demotes its server (stop, immediate) as soon as it cannot
//! be sure it still holds the key: when a renewal says the lease is gone,
//! or when no renewal has succeeded for `ttl` minus a safety margin
//! (measured from *before* the last successful request was sent, so always
//! before etcd can expire the lease). While it leads, its data directory
//! stays marked a standby's, so a restart by anyone but the agent brings the
//! server back read-only.

use super::etcd::{Etcd, Kv};
use super::local::{LocalServer, Observation};
use super::member::Member;
use super::{ClusterView, Keys};
use crate::cluster::dcs::Dcs;
use crate::cluster::server::{Fence, Server};
use crate::events::Decision;
use crate::remediate::Remediator;
use parking_lot::Mutex;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// After a failed rewind, how long before the next attempt.
pub(super) const REWIND_RETRY: Duration = Duration::from_secs(30);

/// What the loop remembers between ticks, over a consensus store `D`
/// (etcd in production) and a server `S` (the local PostgreSQL server).
pub struct Ha<D: Dcs = Etcd, S: Server = LocalServer> {
    pub etcd: D,
    /// Shared, so that a long action can own a handle on it while the
    /// loop renews the lease ([`super::during`]).
    pub local: Arc<S>,
    pub keys: Keys,
    /// Where decisions are recorded (none in tests: [`Ha::tick`]'s answer).
    pub audit: Option<Arc<Remediator>>,
    /// What this tick did so far (returned by [`Ha::tick`]).
    pub(super) did: Mutex<Vec<super::did::Did>>,
    pub view: Arc<Mutex<ClusterView>>,
    pub api: String,
    /// `state_dir/cluster-leader`: present while this node's data
    /// directory may hold WAL the next leader does not have (it led).
    pub marker: PathBuf,
    pub(super) lease: Option<i64>,
    /// We hold the leader key until then (at the latest). Lost at a
    /// restart, safely: the new run has no deadline, so it serves nothing
    /// on the old term's word; the crashed run's watchdog stays armed with
    /// it, and the key is taken over only while it still names this node.
    pub(super) leader_until: Option<Instant>,
    /// When the last successful renewal (or grant) was sent: a new
    /// leader's deadline counts from it.
    pub(super) renewed_at: Option<Instant>,
    /// [`super::clock::suspended_ns`] read when `renewed_at` was: the
    /// time the machine sleeps after it counts against the deadline,
    /// which `Instant` alone does not see ([`Ha::lease_now`]).
    pub(super) suspended_at_renewal: u64,
    /// Until when this member stands aside after giving up a key it could
    /// not use (its promotion never asked: [`Ha::release_unpromoted`]):
    /// published as no healthy standby, so that it is nobody's rival.
    pub(super) stand_aside_until: Option<Instant>,
    /// Since when the local postmaster is gone while we lead. Lost at a
    /// restart, safely: counted again, the key is released later, never
    /// earlier.
    pub(super) down_since: Option<Instant>,
    /// When we repointed replication and started waiting for streaming.
    pub(super) following_since: Option<Instant>,
    /// The last "no candidate" reason recorded, so it is recorded once.
    pub(super) last_note: Option<String>,
    /// When a rewind last failed: the next try waits [`REWIND_RETRY`].
    pub(super) rewind_failed: Option<Instant>,
    /// The server's settings were checked for `pg_rewind`.
    pub(super) checked: bool,
    pub(super) paused: bool,
    /// After a switchover away from this node: to whom, and where its
    /// WAL ended (checked once it streams again).
    pub(super) rejoin: Option<(String, super::local::ShutDown)>,
    /// The separate process that stops the server if this agent stops
    /// renewing while it leads.
    pub(super) watchdog: S::Fence,
    /// The `sync` key as last read (any term's).
    pub(super) sync_key: Option<super::sync::SyncKey>,
    /// The revision of the last read of the scope if it showed no leader
    /// key (published with the next observation: [`Member::leaderless`]).
    pub(super) leaderless: Option<i64>,
    /// Narrowing the synchronous set: the set PostgreSQL already waits
    /// for, and the WAL position they must flush before etcd says so.
    /// Lost at a restart, safely: taken again at a later position, the
    /// set in etcd narrows later, never earlier.
    pub(super) shrink_mark: Option<(Vec<String>, u64)>,
    /// Fewer standbys can be synchronous than `synchronous_node_count`:
    /// how many (warned once per change).
    pub(super) sync_short: Option<usize>,
    /// The server fault last reported (`postmaster.pid` unusable, state
    /// unknown), so that it is recorded once per change.
    pub(super) server_fault: Option<String>,
    /// A server this node failed to stop after losing the lease: the
    /// watchdog stays armed with this deadline until it is known stopped.
    /// Lost at a restart, safely: the deadline is past when it is set, so
    /// the crashed run's armed watchdog fires; the new run stops a primary
    /// it finds without the key every pass.
    pub(super) unfenced_until: Option<Instant>,
    /// The leader's timeline as last read (the election's reference).
    pub(super) leader_timeline: Option<super::member::LeaderTimeline>,
    /// The `timeline` key's value that `leader_timeline` came from (as
    /// read, or as this node last wrote it; `None`: absent). Every
    /// transaction that takes the leader key compares it, so that a term
    /// taken on a stale read (a late answer) fails instead of writing, and
    /// later putting back, a term before the one the store holds (seed
    /// 104: a switchover's failed promotion put back the term before the
    /// old leader's latest, and every server was then past it).
    pub(super) timeline_read: Option<String>,
    /// While a term this node took the key for has not opened (its server
    /// not promoted yet): the leader's timeline before it, put back if the
    /// term does not open, and the one it wrote (compared when putting
    /// back, so that a later term's is never overwritten); also on disk,
    /// read back by a restarted agent (`pending.rs`).
    pub(super) term_before: Option<super::pending_term::PendingTerm>,
    /// Faults that last over loops, logged once ([`super::quiet`]).
    pub(super) faults: Mutex<super::quiet::Faults>,
}

impl<D: Dcs, S: Server> Ha<D, S> {
    pub fn new(
        etcd: D,
        local: S,
        keys: Keys,
        audit: Option<Arc<Remediator>>,
        view: Arc<Mutex<ClusterView>>,
        api: String,
        marker: PathBuf,
    ) -> Ha<D, S> {
        let watchdog = local.fence(marker.with_file_name("cluster-watchdog.json"));
        // A term an earlier run of this agent took the key for and had not
        // opened: put back once the key is free, if it never asked for the
        // promotion. Unreadable: nothing is put back (it may have opened).
        let dir = marker.parent().unwrap_or(std::path::Path::new("/"));
        let term_before = super::pending_term::PendingTerm::load(dir).unwrap_or_else(|e| {
            tracing::error!(
                "cluster: {e}: a term an earlier run took the key for is never put back"
            );
            None
        });
        Ha {
            watchdog,
            did: Mutex::new(Vec::new()),
            etcd,
            local: Arc::new(local),
            keys,
            audit,
            view,
            api,
            marker,
            lease: None,
            leader_until: None,
            renewed_at: None,
            suspended_at_renewal: super::clock::suspended_ns(),
            stand_aside_until: None,
            down_since: None,
            following_since: None,
            last_note: None,
            rewind_failed: None,
            checked: false,
            paused: false,
            rejoin: None,
            sync_key: None,
            leaderless: None,
            shrink_mark: None,
            sync_short: None,
            server_fault: None,
            unfenced_until: None,
            leader_timeline: None,
            timeline_read: None,
            term_before,
            faults: Mutex::default(),
        }
    }

    pub(super) fn ttl(&self) -> Duration {
        self.local.spec().ttl
    }

    /// The margin kept before the lease could expire: a third of it.
    pub(super) fn margin(&self) -> Duration {
        self.ttl() / 3
    }

    /// Arm the watchdog with the lease deadline plus a sixth of `ttl`
    /// (the agent's own stop comes first; etcd cannot expire the lease
    /// before another sixth), or disarm it; record it if it fired.
    pub(super) fn guard(&mut self) {
        // The watchdog's clock (CLOCK_BOOTTIME) counts the time the
        // machine slept since the renewal the deadline counts from, which
        // `Instant` does not: taken off, so that the fence's deadline is
        // where the lease's is.
        let slept = super::clock::slept_since(self.suspended_at_renewal);
        let until = self
            .leader_until
            .or(self.unfenced_until)
            .map(|until| until + self.ttl() / 6)
            .map(|until| until.checked_sub(slept).unwrap_or(until));
        if let Some((stopped, message)) = self.watchdog.sync(until) {
            let decision = if stopped {
                Decision::Demoted
            } else {
                Decision::Step
            };
            self.record(decision, message);
        }
    }

    /// Whether the fence runs armed (a leader's must).
    pub fn watchdog_armed(&self) -> bool {
        self.watchdog.armed()
    }

    pub(super) fn holding(&self) -> bool {
        self.leader_until
            .is_some_and(|until| self.lease_now() < until)
    }

    /// Now, on the clock of the leader's deadline: `Instant::now()` plus
    /// the time the machine was suspended since the last renewal was sent
    /// (CLOCK_MONOTONIC stops while it sleeps; the lease in etcd does
    /// not: [`super::clock`]). A node resumed past its deadline is past
    /// it here, before it acts as the leader again.
    pub(super) fn lease_now(&self) -> Instant {
        Instant::now() + super::clock::slept_since(self.suspended_at_renewal)
    }

    pub(super) fn record(&self, decision: Decision, message: String) {
        if let Some(audit) = &self.audit {
            audit.record_cluster(
                decision,
                message.clone(),
                json!({"member": self.local.spec().name}),
            );
        }
        self.did
            .lock()
            .push(super::did::Did::from_record(decision, message));
    }

    /// One pass of the loop: what it did, in order (at least one entry:
    /// the steady state when nothing was decided).
    pub async fn tick(&mut self) -> Vec<super::did::Did> {
        self.did.lock().clear();
        self.pass().await;
        let mut did = std::mem::take(&mut *self.did.lock());
        if did.is_empty() {
            did.push(self.steady());
        }
        did
    }

    /// What a pass that decided nothing kept: leading, following, or
    /// waiting.
    fn steady(&self) -> super::did::Did {
        use super::did::Did;
        if self.holding() {
            Did::Renewed
        } else if self.view.lock().observation.streaming_from.is_some() {
            Did::Following
        } else {
            Did::Waiting
        }
    }

    async fn pass(&mut self) {
        self.renew().await;
        // Past the deadline already (etcd out of reach): stop now, not
        // after this loop's other etcd calls have timed out too.
        let mut demoted = self.check_deadline().await;
        if self.holding() && !self.watchdog_armed() {
            // Its fence exited (renew just tried to arm it again).
            self.unfenced_leader().await;
        }
        let budget = self.local.spec().loop_wait.max(Duration::from_millis(500));
        let seen = self.local.observe(budget).await;
        self.note_server_fault(&seen);
        if seen.answering && !self.checked {
            self.checked = true;
            if let Some(problem) = self.local.rewind_precondition().await {
                tracing::error!("cluster: {problem}");
                self.record(Decision::Failed, problem);
            }
        }
        let me = self.member(&seen);
        let published = self.publish(&me, &seen).await;
        if published.is_ok() {
            // Its term as it is (a term opened before the key existed, or
            // the real switch point of its promotion).
            self.publish_term(&seen).await;
        }
        // A refused write (NOSPACE: etcd refuses every write, yet serves
        // reads and renews leases) must not blind the loop: the scope is
        // still read, so that the leader, the members and the alarm stay
        // in view. Only an etcd that answers nothing spares the read.
        let scope = match &published {
            Err(e) if e.unreachable() => Err(e.clone()),
            _ => self.etcd.read_scope(&self.keys.root).await,
        };
        demoted |= self.check_deadline().await;
        self.etcd
            .note(published.as_ref().err().or(scope.as_ref().err()));
        let Ok((scope, revision)) = scope else {
            self.leaderless = None;
            // etcd out of reach: no decision can be made. A server running
            // as a primary without the key (this agent restarted, or its
            // stop failed) must not go on taking writes.
            if seen.primary() && !self.holding() && !demoted {
                self.stop_stray_primary(
                    "etcd is out of reach and this node does not hold the leader key",
                )
                .await;
            }
            self.update_view(&seen, None, &[], None);
            self.guard();
            return;
        };
        self.etcd.check_written(&self.keys.root, &scope);
        let snapshot = self.keys.snapshot(&scope);
        let leader = snapshot.leader.cloned();
        self.sync_key = snapshot.sync.map(super::sync::SyncKey::read);
        self.leaderless = leader.is_none().then_some(revision);
        let (optime, members) = (snapshot.optime, snapshot.members);
        self.leader_timeline = snapshot.timeline;
        self.timeline_read = snapshot.timeline_text.map(String::from);
        self.note_pause(snapshot.paused);
        self.update_view(
            &seen,
            leader.as_ref().map(|l| l.value.clone()),
            &members,
            optime,
        );
        let switchover = super::handover::pending(&scope, &self.keys.switchover);
        self.act(&seen, &me, leader.as_ref(), optime, &members, switchover)
            .await;
        self.serve_restart(&scope, &seen).await;
        if self.rejoin.is_some() {
            let upstream = leader
                .as_ref()
                .and_then(|l| members.iter().find(|m| m.name == l.value));
            self.check_rejoin(&seen, upstream).await;
        }
        self.guard();
    }

    /// Stop a server that runs as a primary while this node does not hold
    /// the key; tried again every loop until it is down.
    pub(super) async fn stop_stray_primary(&mut self, why: &str) {
        match self.local.stop("immediate").await {
            Ok(()) => self.record(
                Decision::Demoted,
                format!("stopped the local server, a primary without the leader key: {why}"),
            ),
            Err(e) => tracing::error!("cluster: cannot stop the local primary ({why}): {e}"),
        }
    }

    pub(super) fn member(&self, seen: &Observation) -> Member {
        let spec = &self.local.spec();
        Member {
            name: spec.name.clone(),
            role: seen.role().into(),
            healthy: seen.healthy_standby()
                && self
                    .stand_aside_until
                    .is_none_or(|until| Instant::now() >= until),
            lsn: seen.lsn,
            replayed: seen.replayed,
            timeline: seen.timeline,
            timeline_start: seen.timeline_start,
            streaming_from: seen.streaming_from.clone(),
            host: spec.host.clone(),
            port: spec.port,
            api: self.api.clone(),
            nofailover: spec.nofailover,
            failover_priority: spec.failover_priority,
            leaderless: super::sync::settled(seen, self.leaderless),
            // The marker outlives a term until the server streams from a
            // leader (or this node leads again).
            diverged: !self.holding() && self.marked_diverged(),
        }
    }

    pub(super) async fn publish(
        &self,
        me: &Member,
        seen: &Observation,
    ) -> Result<(), super::etcd::EtcdError> {
        let Some(lease) = self.lease else {
            return Err(super::etcd::EtcdError::Local("no lease".into()));
        };
        let text = serde_json::to_string(me).unwrap_or_default();
        self.etcd
            .put_changed(&self.keys.member(&me.name), &text, lease)
            .await?;
        if self.holding()
            && seen.primary()
            && let Some(lsn) = seen.lsn
        {
            self.etcd
                .put_changed(&self.keys.optime, &lsn.to_string(), 0)
                .await?;
        }
        Ok(())
    }

    fn note_pause(&mut self, paused: bool) {
        if paused != self.paused {
            self.paused = paused;
            let (decision, what) = if paused {
                (
                    Decision::Paused,
                    "maintenance mode: no automatic failover until `watchpost cluster resume`",
                )
            } else {
                (
                    Decision::Resumed,
                    "maintenance mode lifted: automatic failover again",
                )
            };
            self.record(decision, what.into());
        }
    }

    fn update_view(
        &self,
        seen: &Observation,
        leader: Option<String>,
        members: &[Member],
        optime: Option<u64>,
    ) {
        let mut view = self.view.lock();
        view.observation = seen.clone();
        view.leader = leader;
        view.is_leader = self.holding();
        view.members = members.to_vec();
        view.leader_optime = optime;
        view.paused = self.paused;
        view.sync = self.sync_key.as_ref().and_then(|key| key.set.clone().ok());
        view.updated = Some(std::time::Instant::now());
    }

    async fn act(
        &mut self,
        seen: &Observation,
        me: &Member,
        leader: Option<&Kv>,
        optime: Option<u64>,
        members: &[Member],
        switchover: Option<(super::switchover::Request, String)>,
    ) {
        let mine = leader.is_some_and(|l| l.value == me.name && Some(l.lease) == self.lease);
        let ours_from_before =
            leader.is_some_and(|l| l.value == me.name && Some(l.lease) != self.lease);
        if ours_from_before {
            // The key still names this node under the lease of an earlier
            // run of this agent: nobody else leads. Take it over (only if
            // it still names us) rather than following ourselves.
            // A hand-over this node started and left unfinished (its
            // agent restarted after stopping its server for it): the key
            // is taken back only together with withdrawing the request,
            // never beside a target that may take it over.
            let unfinished = switchover.as_ref().filter(|(request, _)| {
                request.from == me.name
                    && matches!(
                        request.stage,
                        super::switchover::Stage::Stopping | super::switchover::Stage::Stopped
                    )
            });
            let taken = match self.lease {
                Some(lease) => {
                    let answer = match unfinished {
                        Some((request, raw)) => self.take_back(request, raw, lease).await,
                        None => {
                            self.etcd
                                .replace_if(&self.keys.leader, &me.name, lease)
                                .await
                        }
                    };
                    self.won_key(answer, lease).await == super::owner::Won::Yes
                }
                None => false,
            };
            if let (Some(sent), true) = (self.renewed_at, taken) {
                self.leader_until = Some(sent + self.ttl() - self.margin());
                self.guard();
                self.record(
                    Decision::Acquired,
                    "took over the leader key left by an earlier run of this agent".into(),
                );
                if let Some((request, _)) = unfinished {
                    self.record(
                        Decision::Failed,
                        format!(
                            "switchover to `{}`: the old leader's agent restarted during the hand-over: withdrew it and took the leader key back",
                            request.to
                        ),
                    );
                }
                if let Err(e) = self.fence_ready() {
                    self.give_up_key(&e).await;
                    return;
                }
                // As in every term: a restart by anyone comes up read-only,
                // and the marker says this node led (a server not running
                // as a primary gets it when it is promoted; one that ran as
                // a primary in the earlier run kept it from then).
                self.keep_standby_marked();
                if seen.primary() {
                    self.mark_diverged(true);
                }
                self.lead(seen, members).await;
            } else if seen.primary() {
                self.stop_stray_primary("the leader key names this node under an old lease that could not be taken over").await;
            }
            return;
        }
        if let Some(pending) = switchover
            && self
                .switchover(
                    pending,
                    leader.map(|l| l.value.as_str()),
                    mine,
                    seen.primary(),
                    members,
                    optime,
                )
                .await
        {
            return;
        }
        match leader {
            Some(_) if mine => {
                if self.leader_until.is_none() {
                    self.found_key_ours();
                    if seen.primary() {
                        self.mark_diverged(true);
                    }
                    let ready = match self.fence_ready() {
                        Ok(()) => self.prepare_synchronous(members).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = ready {
                        self.give_up_key(&e).await;
                        return;
                    }
                }
                self.lead(seen, members).await;
                if seen.primary() && self.holding() {
                    self.keep_synchronous(members).await;
                }
            }
            Some(l) => {
                if let Some(until) = self.leader_until.take() {
                    self.lose_lease(until, &format!("`{}` holds the leader key", l.value))
                        .await;
                    return;
                }
                if let Some(upstream) = members.iter().find(|m| m.name == l.value) {
                    self.follow(seen, upstream).await;
                }
            }
            None => {
                if let Some(until) = self.leader_until.take() {
                    self.lose_lease(until, "the leader key is gone").await;
                    return;
                }
                self.put_back_pending_term().await;
                if !self.paused {
                    self.elect(seen, me, optime, members).await;
                }
            }
        }
    }
}
