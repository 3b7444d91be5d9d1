//! The loops' side of a planned switchover ([`super::switchover`]), with
//! no acknowledged write lost by construction:
//!
//! 1. the leader checks the request again (the target may have fallen
//!    behind since), marks it `stopping` (a compare-and-set: a cancel
//!    accepted before it leaves the server alone, one after it is
//!    refused), runs a `CHECKPOINT`, and stops its server with a
//!    clean (`fast`) shutdown: it stops taking writes, and its WAL
//!    senders send every record, the shutdown checkpoint included, to
//!    the connected standbys before they exit;
//! 2. it reads where its WAL ends (its control file) and marks the
//!    request `stopped` at that position, still holding the key;
//! 3. the target, once it has replayed up to that position (inclusive:
//!    [`ShutDown::reach`]), takes the key
//!    in one transaction (only if the key still names the old leader and
//!    the request is unchanged) and promotes ([`super::takeover`]);
//! 4. the old leader sees the key move and follows the new leader: its
//!    WAL ends where the new timeline begins, so it starts as a standby
//!    without `pg_rewind`; the agent checks it streams on the new timeline.
//!
//! If the target has not taken the key within [`HAND_OVER_WAIT`], the old
//! leader withdraws the request in one transaction (so the target can no
//! longer take it) and stays the leader: its server comes back as the
//! primary through the usual restart in place. Every step is recorded.

use super::during::Kept;
use super::etcd::Op;
use super::ha::Ha;
use super::local::{Observation, ShutDown};
use super::member::Member;
use super::switchover::{Outcome, Request, Stage, refusal};
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;
use crate::events::Decision;
use crate::pgserver::lsn::lsn_text;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long the old leader waits for the target to take the key.
pub const HAND_OVER_WAIT: Duration = Duration::from_secs(20);
/// How often both sides look while a switchover is under way.
pub(super) const POLL: Duration = Duration::from_millis(50);

/// The outcome of a hand-over its old leader's restarted agent withdrew.
const ABANDONED_BY_RESTART: &str =
    "abandoned: the old leader's agent restarted during the hand-over; it stays the leader";

/// The request in the scope, with its raw value (compared in transactions).
pub fn pending(scope: &[super::etcd::Kv], key: &str) -> Option<(Request, String)> {
    let kv = scope.iter().find(|kv| kv.key == key)?;
    let request = serde_json::from_str(&kv.value).ok()?;
    Some((request, kv.value.clone()))
}

impl<D: Dcs, S: Server> Ha<D, S> {
    /// Act on a pending switchover, if this member has a part in it now:
    /// whether it did (the loop does nothing else this time).
    pub(super) async fn switchover(
        &mut self,
        (request, raw): (Request, String),
        leader: Option<&str>,
        mine: bool,
        primary: bool,
        members: &[Member],
        optime: Option<u64>,
    ) -> bool {
        let me = self.local.spec().name.clone();
        if mine && request.from != me {
            // Asked of an earlier leader: void.
            self.finish(
                &request,
                &raw,
                false,
                format!("the leader changed to `{me}` before the switchover could start"),
                None,
            )
            .await;
            return false;
        }
        if !request.due() {
            return false;
        }
        match request.stage {
            Stage::Stopping | Stage::Stopped if mine => {
                // A hand-over left unfinished (this agent restarted in
                // the middle): withdraw it before the server comes back.
                let why = ABANDONED_BY_RESTART.to_string();
                !self.finish(&request, &raw, false, why, Some(&me)).await
            }
            Stage::Requested if mine && primary => {
                self.hand_over(request, raw, members, optime).await;
                true
            }
            // Only while the old leader still holds the key: a request
            // from a leader that is gone (its lease expired) must not keep
            // its target out of the election (the next leader voids it).
            Stage::Requested | Stage::Stopping
                if request.to == me && leader == Some(request.from.as_str()) =>
            {
                self.await_stop(&request).await;
                true
            }
            Stage::Stopped if request.to == me && leader == Some(request.from.as_str()) => {
                self.take_over(request, raw).await;
                true
            }
            _ => false,
        }
    }

    /// Write the outcome (and withdraw the request when `withdraw` says
    /// which leader must still hold the key).
    async fn finish(
        &mut self,
        request: &Request,
        raw: &str,
        ok: bool,
        message: String,
        withdraw: Option<&str>,
    ) -> bool {
        let outcome = serde_json::to_string(&Outcome {
            id: request.id.clone(),
            ok,
            message: message.clone(),
        })
        .unwrap_or_default();
        let leader_key = self.keys.leader.clone();
        let mut when = vec![(self.keys.switchover.as_str(), Some(raw))];
        if let Some(leader) = withdraw {
            when.push((leader_key.as_str(), Some(leader)));
        }
        let then = [
            Op::Delete {
                key: self.keys.switchover.clone(),
            },
            Op::Put {
                key: self.keys.switchover_result.clone(),
                value: outcome,
                lease: 0,
            },
        ];
        // Withdrawn by the leader: only while the key is under its lease
        // (not only its name).
        let done = match (withdraw, self.lease) {
            (Some(_), Some(lease)) => self.etcd.txn_held(&when, (&leader_key, lease), &then).await,
            _ => self.etcd.txn(&when, &then).await,
        }
        .unwrap_or(false);
        if done {
            self.record(
                if ok {
                    Decision::Succeeded
                } else {
                    Decision::Failed
                },
                format!("switchover to `{}`: {message}", request.to),
            );
        }
        done
    }

