//! The leader's side of the HA loop: keep a healthy primary. A server
//! restarted in recovery (in place by the agent, or by hand) is promoted
//! again on a new timeline, its term recorded and written first; a crashed
//! one is restarted in place, the lease renewed while its crash recovery
//! runs ([`super::during`]); one that is not back (answering) within
//! `restart_timeout` is stopped and gives the key up, only once it is
//! known stopped.

use super::during::Kept;
use super::ha::Ha;
use super::local::Observation;
use super::member::Member;
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;
use crate::events::Decision;
use crate::pgserver::postmaster::Postmaster;
use std::sync::Arc;
use tokio::time::Instant;

impl<D: Dcs, S: Server> Ha<D, S> {
    /// As the leader: keep a healthy primary.
    pub(super) async fn lead(&mut self, seen: &Observation, members: &[Member]) {
        if seen.answering {
            // Back (or never gone): a later look that gets no answer is a
            // busy or frozen server, not the crash this timer counts.
            self.down_since = None;
        }
        if seen.primary() {
            return;
        }
        if seen.answering && seen.in_recovery {
            // Restarted (in place by us, or by hand): only the key holder
            // may make it a primary again, on a new timeline — published
            // first, with where it begins.
            if let Err(e) = self.fence_ready() {
                // No term is written that could not open (the loop gives
                // the key up: [`Ha::unfenced_leader`]).
                tracing::warn!("cluster: not promoting the restarted server: {e}");
                return;
            }
            // This node's own term, taken by an election and never
            // asked (the key found this node's a loop after the answer to
            // taking it was lost, or taken over from an earlier run of
            // this agent): promoted under that term, as written (its
            // start is rewritten once the promotion is done), never a new
            // one in its place, which a failed write would leave recorded
            // while the store holds the first.
            let pending = self
                .term_before
                .clone()
                .filter(|p| !p.asked && p.ours.is_some() && p.ours == self.leader_timeline);
            // A server that never led in this term (no former leader's
            // marker: written before every promotion) is a standby, not
            // the leader's own restarted one: it is checked against the
            // last leader's history right before its promotion, as an
            // elected standby is, against the term the election read (it
            // may have received WAL past that term's switch point since).
            // The leader's own server restarted in recovery is on its own
            // promotion's timeline (whose start the term may still hold as
            // the election's guess, seed 41252): not checked.
            let elected = pending.is_some() || !self.marked_diverged();
            if elected {
                let reference = match &pending {
                    Some(p) => p.before.clone(),
                    None => self.leader_timeline.clone(),
                };
                let me = self.member(seen);
                // And made synchronous first, as an elected standby is (a
                // key taken over from an earlier run may come before that
                // run prepared it).
                let ready = match self.still_on_history(&me, reference.as_ref()).await {
                    Ok(()) => self.prepare_synchronous(members).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = ready {
                    self.give_up_key(&e).await;
                    return;
                }
            }
            if let (None, Some(timeline)) = (&pending, seen.timeline) {
                let term = super::member::LeaderTimeline {
                    timeline: timeline + 1,
                    switch: seen.lsn,
                    by: Some(self.local.spec().name.clone()),
                };
                // Recorded first (on disk too: [`super::pending`]), then
                // guarded by the lease, read back if the answer is lost:
                // not promoted unless the term is known written.
                if let Err(e) = self.begin_term(Some(term.clone())) {
                    tracing::error!("cluster: not promoting the restarted server: {e}");
                    return;
                }
                if let Err(e) = self.write_term(&term).await {
                    tracing::warn!(
                        "cluster: cannot publish the new timeline before promoting again: {e}"
                    );
                    return;
                }
            }
            match self.promote().await {
                Ok(()) => {
                    self.settle_term();
                    self.keep_standby_marked();
                    let what = if elected {
                        "promoted the local standby: the leader key it was elected for is this node's (the answer to taking it was lost, or an earlier run of this agent took it)"
                    } else {
                        "promoted the local server again after its restart (a new timeline); this node still holds the leader key"
                    };
                    self.record(Decision::Promoted, what.into());
                }
                Err(e) => {
                    tracing::error!("cluster: cannot promote the restarted local server: {e}");
                    if self.promotion_not_asked() {
                        // Never asked: its term did not open; put back, so
                        // that it is not the election's reference.
                        self.term_not_opened().await;
                    }
                }
            }
            return;
        }
        if !seen.stopped() {
            // Alive but not answering (busy, frozen), or whether it runs
            // cannot be told: not a crash, and never a reason to let go;
            // but a server this node restarted after a crash that is still
            // not back (its crash recovery, a start that hangs) when
            // `restart_timeout` runs out is stopped, so that the key can
            // be handed over (Patroni's `master_start_timeout`).
            if let Some(down) = self.down_since
                && down.elapsed() >= self.local.spec().restart_timeout
                && !seen.answering
                && matches!(seen.server, Postmaster::Running(_))
            {
                self.stop_overdue_restart().await;
            }
            return;
        }
        let down = *self.down_since.get_or_insert_with(Instant::now);
        if down.elapsed() >= self.local.spec().restart_timeout {
            if !self.known_stopped_before_release() {
                return;
            }
            self.keep_standby_marked();
            match self.release_key().await {
                Ok(()) => {
                    self.leader_until = None;
                    self.down_since = None;
                    self.record(Decision::Released, format!(
                        "released the leader key: the local server is down and was not back within restart_timeout = {}",
                        crate::config::units::format_duration(self.local.spec().restart_timeout)
                    ));
                }
                Err(e) => tracing::error!("cluster: {e}"),
            }
            return;
        }
        // Its crash recovery can take longer than the lease's deadline:
        // the lease is kept renewed meanwhile ([`super::during`]), so
        // that the watchdog never kills the server it is recovering; the
        // wait ends with `restart_timeout` (then the pass above hands
        // over).
        let server = Arc::clone(&self.local);
        let left = self
            .local
            .spec()
            .restart_timeout
            .saturating_sub(down.elapsed());
        let start = async move {
            match tokio::time::timeout(left, server.start()).await {
                Ok(started) => started,
                Err(_) => Err("the server is not back within restart_timeout".to_string()),
            }
        };
        match self.keep_leading_during(start).await {
            Kept::Done(Ok(())) => self.record(Decision::Restarted, "restarted the crashed local server in place (it comes up as a standby; this node promotes it while it holds the key)".into()),
            Kept::Done(Err(e)) => tracing::warn!("cluster: restart in place failed: {e}"),
            Kept::Lost => {}
        }
    }

    /// The crashed server this node restarted is not back (answering)
    /// within `restart_timeout`: stop it (it takes no writes while it
    /// recovers, so nothing is lost that a failover would not lose), so
    /// that the next pass, finding it known stopped, releases the key.
    async fn stop_overdue_restart(&mut self) {
        let timeout = crate::config::units::format_duration(self.local.spec().restart_timeout);
        match self.local.stop("immediate").await {
            Ok(()) => self.record(
                Decision::Step,
                format!("the restarted local server is not back within restart_timeout = {timeout} (still in crash recovery, or its start hangs): stopped it, to hand the leader key over"),
            ),
            Err(e) => tracing::error!(
                "cluster: the restarted local server is not back within restart_timeout = {timeout}, and cannot be stopped to hand over: {e}"
            ),
        }
    }
}
