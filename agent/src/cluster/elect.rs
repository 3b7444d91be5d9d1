//! The follower's and the candidate's side of the HA loop: following
//! the leader (repoint, start as its standby, or rewind a diverged former
//! primary) and, with no leader, the election: the most advanced healthy
//! standby takes the key in one transaction and promotes while it keeps
//! renewing its lease.

use super::ha::{Ha, REWIND_RETRY};
use super::local::Observation;
use super::member::{
    LeaderTimeline, Member, last_leader, not_a_candidate, off_timeline, reuses_the_term,
};
use super::owner::Won;
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;
use crate::events::Decision;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl<D: Dcs, S: Server> Ha<D, S> {
    /// As a follower of `leader`: be a standby streaming from it. A
    /// stopped server is pointed at the leader and started; a running
    /// standby is repointed; a server running as a primary is rewound
    /// against the leader, and so is a standby that still does not stream
    /// 10 s later, unless its WAL is shown to be on the leader's history
    /// ([`Ha::on_the_leaders_timeline`]): then nothing diverged, a rewind
    /// and restart would change nothing (a missing `pg_hba.conf` line,
    /// too few WAL senders, WAL the leader no longer has: patroni#2412
    /// restarted such a standby every 10 s, forever), and why it does not
    /// stream is recorded once instead.
    pub(super) async fn follow(&mut self, seen: &Observation, leader: &Member) {
        let upstream = format!("{}:{}", leader.host, leader.port);
        if seen.streaming_from.as_deref() == Some(upstream.as_str()) && seen.in_recovery {
            if self.following_since.take().is_some() || self.marked_diverged() {
                self.mark_diverged(false);
                self.last_note = None;
                self.record(
                    Decision::Following,
                    format!("streams from the leader `{}` ({upstream})", leader.name),
                );
            }
            return;
        }
        if leader.role != "primary" {
            // The leader's server is not up yet: nothing to follow, and
            // no time counts against this standby meanwhile. A primary
            // here must not take writes meanwhile.
            self.following_since = None;
            if seen.primary() {
                self.stop_stray_primary(&format!("`{}` holds the leader key", leader.name))
                    .await;
            }
            return;
        }
        let stuck = self
            .following_since
            .is_some_and(|since| since.elapsed() > Duration::from_secs(10));
        if stuck && !seen.primary() && self.on_the_leaders_timeline(seen) {
            self.note_failed(format!(
                "the local standby does not stream from the leader `{}` ({upstream}) after 10 s, and its WAL is on the leader's timeline {:?} (begun at {:?}): nothing diverged, so it is not rewound nor restarted. Its server's log says why (a `pg_hba.conf` line for replication, `max_wal_senders`, WAL the leader no longer has: then rebuild it); it streams again by itself once that is fixed",
                leader.name, seen.timeline, seen.timeline_start
            ));
            return;
        }
        if seen.primary() || stuck {
            if self
                .rewind_failed
                .is_some_and(|at| at.elapsed() < REWIND_RETRY)
            {
                // Waiting to retry the rewind: a primary never runs
                // meanwhile (it would take writes beside the leader's).
                if seen.primary() {
                    self.stop_stray_primary(&format!(
                        "`{}` holds the leader key (its rewind is retried later)",
                        leader.name
                    ))
                    .await;
                }
                return;
            }
            if seen.primary() {
                self.record(Decision::Demoted, format!("the local server runs as a primary while `{}` holds the leader key: demoting it", leader.name));
            }
            let source = format!(
                "{} dbname=postgres",
                self.local.conninfo(&leader.host, leader.port)
            );
            let server = Arc::clone(&self.local);
            let (host, port) = (leader.host.clone(), leader.port);
            let rewound = self.keep_member_during(seen, "rewinding", async move {
                server.rewind_and_follow(&host, port, &source).await
            });
            match rewound.await {
                Ok(outcome) => {
                    self.following_since = Some(Instant::now());
                    self.rewind_failed = None;
                    self.record(Decision::Rewound, format!("rewound the local server against `{}` ({outcome}); it restarts as its standby", leader.name));
                }
                Err(e) => {
                    self.rewind_failed = Some(Instant::now());
                    // Keep a standby running meanwhile (read-only, and a
                    // candidate should the leader go).
                    if !seen.primary() && self.local.postmaster().state.stopped() {
                        match self.local.point_at(&leader.host, leader.port) {
                            Ok(()) => {
                                let server = Arc::clone(&self.local);
                                let _ = self
                                    .keep_member_during(seen, "starting", async move {
                                        server.start().await
                                    })
                                    .await;
                            }
                            Err(e) => tracing::warn!(
                                "cluster: cannot keep the local server running as a standby: {e}"
                            ),
                        }
                    }
                    self.record(
                        Decision::Failed,
                        format!(
                            "cannot rejoin the local server to `{}` (retried in {} s): {e}",
                            leader.name,
                            REWIND_RETRY.as_secs()
                        ),
                    );
                }
            }
            return;
        }
        if seen.stopped() {
            // Stopped (crashed, demoted, or never started): point it at the
            // leader and start it as a standby.
            if let Err(e) = self.local.point_at(&leader.host, leader.port) {
                tracing::error!("cluster: cannot point the local server at the leader: {e}");
                return;
            }
            let server = Arc::clone(&self.local);
            let started =
                self.keep_member_during(seen, "starting", async move { server.start().await });
            match started.await {
                Ok(()) => self.following_since = Some(Instant::now()),
                Err(e) => tracing::warn!("cluster: cannot start the local standby: {e}"),
            }
            return;
        }
        if seen.answering && self.following_since.is_none() {
            match self.local.follow(&leader.host, leader.port).await {
                Ok(()) => self.following_since = Some(Instant::now()),
                Err(e) => tracing::warn!("cluster: cannot repoint replication: {e}"),
            }
        }
    }

    /// No leader: take the key if this member is the one to.
    pub(super) async fn elect(
        &mut self,
        seen: &Observation,
        me: &Member,
        optime: Option<u64>,
        members: &[Member],
    ) {
        if seen.stopped() {
            // No leader to follow: start it read-only (it comes up in
            // recovery), so that it publishes its position and may be
            // elected; a stopped server is nobody's candidate.
            if let Err(e) = self.local.mark_standby() {
                tracing::error!(
                    "cluster: cannot mark the stopped local server as a standby's, so it is not started: {e}"
                );
                return;
            }
            let server = Arc::clone(&self.local);
            let started =
                self.keep_member_during(seen, "starting", async move { server.start().await });
            if let Err(e) = started.await {
                tracing::warn!("cluster: cannot start the local server read-only: {e}");
            }
            return;
        }
        let Some(lease) = self.lease else { return };
        let spec = self.local.spec().clone();
        if seen.primary() {
            // Bootstrap (or nobody took over): a primary at or past the
            // last leader position leads.
            if let Some(other) = self.sync_leader().filter(|l| *l != spec.name) {
                // The synchronous set is another leader's: this primary
                // cannot hold the commits acknowledged in its term.
                self.stop_stray_primary(&format!("the synchronous set is `{other}`'s: this former primary cannot hold the commits acknowledged in that term; it rejoins as a standby when a leader exists")).await;
                return;
            }
            if let Some(why) = off_timeline(me, self.leader_timeline.as_ref()) {
                // A former primary whose timeline is not the last
                // leader's: it rejoins (rewound) once a leader exists,
                // never leads on its own timeline.
                self.stop_stray_primary(&format!(
                    "this primary may not take the leader key: {why}; it rejoins as a standby when a leader exists"
                ))
                .await;
                return;
            }
            if me.diverged
                && self.leader_timeline.is_some()
                && !last_leader(me, self.leader_timeline.as_ref())
            {
                // It led, and the last term is another member's (on a
                // later timeline, or another promotion given the same
                // number): this primary's WAL may have diverged from it.
                let term = self.leader_timeline.as_ref().map(|t| t.text());
                self.stop_stray_primary(&format!(
                    "this former primary is on timeline {:?}, and the last leader's term is {term:?}, not its own: its WAL may have diverged; it rejoins as a standby when a leader exists",
                    seen.timeline
                ))
                .await;
                return;
            }
            if me.diverged
                && let Some(later) = members
                    .iter()
                    .find(|m| m.timeline > seen.timeline && m.name != spec.name)
            {
                // It led, and a later leader promoted `later` onto a newer
                // timeline since: this primary's WAL may have diverged
                // from the cluster's; it rejoins (rewound) once a leader
                // exists, never leads on its own timeline.
                self.stop_stray_primary(&format!(
                    "this former primary is on timeline {:?} and `{}` on {:?}: its WAL may have diverged; it rejoins as a standby when a leader exists",
                    seen.timeline, later.name, later.timeline
                ))
                .await;
                return;
            }
            if optime.is_some_and(|o| seen.lsn.unwrap_or(0) < o) {
                self.note(format!("not taking the leader key: this primary is behind the last leader position ({:?} < {optime:?})", seen.lsn));
                return;
            }
            let term = seen.timeline.map(|timeline| LeaderTimeline {
                timeline,
                switch: None,
                by: Some(spec.name.clone()),
            });
            let answer = self.create_leader_key(lease, members, term).await;
            if self.won_key(answer, lease).await == Won::Yes {
                self.take_office();
                self.mark_diverged(true);
                if let Err(e) = self.fence_ready() {
                    // A leader that cannot be fenced does not lead.
                    if self.stop_and_release(&e).await.is_ok() {
                        self.record(
                            Decision::Failed,
                            format!("{e}; stopped the local server and released the leader key"),
                        );
                    }
                    return;
                }
                self.keep_standby_marked();
                self.record(
                    Decision::Acquired,
                    "acquired the leader key: the local server is the primary".into(),
                );
            }
            return;
        }
        if self.sync_key.is_some() && me.leaderless.is_none() && seen.wal_end_read {
            // A synchronous set exists: wait one loop, silently, for a
            // look at the local server taken after the leader key went
            // (a standby still reading its own WAL says so below).
            return;
        }
        // Under a synchronous set the quorum rule proves a standby holds
        // every acknowledged commit: the lag bound no longer applies.
        let max_lag = match self.sync_key {
            Some(_) => u64::MAX,
            None => spec.max_lag_bytes,
        };
        // The most recent leader (back after losing its lease) is no
        // diverged former primary: its WAL is the cluster's.
        let mut me = me.clone();
        if me.diverged && last_leader(&me, self.leader_timeline.as_ref()) {
            me.diverged = false;
        }
        let me = &me;
        // A rival off the last leader's history is no candidate either
        // (its WAL may have diverged): it must not keep the one that is
        // on it from taking over (seed 3566: standbys of a stale
        // "timeline 6" with the most WAL held every election off).
        let rivals: Vec<Member> = members
            .iter()
            .filter(|m| {
                off_timeline(m, self.leader_timeline.as_ref())
                    .or_else(|| reuses_the_term(m, self.leader_timeline.as_ref()))
                    .is_none()
            })
            .cloned()
            .collect();
        let why = not_a_candidate(me, &rivals, optime, max_lag)
            .or_else(|| off_timeline(me, self.leader_timeline.as_ref()))
            .or_else(|| reuses_the_term(me, self.leader_timeline.as_ref()))
            .or_else(|| self.sync_unproven(me, members));
        if let Some(why) = why {
            if (seen.answering && seen.in_recovery) || me.nofailover {
                self.note(format!(
                    "no leader, and this member may not take over: {why}"
                ));
            }
            return;
        }
        // The term's timeline: the one its promotion leads to, begun at
        // this standby's position.
        let term = seen.timeline.map(|timeline| LeaderTimeline {
            timeline: timeline + 1,
            switch: me.lsn,
            by: Some(spec.name.clone()),
        });
        // Recorded first (on disk too): should this node be killed before
        // its promotion, its restarted agent puts the timeline back.
        if let Err(e) = self.begin_term(term.clone()) {
            tracing::error!("cluster: not taking the leader key: {e}");
            self.note(format!("no leader, and this member may not take over: {e}"));
            return;
        }
        let answer = self.create_leader_key(lease, members, term).await;
        match self.won_key(answer, lease).await {
            Won::Yes => {}
            // Another member was faster (or the answer was a resent
            // transaction's: the key may be found ours next loop, and
            // `term_before` is kept for it; putting it back compares the
            // timeline this term wrote, so another term's is never undone).
            Won::No => return,
            Won::Unknown(e) => {
                // Read with the scope next loop: a key found ours then
                // takes office there (`found_key_ours`).
                tracing::warn!("cluster: whether this node took the leader key is unknown: {e}");
                return;
            }
        }
        self.take_office();
        self.record(
            Decision::Acquired,
            format!(
                "acquired the leader key ({} bytes received, leader's last position {optime:?})",
                me.lsn.unwrap_or(0)
            ),
        );
        let ready = match self.fence_ready() {
            Ok(()) => self.prepare_synchronous(members).await,
            Err(e) => Err(e),
        };
        let reference = self.leader_timeline.clone();
        let ready = match ready {
            Ok(()) => self.still_on_history(me, reference.as_ref()).await,
            Err(e) => Err(e),
        };
        let promoted = match ready {
            Ok(()) => self.promote().await,
            Err(e) => Err(format!("not promoted: {e}")),
        };
        match promoted {
            Ok(()) => {
                // The term opened: nothing to put back later.
                self.settle_term();
                self.keep_standby_marked();
                self.last_note = None;
                self.record(
                    Decision::Promoted,
                    "promoted the local standby; it accepts writes".into(),
                );
            }
            // Asked, it may still finish promoting: stopped before
            // another member may lead; never asked, released as it is.
            Err(e) => {
                self.give_up_key(&format!("promotion failed ({e})")).await;
            }
        }
    }

    /// Right before its promotion, the local standby is still where it
    /// was elected: the same timeline, in recovery, and its position (it
    /// may have received more meanwhile, from an upstream with WAL past the
    /// last leader's switch point: a former primary restarted read-only)
    /// still on the last leader's history; `Err` (why) otherwise. A
    /// promotion begins its timeline where the server's WAL ends then,
    /// not where it was when elected.
    pub(super) async fn still_on_history(
        &self,
        me: &Member,
        reference: Option<&LeaderTimeline>,
    ) -> Result<(), String> {
        let budget = self.local.spec().loop_wait.max(Duration::from_millis(500));
        let seen = self.local.observe(budget).await;
        if !(seen.answering && seen.in_recovery) || seen.timeline != me.timeline {
            return Err(format!(
                "not promoted: the local server is no longer the standby elected (timeline {:?}, was {:?})",
                seen.timeline, me.timeline
            ));
        }
        let now = Member {
            lsn: seen.lsn.or(seen.replayed),
            ..me.clone()
        };
        if let Some(why) = off_timeline(&now, reference) {
            return Err(format!(
                "not promoted: since it was elected, the local server received WAL that is not the last leader's: {why}"
            ));
        }
        // Elected behind the point where another member's term began, it
        // may have received WAL up to exactly that point since.
        match reuses_the_term(&now, reference) {
            Some(why) => Err(format!(
                "not promoted: since it was elected, the local server reached the point where the last leader's term began: {why}"
            )),
            None => Ok(()),
        }
    }

    /// Promote the local standby while renewing the lease every loop;
    /// refused when the lease is not held right before (its deadline
    /// past) or the fence does not run armed; give up (the caller stops the server) if the lease is lost
    /// or the promotion does not finish within 20 s.
    pub(super) async fn promote(&mut self) -> Result<(), String> {
        // Right before a server is made writable: the lease still held
        // and its deadline not past (what came before may have taken a
        // while: a read back, the synchronous set, a catch-up).
        if !self.holding() {
            return Err(
                "the leader lease is no longer held (or its deadline passed) right before the promotion"
                    .into(),
            );
        }
        self.fence_ready()?;
        // From here on the term may open: recorded first, so that a
        // restarted agent never puts its timeline back ([`super::pending`]).
        self.asking_promotion()?;
        // Before it may take writes: this node led (its WAL may diverge
        // from the next leader's).
        self.mark_diverged(true);
        // Both waits on the server (a stalled disk can hold a promotion
        // for seconds) run while the lease is renewed ([`super::during`]).
        self.while_leading(|server| async move { server.start_promotion().await })
            .await?;
        let started = Instant::now();
        loop {
            if !self.holding() {
                return Err("the lease could not be renewed during the promotion".into());
            }
            let seen = self
                .local
                .observe(self.local.spec().loop_wait.max(Duration::from_millis(500)))
                .await;
            if seen.primary() {
                self.while_leading(|server| async move { server.confirm_promotion().await })
                    .await?;
                // Where its timeline really began (it may have received
                // WAL since it was elected): the term written with the key
                // is rewritten with it, so that its standbys, which share
                // that start, remain candidates.
                if let Some(ours) = self.term_before.as_ref().and_then(|p| p.ours.clone()) {
                    self.know_term(Some(ours));
                }
                self.publish_term(&seen).await;
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err("the server did not leave recovery within 20 s".into());
            }
            tokio::time::sleep(self.local.spec().loop_wait.min(Duration::from_millis(200))).await;
            self.renew().await;
        }
    }

    pub(super) fn take_office(&mut self) {
        let since = self.renewed_at.unwrap_or_else(Instant::now);
        self.leader_until = Some(since + self.ttl() - self.margin());
        self.down_since = None;
        // A narrowing of an earlier term proves nothing about this one.
        self.shrink_mark = None;
        // The former leader's marker is written once its server may take
        // writes in this term: before a promotion ([`Ha::promote`]), or
        // by the caller when the server already runs as a primary. A term
        // whose server never took writes leaves no WAL the next leader
        // lacks, and must not shut this member out of later elections.
        // Armed before the server is promoted.
        self.guard();
    }

    /// A leader's fence must run armed before its server takes writes:
    /// `Err` (why) when the watchdog could not be started or fed.
    pub(super) fn fence_ready(&self) -> Result<(), String> {
        if self.watchdog_armed() {
            Ok(())
        } else {
            Err("the watchdog that fences this node's server is not running (see the log): a leader without a fence does not take writes".into())
        }
    }

    /// Whether the local standby is shown to hold nothing but the
    /// leader's WAL: on the last leader's timeline, begun at the same
    /// point (both known), and not a former leader. Only the leader writes
    /// on its timeline, so such WAL is a prefix of the leader's. Anything
    /// less (a timeline before, a start unknown) is not shown, and left to
    /// `pg_rewind`, which rewinds only what diverged.
    fn on_the_leaders_timeline(&self, seen: &Observation) -> bool {
        let Some(term) = &self.leader_timeline else {
            return false;
        };
        seen.answering
            && seen.in_recovery
            && seen.timeline == Some(term.timeline)
            && seen.timeline_start.is_some()
            && seen.timeline_start == term.switch
            && !self.marked_diverged()
    }

    /// Record a failure once (until it changes, or the standby streams).
    fn note_failed(&mut self, text: String) {
        if self.last_note.as_deref() != Some(text.as_str()) {
            tracing::warn!("cluster: {text}");
            self.record(Decision::Failed, text.clone());
            self.last_note = Some(text);
        }
    }

    /// Record a note once (until it changes).
    fn note(&mut self, text: String) {
        if self.last_note.as_deref() != Some(text.as_str()) {
            self.record(Decision::NoCandidate, text.clone());
            self.last_note = Some(text);
        }
    }
}