    /// Move the switchover request from `raw` (its value now) to `next`,
    /// in one transaction and only while this node (`me`) still holds the
    /// leader key: whether it moved, and `next` as written.
    async fn advance(
        &self,
        raw: &str,
        next: &Request,
        me: &str,
    ) -> (Result<bool, super::etcd::EtcdError>, String) {
        let next_raw = serde_json::to_string(next).unwrap_or_default();
        let Some(lease) = self.lease else {
            return (
                Err(super::etcd::EtcdError::Local("no lease".into())),
                next_raw,
            );
        };
        let moved = self
            .etcd
            .txn_held(
                &[
                    (&self.keys.switchover, Some(raw)),
                    (&self.keys.leader, Some(me)),
                ],
                (&self.keys.leader, lease),
                &[Op::Put {
                    key: self.keys.switchover.clone(),
                    value: next_raw.clone(),
                    lease: 0,
                }],
            )
            .await;
        (moved, next_raw)
    }

    pub(super) fn step(&self, message: String) {
        self.record(Decision::Step, message);
    }

    /// The old leader's side.
    async fn hand_over(
        &mut self,
        request: Request,
        raw: String,
        members: &[Member],
        optime: Option<u64>,
    ) {
        let me = self.local.spec().name.clone();
        let max_lag = self.local.spec().max_lag_bytes;
        if let Some(why) = refusal(&request.to, Some(&me), members, optime, max_lag) {
            self.finish(&request, &raw, false, format!("refused: {why}"), Some(&me))
                .await;
            return;
        }
        // From here on the leader stops its server: a compare-and-set to
        // `stopping` first, so that a cancel accepted before it is seen
        // (nothing is stopped) and one after it is refused.
        let stopping = Request {
            stage: Stage::Stopping,
            ..request.clone()
        };
        let (started, stopping_raw) = self.advance(&raw, &stopping, &me).await;
        if !matches!(started, Ok(true)) {
            self.step(format!(
                "switchover to `{}` not started: the request was cancelled or changed, or the key moved ({started:?}); the local server was not touched",
                request.to
            ));
            return;
        }
        let (request, raw) = (stopping, stopping_raw);
        self.step(format!("switchover to `{}`: checkpoint", request.to));
        // A checkpoint can take longer than the lease's deadline (a busy
        // or stalled checkpointer): the lease is kept renewed meanwhile,
        // so that the watchdog never kills the server mid-checkpoint.
        let server = Arc::clone(&self.local);
        match self
            .keep_leading_during(async move { server.checkpoint().await })
            .await
        {
            Kept::Done(Ok(())) => {}
            Kept::Done(Err(e)) => {
                self.finish(
                    &request,
                    &raw,
                    false,
                    format!("abandoned: the checkpoint failed: {e}"),
                    Some(&me),
                )
                .await;
                return;
            }
            // The server is stopped by the lease's path; the request is
            // left for the loop (a `stopping` request of a key this node
            // no longer holds is nobody's to act on).
            Kept::Lost => return,
        }
        self.step(format!("switchover to `{}`: stopping the local server cleanly (fast): it stops taking writes and sends all its WAL to the standbys", request.to));
        {
            let mut view = self.view.lock();
            view.is_leader = false;
            view.observation = Observation::default();
        }
        self.keep_standby_marked();
        // The clean shutdown writes a shutdown checkpoint: as long, at
        // worst, as the checkpoint above; renewed the same way.
        let server = Arc::clone(&self.local);
        let stopped = self
            .keep_leading_during(async move {
                match server.stop("fast").await {
                    Ok(()) => server.shut_down_at().await,
                    Err(e) => Err(e),
                }
            })
            .await;
        let end = match stopped {
            Kept::Done(end) => end,
            Kept::Lost => return,
        };
        let end = match end {
            Ok(end) => end,
            Err(e) => {
                // Still the leader: the loop brings the server back.
                self.finish(
                    &request,
                    &raw,
                    false,
                    format!("abandoned: the local server did not stop cleanly: {e}"),
                    Some(&me),
                )
                .await;
                return;
            }
        };
        let stopped = Request {
            stage: Stage::Stopped,
            // None at reach 0: an older target then does not take over
            // (it asked for "past 0", which only a replica that came back
            // empty shows) and this leader resumes after its wait.
            lsn: end.reach.checked_sub(1),
            reach: Some(end.reach),
            timeline: Some(end.timeline),
            leader_lease: self.lease,
            ..request.clone()
        };
        let (marked, stopped_raw) = self.advance(&raw, &stopped, &me).await;
        if !matches!(marked, Ok(true)) {
            self.step(format!("switchover to `{}` abandoned: the request changed or the key moved before the hand-over ({marked:?})", request.to));
            return;
        }
        self.step(format!(
            "switchover to `{}`: the local server is shut down at {} on timeline {}; waiting for `{}` to replay up to it and take the key",
            request.to, lsn_text(end.reach), end.timeline, request.to
        ));
        let started = Instant::now();
        let mut renewed = Instant::now();
        while started.elapsed() < HAND_OVER_WAIT {
            tokio::time::sleep(POLL).await;
            if renewed.elapsed() >= self.local.spec().loop_wait {
                renewed = Instant::now();
                self.renew().await;
                if !self.holding() {
                    return; // the lease is gone: the loop goes on from there
                }
            }
            if let Ok(Some(kv)) = self.etcd.get(&self.keys.leader).await
                && kv.value == request.to
            {
                self.handed_over(&request, end, started.elapsed());
                return;
            }
        }
        // Withdraw, so that the target can no longer take the key.
        let why = format!(
            "abandoned: `{}` did not take the key within {} s; this node stays the leader and its server comes back as the primary",
            request.to,
            HAND_OVER_WAIT.as_secs()
        );
        if !self
            .finish(&stopped, &stopped_raw, false, why, Some(&me))
            .await
            && let Ok(Some(kv)) = self.etcd.get(&self.keys.leader).await
            && kv.value == request.to
        {
            self.handed_over(&request, end, started.elapsed());
        }
    }

