//! Fail closed: what the loop does when whether its server runs cannot be
//! told. "Cannot read" is never "stopped" (see
//! [`crate::pgserver::postmaster`]): the leader never releases the key
//! nor revokes its lease until the server is known to be stopped — no
//! failover is better than two primaries — a server it failed to stop
//! stays under the watchdog, and the fault is logged and recorded loudly
//! (once per change). At start, cluster mode refuses to run when it
//! cannot read the data directory and `postmaster.pid`, or cannot signal
//! the server.

use super::ha::Ha;
use super::local::Observation;
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;
use crate::config::ClusterSpec;
use crate::events::Decision;
use crate::pgserver::postmaster::{self, Postmaster};
use tokio::time::Instant;

/// Refuse cluster mode when the local server's state cannot be read:
/// an error naming the fault and the fix.
pub fn check_at_start(spec: &ClusterSpec) -> anyhow::Result<()> {
    let seen = postmaster::probe(&spec.data_dir);
    let fault = match (&seen.fault, &seen.state) {
        (Some(fault), _) => fault.clone(),
        (None, Postmaster::Unknown(why)) => why.clone(),
        (None, _) => {
            return postmaster::may_signal(&spec.data_dir)
                .map_err(|why| anyhow::anyhow!("cluster mode refuses to start: {why}"));
        }
    };
    anyhow::bail!(
        "cluster mode refuses to start: it cannot tell whether the PostgreSQL server of {} runs ({fault}). \
         Fix: let the agent read the data directory and its postmaster.pid (run the agent as root or as the \
         directory's owner; postmaster.pid must be the server's own file: one link, owned by the directory's owner)",
        spec.data_dir.display()
    )
}

/// What [`Ha::give_up_key`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum GaveUp {
    /// Released without a stop: the promotion was never asked.
    Released,
    /// The server stopped, then the key released.
    Stopped,
    /// Kept: the server could not be stopped (why).
    Kept(String),
    /// Nothing to give up: the term had already ended while the failed
    /// step waited on the server (its lease lost, its deadline passed or
    /// its fence gone: [`super::during`]), by the loop's own path, which
    /// stopped the server or gave the key up itself.
    Ended,
}

impl<D: Dcs, S: Server> Ha<D, S> {
    /// Log and record, once per change, that `postmaster.pid` cannot be
    /// used or the server's state cannot be told; and forget a server left
    /// unfenced once it is known stopped.
    pub(super) fn note_server_fault(&mut self, seen: &Observation) {
        if seen.server.stopped() {
            self.unfenced_until = None;
        }
        let fault = match (&seen.pid_fault, &seen.server) {
            (_, Postmaster::Unknown(why)) => Some(format!(
                "whether the local server runs cannot be told ({why}): it counts as running; this node never gives up the leader key nor starts or replaces the server until it can tell"
            )),
            (Some(fault), state) => Some(format!(
                "postmaster.pid cannot be used ({fault}); the server was looked for in /proc: {}; fix the file (PostgreSQL's own, one link, owned by the data directory's owner)",
                match state {
                    Postmaster::Running(pid) => format!("running (pid {pid})"),
                    _ => "stopped".into(),
                }
            )),
            (None, _) => None,
        };
        if fault != self.server_fault {
            match &fault {
                Some(message) => {
                    tracing::error!("cluster: {message}");
                    self.record(Decision::Failed, message.clone());
                }
                None => tracing::info!("cluster: the local server's state can be read again"),
            }
            self.server_fault = fault;
        }
    }

    /// Before giving up the key for a server that is down: whether it is
    /// known to be stopped (looked at again now). When not, says why,
    /// loudly, and the key is kept.
    pub(super) fn known_stopped_before_release(&mut self) -> bool {
        let seen = self.local.postmaster();
        if seen.state.stopped() {
            return true;
        }
        let message = format!(
            "not releasing the leader key: the local server is not known to be stopped ({:?}{}); no failover is safer than two primaries",
            seen.state,
            seen.fault.map(|f| format!("; {f}")).unwrap_or_default()
        );
        if self.server_fault.as_ref() != Some(&message) {
            tracing::error!("cluster: {message}");
            self.record(Decision::Failed, message.clone());
            self.server_fault = Some(message);
        }
        false
    }

