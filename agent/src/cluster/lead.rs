//! The leader's side of the HA loop: keep a healthy primary. A server
//! restarted in recovery (in place by the agent, or by hand) is promoted
//! again on a new timeline, its term recorded and written first; a crashed
//! one is restarted in place; one that stays down past `restart_timeout`
//! gives the key up, only once it is known stopped.

use super::ha::Ha;
use super::local::Observation;
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;
use crate::events::Decision;
use tokio::time::Instant;

impl<D: Dcs, S: Server> Ha<D, S> {
    /// As the leader: keep a healthy primary.
    pub(super) async fn lead(&mut self, seen: &Observation) {
        if seen.primary() {
            self.down_since = None;
            return;
        }
        if seen.answering && seen.in_recovery {
            // Restarted (in place by us, or by hand): only the key holder
            // may make it a primary again, on a new timeline — published
            // first, with where it begins.
            if let Some(timeline) = seen.timeline {
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
                    self.record(Decision::Promoted, "promoted the local server again after its restart (a new timeline); this node still holds the leader key".into());
                }
                Err(e) => {
                    tracing::error!("cluster: cannot promote the restarted local server: {e}")
                }
            }
            return;
        }
        if !seen.stopped() {
            // Alive but not answering (busy, frozen), or whether it runs
            // cannot be told: not a crash, and never a reason to let go.
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
        match self.local.start().await {
            Ok(()) => self.record(Decision::Restarted, "restarted the crashed local server in place (it comes up as a standby; this node promotes it while it holds the key)".into()),
            Err(e) => tracing::warn!("cluster: restart in place failed: {e}"),
        }
    }
}
