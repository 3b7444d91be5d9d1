//! A leader's long local action (a crashed server's restart in place,
//! whose crash recovery can take seconds; a switchover's checkpoint and
//! clean shutdown; a promotion, and the settings a leader writes, which
//! wait on a disk that may stall), run while the lease is still renewed
//! and the watchdog fed, instead of blocking the loop that renews them;
//! and a follower's (a rewind, a standby's start), run while its member
//! stays published as busy, not as what it was before.
//!
//! Why: the loop renews the lease once per pass; an action awaited inside
//! the pass for longer than the lease's deadline (`ttl` minus a third)
//! let the deadline pass unrenewed, and the leader's own watchdog killed
//! the server it was restarting or checkpointing (issue 30: a crash
//! recovery of 4-5 s killed every 2.6 s, 7 to 11 times; a switchover's
//! 8 s checkpoint killed 2.5 s into it). The rule is Patroni's (its HA
//! loop runs the server's start and the checkpoint in a thread and keeps
//! updating the leader key meanwhile), with the order of the lease made
//! explicit: an action that outlives the lease (or its fence) is dropped,
//! never the other way round, and the server is then stopped by the
//! lease's own path ([`Ha::check_deadline`]). Dropping kills a program
//! the action runs, not the server that program launched: a postmaster
//! the start detached runs on until that path stops it; meanwhile it
//! stays read-only (its data directory is marked a standby's).

use super::ha::Ha;
use super::local::Observation;
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What became of a long action run under [`Ha::keep_leading_during`].
#[derive(Debug, PartialEq)]
pub(super) enum Kept<T> {
    /// It finished while this node still led: its output.
    Done(T),
    /// This node stopped leading first (its lease lost, its deadline
    /// passed, or its fence no longer armed): the action was dropped,
    /// and the server stopped (or the key given up) by the loop's own
    /// paths. Nothing more may be done in this node's name.
    Lost,
}

impl<D: Dcs, S: Server> Ha<D, S> {
    /// How often the lease is renewed while an action runs: as often as
    /// the loop would (`loop_wait`), and at least three times per lease
    /// deadline, whatever `loop_wait` is.
    fn renew_every(&self) -> Duration {
        self.local
            .spec()
            .loop_wait
            .min((self.ttl() - self.margin()) / 3)
            .max(Duration::from_millis(50))
    }

    /// How long the action may run before the next renewal: until
    /// [`Self::renew_every`] after the last successful one, and never past
    /// the deadline less a retry (so that a renewal the pass sent late
    /// still comes before the watchdog's deadline).
    fn until_next_renewal(&self, until: tokio::time::Instant) -> Duration {
        let since = self.renewed_at.map_or(Duration::MAX, |at| at.elapsed());
        let left = until.saturating_duration_since(self.lease_now());
        self.renew_every()
            .saturating_sub(since)
            .min(left.saturating_sub(super::lease::RENEW_RETRY))
    }

    /// Run `action` (which must not borrow the loop: clone the server's
    /// handle into it) to its end while this node keeps leading: the
    /// lease is renewed and the watchdog fed ([`Self::renew`]) every
    /// [`Self::renew_every`]. When the lease is lost, its deadline passes
    /// or the fence is no longer armed first, the action is dropped and
    /// [`Kept::Lost`] returned, once the loop's path for that has run: a
    /// renewal that finds the lease expired stops the server at once
    /// (before the drop), a passed deadline stops it right after, a fence
    /// gone gives the key up. A node that does not lead just runs the
    /// action.
    pub(super) async fn keep_leading_during<T>(
        &mut self,
        action: impl Future<Output = T>,
    ) -> Kept<T> {
        // Boxed, so that it can be dropped before the loop's paths run.
        let mut action = Box::pin(action);
        if self.leader_until.is_none() {
            return Kept::Done(action.await);
        }
        // A renewal that finds the lease expired ends the term
        // (`leader_until` taken, the server stopped): the action is
        // dropped then, as when the deadline passes.
        while let Some(until) = self.leader_until {
            if !self.holding() || !self.watchdog_armed() {
                break;
            }
            let wait = self.until_next_renewal(until);
            if let Ok(out) = tokio::time::timeout(wait, &mut action).await {
                return Kept::Done(out);
            }
            self.renew().await;
        }
        // The action (the server's start, a checkpoint) never runs on past
        // the lease, or the fence, it was started under.
        drop(action);
        if !self.check_deadline().await && self.holding() {
            // Still holding, its fence gone (renew tried to arm it again).
            self.unfenced_leader().await;
        }
        Kept::Lost
    }

    /// A call on the local server (`call` gets its handle) that may wait
    /// on the server for longer than the lease's deadline (a write behind
    /// a stalled disk: a promotion, `ALTER SYSTEM`), run under
    /// [`Self::keep_leading_during`]; `Err` naming the lease when this
    /// node stopped leading first. A node that does not lead just makes
    /// the call.
    pub(super) async fn while_leading<T, Fut>(
        &mut self,
        call: impl FnOnce(Arc<S>) -> Fut,
    ) -> Result<T, String>
    where
        Fut: Future<Output = Result<T, String>>,
    {
        let server = Arc::clone(&self.local);
        match self.keep_leading_during(call(server)).await {
            Kept::Done(out) => out,
            Kept::Lost => Err(LOST_MEANWHILE.into()),
        }
    }

    /// Run a follower's long `action` (a rewind: up to 300 s; a standby's
    /// start with its recovery) to its end, `seen` the look before it,
    /// `doing` what the member is published as meanwhile (its `role`):
    /// first published as no candidate (not healthy), so that no election
    /// waits for a stale record of a healthy standby ahead of the others,
    /// then kept published (its lease renewed every
    /// [`Self::renew_every`], the member put again under a new lease)
    /// instead of vanishing with the lease while the pass is blocked: the
    /// cluster sees what it does (Patroni shows "running pg_rewind" the
    /// same way). The next pass publishes what it is after.
    pub(super) async fn keep_member_during<T>(
        &mut self,
        seen: &Observation,
        doing: &str,
        action: impl Future<Output = T>,
    ) -> T {
        let mut me = self.member(seen);
        me.role = doing.to_string();
        me.healthy = false;
        let mut published = self.lease;
        if let Err(e) = self.publish(&me, seen).await {
            tracing::debug!("cluster: cannot publish this member as {doing}: {e}");
        }
        let mut action = Box::pin(action);
        loop {
            // Never a busy loop, even with the store refusing at once.
            let wait = match self.renewed_at {
                Some(at) => self.renew_every().saturating_sub(at.elapsed()),
                None => self.renew_every(),
            }
            .max(Duration::from_millis(50));
            if let Ok(out) = tokio::time::timeout(wait, &mut action).await {
                return out;
            }
            self.renew().await;
            if self.lease != published {
                published = self.lease;
                if let Err(e) = self.publish(&me, seen).await {
                    tracing::debug!("cluster: cannot publish this member as {doing}: {e}");
                }
            }
        }
    }
}

/// Why a call run under [`Ha::while_leading`] was dropped.
pub(super) const LOST_MEANWHILE: &str = "this node stopped leading while waiting for the local server (its lease lost, its deadline passed or its fence gone)";