    /// Stop the local server (immediate), then give up the leader key:
    /// only once it is known stopped. Otherwise the key is kept (and the
    /// watchdog armed), loudly: `Err` with why.
    pub(super) async fn stop_and_release(&mut self, why: &str) -> Result<(), String> {
        if let Err(e) = self.local.stop("immediate").await {
            let message = format!(
                "{why}: cannot stop the local server ({e}); keeping the leader key (no failover is safer than two primaries)"
            );
            tracing::error!("cluster: {message}");
            self.record(Decision::Failed, message);
            return Err(e);
        }
        // The server is down: a key that cannot be given back now (said
        // in the log) expires with the lease.
        let _ = self.release_key().await;
        self.leader_until = None;
        Ok(())
    }

    /// Give up a key taken for a term whose promotion was never asked
    /// (`why` it was not: the fence not running, the lease lapsed, the
    /// server no longer the standby elected, a record not written): the
    /// server was not made writable in this term, so it is left running
    /// as the standby it is, and the key goes without a stop (seed 18864:
    /// a standby that could not be stopped kept the key it could not use,
    /// and no member led). A key that cannot be given back now expires
    /// with the lease.
    pub(super) async fn release_unpromoted(&mut self, why: &str) {
        let released = self.release_key().await;
        self.leader_until = None;
        self.view.lock().is_leader = false;
        // It stays a healthy standby, and would be the best candidate
        // again at once: it stands aside for a lease (published as no
        // healthy standby), so that another member may lead meanwhile.
        self.stand_aside_until = Some(tokio::time::Instant::now() + self.ttl());
        let message = match released {
            Ok(()) => format!(
                "{why}; released the leader key (the local server was not asked to promote in this term: it stays a standby)"
            ),
            Err(e) => format!(
                "{why}; the local server was not asked to promote in this term (it stays a standby), and {e}"
            ),
        };
        self.record(Decision::Failed, message);
    }

    /// Give the key up because a step of this term failed (`why`): the
    /// term put back if it never opened ([`Ha::term_not_opened`]), then
    /// the key released without a stop when this term's promotion was
    /// never asked ([`Ha::release_unpromoted`]), else only once the server
    /// is stopped ([`Ha::stop_and_release`]; kept, loudly, while it cannot
    /// be). Every path that gives a key up after its take goes through
    /// here, so that the rule is written once.
    pub(super) async fn give_up_key(&mut self, why: &str) -> GaveUp {
        if self.leader_until.is_none() {
            // Ended meanwhile: a second give-up would count a promotion
            // never asked as asked (the first settled the term) and stop
            // a standby it had left running, or report a key kept that
            // is gone.
            tracing::info!("cluster: {why}; the term had already ended");
            return GaveUp::Ended;
        }
        let asked = !self.promotion_not_asked();
        self.term_not_opened().await;
        if !asked {
            self.release_unpromoted(why).await;
            return GaveUp::Released;
        }
        match self.stop_and_release(why).await {
            Ok(()) => {
                self.view.lock().is_leader = false;
                self.record(
                    Decision::Failed,
                    format!("{why}; stopped the local server and released the leader key"),
                );
                GaveUp::Stopped
            }
            Err(e) => GaveUp::Kept(e),
        }
    }

    /// A leader whose fence no longer runs armed (it exited: it cannot
    /// signal the server, or it fired and cannot be started again) does not
    /// go on taking writes: stop the server and give the key up — kept,
    /// loudly, while the server cannot be stopped.
    pub(super) async fn unfenced_leader(&mut self) {
        let why = "the watchdog that fences this node's server no longer runs armed while it leads (see the log): a leader without a fence does not take writes";
        self.give_up_key(why).await;
    }

    /// Give the leader key up, the server being known stopped: delete it
    /// if ours (compare-and-delete on its value and this node's lease id,
    /// as the other releases: a key taken over since under another lease,
    /// even by a later run of this member's agent, is left alone); when
    /// that cannot be done (or its answer is lost), revoke the lease,
    /// which deletes the key with it. `Err` when neither reached the
    /// store: the key then expires with the lease.
    pub(super) async fn release_key(&mut self) -> Result<(), String> {
        let name = self.local.spec().name.clone();
        let Some(lease) = self.lease else {
            // No lease: no key is held under this node's lease.
            return Ok(());
        };
        let deleted = self
            .etcd
            .txn_held(
                &[(self.keys.leader.as_str(), Some(name.as_str()))],
                (&self.keys.leader, lease),
                &[super::etcd::Op::Delete {
                    key: self.keys.leader.clone(),
                }],
            )
            .await;
        if let Err(e) = deleted {
            tracing::warn!("cluster: cannot delete the leader key ({e}): revoking the lease");
            if let Some(lease) = self.lease.take() {
                self.renewed_at = None;
                if let Err(revoke) = self.etcd.revoke(lease).await {
                    let message = format!(
                        "cannot give the leader key up (delete: {e}; revoke: {revoke}): it expires with the lease"
                    );
                    tracing::error!("cluster: {message}");
                    return Err(message);
                }
            }
        }
        Ok(())
    }

