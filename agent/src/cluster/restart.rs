//! Rolling restarts, as `watchpost cluster restart [--pending]` asks for
//! them (a minor upgrade, or a setting that needs a restart, applied with
//! no outage). The command restarts the members one at a time: the
//! standbys first, each back and streaming before the next, then the
//! leader by a planned switchover, which stops it cleanly and starts it
//! again as a standby of the new leader (see `cli::cluster`).
//!
//! A standby is asked through etcd: `/watchpost/SCOPE/restart/NODE` holds
//! a [`Request`]; that node's agent restarts its server (a fast stop,
//! then a start, as the data directory's owner) and writes an
//! [`Outcome`] to `/watchpost/SCOPE/restart_result/NODE`. With
//! `pending_only` it restarts only when `pg_settings.pending_restart`
//! names a setting; the leader never restarts this way, it answers with
//! the settings pending on it, so that the command knows whether to
//! switch over.

use super::etcd::{Kv, Op};
use super::ha::Ha;
use super::local::Observation;
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;
use crate::events::Decision;
use serde::{Deserialize, Serialize};

/// The value of `/watchpost/SCOPE/restart/NODE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Unique per request: the outcome names it.
    pub id: String,
    /// Restart only if a setting waits for a restart.
    pub pending_only: bool,
}

/// The value of `/watchpost/SCOPE/restart_result/NODE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    pub ok: bool,
    /// The server was restarted.
    pub restarted: bool,
    /// The settings that were waiting for a restart (before it).
    pub pending: Vec<String>,
    pub message: String,
}

impl<D: Dcs, S: Server> Ha<D, S> {
    /// Serve the restart request for this node in `scope`, if there is
    /// one: restart a standby's server, answer the leader's pending
    /// settings; then the outcome replaces the request in one transaction.
    pub(super) async fn serve_restart(&mut self, scope: &[Kv], seen: &Observation) {
        let name = self.local.spec().name.clone();
        let key = self.keys.restart_of(&name);
        let Some(kv) = scope.iter().find(|kv| kv.key == key) else {
            return;
        };
        let Ok(request) = serde_json::from_str::<Request>(&kv.value) else {
            let _ = self.etcd.delete_if(&key, &kv.value).await;
            return;
        };
        let outcome = self.restart_for(&request, seen).await;
        let decision = match (outcome.ok, outcome.restarted) {
            (true, true) => Decision::Restarted,
            (true, false) => Decision::Skipped,
            (false, _) => Decision::Failed,
        };
        self.record(decision, format!("rolling restart: {}", outcome.message));
        let text = serde_json::to_string(&outcome).unwrap_or_default();
        let written = self
            .etcd
            .txn(
                &[(&key, Some(&kv.value))],
                &[
                    Op::Delete { key: key.clone() },
                    Op::Put {
                        key: self.keys.restart_result_of(&name),
                        value: text,
                        lease: 0,
                    },
                ],
            )
            .await;
        if let Err(e) = written {
            tracing::warn!("cluster: cannot write the rolling restart's outcome: {e}");
        }
    }

    async fn restart_for(&mut self, request: &Request, seen: &Observation) -> Outcome {
        let outcome = |ok, restarted, pending: Vec<String>, message: String| Outcome {
            id: request.id.clone(),
            ok,
            restarted,
            pending,
            message,
        };
        let pending = match self.local.pending_restart().await {
            Ok(pending) => pending,
            Err(e) => {
                return outcome(
                    false,
                    false,
                    Vec::new(),
                    format!("cannot read pg_settings.pending_restart: {e}"),
                );
            }
        };
        if self.holding() {
            return outcome(
                true,
                false,
                pending,
                "this node leads: it restarts by a switchover".into(),
            );
        }
        if request.pending_only && pending.is_empty() {
            return outcome(
                true,
                false,
                pending,
                "no setting waits for a restart".into(),
            );
        }
        if !seen.in_recovery {
            return outcome(
                false,
                false,
                pending,
                "the local server is not a standby; not restarted".into(),
            );
        }
        let restarted = async {
            self.local.stop("fast").await?;
            self.local.start().await
        };
        match restarted.await {
            Ok(()) => {
                let why = if pending.is_empty() {
                    String::new()
                } else {
                    format!(" (pending: {})", pending.join(", "))
                };
                outcome(true, true, pending, format!("restarted the standby{why}"))
            }
            Err(e) => outcome(false, false, pending, format!("restart failed: {e}")),
        }
    }
}