    /// A restarted agent of the old leader (`lease`: its new one) takes its
    /// key back while a hand-over it started (`request`, stage `stopping`
    /// or `stopped`, raw value `raw`) is unfinished: in one transaction
    /// with withdrawing the request, compared on its value, so that the
    /// target, whose take-over compares the same request, cannot take the
    /// key too. When the target took over first the compare fails and
    /// this node follows. Not idempotent: the caller reads the key back
    /// after an error ([`super::owner`]).
    pub(super) async fn take_back(
        &self,
        request: &Request,
        raw: &str,
        lease: i64,
    ) -> Result<bool, super::etcd::EtcdError> {
        let me = self.local.spec().name.clone();
        let outcome = serde_json::to_string(&Outcome {
            id: request.id.clone(),
            ok: false,
            message: ABANDONED_BY_RESTART.into(),
        })
        .unwrap_or_default();
        self.etcd
            .txn(
                &[
                    (&self.keys.leader, Some(&me)),
                    (&self.keys.switchover, Some(raw)),
                ],
                &[
                    Op::Put {
                        key: self.keys.leader.clone(),
                        value: me.clone(),
                        lease,
                    },
                    Op::Delete {
                        key: self.keys.switchover.clone(),
                    },
                    Op::Put {
                        key: self.keys.switchover_result.clone(),
                        value: outcome,
                        lease: 0,
                    },
                ],
            )
            .await
    }

    fn handed_over(&mut self, request: &Request, end: ShutDown, took: Duration) {
        self.leader_until = None;
        // Its WAL ended cleanly where the target replayed up to: nothing
        // in it the next leader lacks, so it is no diverged former leader
        // (should the target fail to open its term, this node remains a
        // candidate).
        self.mark_diverged(false);
        self.rejoin = Some((request.to.clone(), end));
        self.record(
            Decision::Released,
            format!("switchover: `{}` took the leader key {} ms after this server stopped; this node follows it", request.to, took.as_millis()),
        );
    }

    /// After handing over: once the local server streams from the new
    /// leader on its new timeline, record that it rejoined without a
    /// rewind (its WAL ended where the new timeline begins).
    pub(super) async fn check_rejoin(&mut self, seen: &Observation, leader: Option<&Member>) {
        let Some((to, end)) = self.rejoin.clone() else {
            return;
        };
        let Some(leader) = leader else { return };
        if leader.name != to {
            if leader.name != self.local.spec().name {
                self.rejoin = None; // another failover since: nothing to verify
            }
            return;
        }
        let upstream = format!("{}:{}", leader.host, leader.port);
        if !(seen.in_recovery && seen.streaming_from.as_deref() == Some(upstream.as_str())) {
            return;
        }
        let timeline = self.local.receiving_timeline().await;
        tracing::debug!(?timeline, ?end, "cluster: rejoin after the switchover");
        let Some(timeline) = timeline.filter(|t| *t > end.timeline) else {
            return;
        };
        self.rejoin = None;
        self.step(format!(
            "switchover: rejoined as a standby of `{to}` without pg_rewind: streams on timeline {timeline} (its own WAL ended at {} on timeline {}), replayed up to {}",
            lsn_text(end.reach), end.timeline, seen.replayed.map_or("?".into(), lsn_text)
        ));
    }
}