    /// The marker of a former leader (`state_dir/cluster-leader`): present,
    /// or unreadable (which counts as present: fail closed).
    pub(super) fn marked_diverged(&self) -> bool {
        match self.marker_dir().and_then(|(dir, name)| dir.exists(&name)) {
            Ok(present) => present,
            Err(e) => {
                tracing::error!(
                    "cluster: cannot look at {} ({e}): this node counts as a former leader whose WAL may have diverged",
                    self.marker.display()
                );
                true
            }
        }
    }

    /// Set (this node leads: its WAL may later diverge) or clear (it
    /// streams from a leader) the former leader's marker; a failure is
    /// recorded loudly.
    pub(super) fn mark_diverged(&self, set: bool) {
        let done = self.marker_dir().and_then(|(dir, name)| {
            if set {
                dir.ensure_file(&name, 0o600)
            } else {
                match dir.remove_file(&name) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    other => other,
                }
            }
        });
        if let Err(e) = done {
            let message = format!(
                "cannot {} {} ({e}): {}",
                if set { "write" } else { "remove" },
                self.marker.display(),
                if set {
                    "if this node loses the key, nothing will say its WAL may have diverged"
                } else {
                    "this node stays out of elections"
                }
            );
            tracing::error!("cluster: {message}");
            self.record(Decision::Failed, message);
        }
    }

    fn marker_dir(&self) -> std::io::Result<(crate::safefs::OwnedDir, String)> {
        let parent = self.marker.parent().unwrap_or(std::path::Path::new("/"));
        let name = self
            .marker
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok((crate::safefs::OwnedDir::open(parent)?, name))
    }

    /// Mark the data directory so that any later start comes up as a
    /// standby; a failure is recorded loudly (a start by anyone else would
    /// then make it a primary without the key).
    pub(super) fn keep_standby_marked(&self) {
        if let Err(e) = self.local.mark_standby() {
            let message = format!(
                "cannot mark the data directory as a standby's ({e}): a restart of the server by anyone but the agent would make it a primary without the leader key"
            );
            tracing::error!("cluster: {message}");
            self.record(crate::events::Decision::Failed, message);
        }
    }

    /// The server could not be stopped after the lease was lost: keep the
    /// watchdog armed with the lost term's `deadline`, or now if that is
    /// earlier (never later than the fence the term had: the lease may
    /// expire elsewhere from then on), and say so.
    pub(super) fn left_unfenced(&mut self, deadline: Instant, why: &str) {
        self.unfenced_until = Some(deadline.min(Instant::now()));
        let message = format!(
            "cannot stop the local server after losing the lease ({why}); the watchdog stays armed to fence it, and the lease is not revoked"
        );
        tracing::error!("cluster: {message}");
        self.record(Decision::Failed, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(data_dir: &std::path::Path) -> ClusterSpec {
        let text = format!(
            "[targets.local]\ndsn = \"host=127.0.0.1 user=postgres\"\ndata_dir = \"{}\"\n\n[cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.9.9.9:5432\"\n",
            data_dir.display()
        );
        crate::config::parse_str("w.toml", &text, std::path::Path::new("/"))
            .unwrap()
            .cluster
            .unwrap()
    }

    #[test]
    fn cluster_mode_refuses_a_postmaster_pid_it_cannot_use_and_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        check_at_start(&spec(&data)).unwrap();
        std::fs::write(data.join("postmaster.pid"), "1\n").unwrap();
        std::fs::hard_link(data.join("postmaster.pid"), dir.path().join("x")).unwrap();
        let refused = check_at_start(&spec(&data)).unwrap_err().to_string();
        for part in ["refuses to start", "hard links", "Fix:", "one link"] {
            assert!(refused.contains(part), "{part:?} not in {refused}");
        }
        // `validate` says the same (it called such a config valid).
        assert_eq!(
            crate::cluster::Cluster::start_refusal(&spec(&data)),
            Some(refused)
        );
        std::fs::remove_file(dir.path().join("x")).unwrap();
        std::fs::remove_file(data.join("postmaster.pid")).unwrap();
        assert_eq!(crate::cluster::Cluster::start_refusal(&spec(&data)), None);
    }
}
