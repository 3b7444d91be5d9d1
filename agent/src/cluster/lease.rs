//! The leader's lease: renewed first in every loop (the leader's safety
//! depends on it), with a deadline counted from before the last successful
//! renewal was sent, so that this node stops serving before etcd can expire
//! the lease and let another member lead; lost, it stops the server first
//! and gives the lease back only once the server is known stopped; and the
//! agent's own stop steps down the same way.

use super::ha::Ha;
use super::quiet::Level;
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;
use crate::events::Decision;
use std::time::Duration;
use tokio::time::Instant;

/// How long a leader waits between two failed renewals (etcd answers a
/// call made during its election at once, "leader changed", or when its
/// new leader is elected).
pub(super) const RENEW_RETRY: Duration = Duration::from_millis(100);

impl<D: Dcs, S: Server> Ha<D, S> {
    /// Renew (or get) the lease; demote at once if the key may be lost.
    ///
    /// A leader whose renewal fails tries again every
    /// [`RENEW_RETRY`] until one succeeds or its deadline comes, rather
    /// than waiting for the next loop: an etcd Raft election (its leader
    /// lost) fails every call until a new leader is elected, and the
    /// loop's other etcd calls, each timing out, would otherwise leave
    /// the lease one try in its whole window. Only a keep-alive is tried
    /// again (it is idempotent; a grant is not: a lost answer would leak
    /// a lease). The last wait ends at the deadline itself, so that the
    /// caller's [`Self::check_deadline`] stops the server right after.
    pub(super) async fn renew(&mut self) {
        while !self.renew_once().await {
            let (Some(until), Some(_)) = (self.leader_until, self.lease) else {
                break;
            };
            let left = until.saturating_duration_since(self.lease_now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(RENEW_RETRY)).await;
            if self.lease_now() >= until {
                break;
            }
        }
        self.guard();
    }

    /// One try of [`Self::renew`]: whether it need not be tried again (a
    /// renewal, a lease found expired, or a new lease).
    async fn renew_once(&mut self) -> bool {
        let sent = Instant::now();
        let suspended = super::clock::suspended_ns();
        let call = async {
            match self.lease {
                Some(lease) => self
                    .etcd
                    .keep_alive(lease)
                    .await
                    .map(|alive| (lease, alive)),
                None => self.etcd.grant(self.ttl()).await.map(|lease| (lease, true)),
            }
        };
        // A leader never waits for etcd past its own deadline (on the
        // deadline's clock, which counts a suspension).
        let bound = match self.leader_until {
            Some(until) => until
                .saturating_duration_since(self.lease_now())
                .max(Duration::from_millis(50)),
            None => self.ttl(),
        };
        let renewed = match tokio::time::timeout(bound, call).await {
            Ok(result) => result,
            Err(_) => Err(super::etcd::EtcdError::AnswerLost(
                "no answer before the lease deadline".into(),
            )),
        };
        // Logged once while it lasts, not on every loop.
        self.faults
            .lock()
            .outcome(Level::Warn, "renew the lease", &renewed);
        match renewed {
            Ok((lease, true)) => {
                self.lease = Some(lease);
                self.renewed_at = Some(sent);
                self.suspended_at_renewal = suspended;
                if self.leader_until.is_some() {
                    self.leader_until = Some(sent + self.ttl() - self.margin());
                }
            }
            Ok((_, false)) => {
                self.lease = None;
                self.renewed_at = None;
                if let Some(until) = self.leader_until.take() {
                    self.lose_lease(until, "the lease expired before it could be renewed")
                        .await;
                }
            }
            Err(_) => return false,
        }
        true
    }

    /// etcd is out of reach: past the deadline, stop serving.
    /// Whether it stopped the server.
    pub(super) async fn check_deadline(&mut self) -> bool {
        if let Some(until) = self.leader_until
            && self.lease_now() >= until
        {
            self.leader_until = None;
            self.lose_lease(
                until,
                &format!(
                    "no lease renewal for {} (etcd out of reach); the lease may expire elsewhere",
                    crate::config::units::format_duration(self.ttl() - self.margin())
                ),
            )
            .await;
            return true;
        }
        false
    }

    /// The lease is lost (or may be): stop the server; `deadline` is the
    /// leader's deadline of the lost term (the fence of a server that
    /// cannot be stopped is armed no later than it).
    pub(super) async fn lose_lease(&mut self, deadline: Instant, why: &str) {
        self.record(Decision::LostLease, format!("lost the leader lease: {why}"));
        // The role endpoints stop saying "primary" at once.
        self.view.lock().is_leader = false;
        // A lease this node stopped trusting is never renewed again: when
        // renewals reach etcd but their answers come too late (a slow
        // link), it would otherwise keep the key alive for a leader that
        // no longer serves, and nobody could take over.
        let lease = self.lease.take();
        self.renewed_at = None;
        self.shrink_mark = None;
        // A crash this term counted is not the next term's.
        self.down_since = None;
        match self.local.stop("immediate").await {
            Ok(()) => {
                self.record(
                    Decision::Demoted,
                    "stopped the local server (immediate): it no longer acknowledges writes; it rejoins as a standby when a leader exists".into(),
                );
                // The server is down: disarm the watchdog, and give the
                // lease (and the key under it) back, so that a standby
                // need not wait for it to expire.
                self.guard();
                if let Some(lease) = lease {
                    let _ = self.etcd.revoke(lease).await;
                }
                // A term lost before its server was promoted: its
                // timeline must not shut the standbys of the last
                // leader's history out of the next election.
                if self.term_before.is_some() {
                    self.term_not_opened().await;
                }
            }
            Err(e) => self.left_unfenced(deadline, &e),
        }
        self.guard();
    }

    /// The agent is stopping: a leader stops its server (a fast shutdown,
    /// which sends its WAL to the standbys, within a third of the lease;
    /// then immediate), releases the key and revokes its lease, so that a
    /// standby takes over at once and no server serves writes without an
    /// agent holding the key.
    pub async fn step_down(&mut self) {
        if self.leader_until.is_some() {
            let fast = tokio::time::timeout(self.margin(), self.local.stop("fast")).await;
            if !matches!(fast, Ok(Ok(()))) {
                let _ = self.local.stop("immediate").await;
            }
            if !self.known_stopped_before_release() {
                // The watchdog stays armed with the last deadline: once
                // this agent is gone it fences the server, before the
                // lease can expire.
                self.lease = None;
                return;
            }
            self.keep_standby_marked();
            let _ = self.release_key().await;
            self.leader_until = None;
            self.record(
                Decision::Released,
                "the agent is stopping: stopped the local server and released the leader key"
                    .into(),
            );
        }
        self.guard();
        if let Some(lease) = self.lease.take() {
            let _ = self.etcd.revoke(lease).await;
        }
    }
}
