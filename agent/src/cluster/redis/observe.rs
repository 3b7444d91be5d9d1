//! One look at the local Redis server for the HA loop, and what is
//! checked with it at each loop: the configuration file still starts the
//! server as a replica of the leader the agent chose (`CONFIG REWRITE` on
//! a primary drops the `replicaof` line; an operator may edit it), the
//! term key cannot be evicted nor written by the default user
//! ([`super::keyspace`]); and the promotion's own check that a server the
//! agent promoted before still holds its term.

use super::info::{self, NOWHERE, TERM_KEY};
use super::{CALL, RedisServer, conf, process};
use crate::cluster::local::Observation;
use crate::cluster::quiet::Level;
use crate::cluster::server::Server;
use std::time::Duration;

impl RedisServer {
    pub(super) async fn observe_now(&self, budget: Duration) -> Observation {
        let probe = self.postmaster();
        let mut seen = Observation {
            server: probe.state,
            pid_fault: probe.fault,
            ..Observation::default()
        };
        if seen.server.stopped() {
            self.keep_conf();
            return seen;
        }
        let Ok((fields, value)) = self.local.replication(TERM_KEY, budget).await else {
            self.keep_conf();
            return seen;
        };
        let state = info::replication(&fields);
        if !state.replica {
            // A primary follows nobody: a restart must not make it follow
            // the leader it followed before.
            *self.pointed.lock() = (NOWHERE.0.to_string(), NOWHERE.1);
        }
        let promoted = self.keep_conf();
        let mut held = info::term_of(value.as_ref().map(|v| v.as_deref()), state.fresh, promoted);
        let known = (*self.last_term.lock()).max(promoted);
        if let (false, Some(None), Some(term)) = (state.replica, &value, known)
            && held.is_err()
            && term > 1
        {
            // A primary whose key was removed (FLUSHALL, FLUSHDB, a DEL):
            // its term is the one last seen, written back so that its
            // replicas can be placed on its history again.
            let back = term.to_string();
            if self
                .local
                .call(&["SET", TERM_KEY, &back, "NX"], budget)
                .await
                .is_ok()
            {
                tracing::warn!(
                    "cluster: the term key {TERM_KEY} was removed on the primary: written back ({term})"
                );
                held = Ok(term);
            }
        }
        if let Ok(term) = held {
            *self.last_term.lock() = Some(term);
        }
        self.faults.lock().outcome(
            Level::Warn,
            "place the local Redis server on a history",
            &held,
        );
        info::observed(&mut seen, &state, &held);
        self.check_keyspace().await;
        seen
    }

    /// The file as cluster mode needs it, at each loop: a file that no
    /// longer starts the server as a replica of the leader the agent chose
    /// gets that line back. The [`conf::PROMOTED`] term, if any.
    fn keep_conf(&self) -> Option<u64> {
        let dir = &self.spec.data_dir;
        let text = match conf::read(dir) {
            Ok(text) => text,
            Err(e) => {
                self.faults.lock().failed(
                    Level::Error,
                    "read the Redis configuration file",
                    &e.to_string(),
                );
                return None;
            }
        };
        self.faults
            .lock()
            .worked("read the Redis configuration file");
        let promoted = conf::promoted_term(&text);
        let (host, port) = self.pointed.lock().clone();
        let line = format!("{host} {port}");
        if !conf::starts_as_replica(&text) || conf::directive(&text, "replicaof") != Some(line) {
            match conf::write_replicaof(dir, &host, port, promoted) {
                Ok(()) => tracing::warn!(
                    "cluster: {} did not start the server as a replica of {host}:{port} (`CONFIG REWRITE` on a primary drops the line; or an edit): wrote `replicaof {host} {port}` back",
                    conf::CONFIG_FILE
                ),
                Err(e) => tracing::error!("cluster: {e}"),
            }
        }
        let fit = conf::check(&text, dir).map_err(|e| format!("{}: {e}", conf::CONFIG_FILE));
        self.faults
            .lock()
            .outcome(Level::Error, "keep redis.conf fit for cluster mode", &fit);
        promoted
    }

    pub(super) async fn start_promotion_now(&self) -> Result<(), String> {
        let dir = &self.spec.data_dir;
        let text = conf::read(dir).map_err(|e| e.to_string())?;
        let (fields, value) = self
            .local
            .replication(TERM_KEY, CALL)
            .await
            .map_err(|e| format!("not promoted: its term cannot be read: {e}"))?;
        let state = info::replication(&fields);
        let value = value.as_ref().map(|v| v.as_deref());
        let promoted = conf::promoted_term(&text);
        let held = info::term_of(value, state.fresh, None);
        if let (Some(was), Ok(term)) = (promoted, &held)
            && *term < was
        {
            // Restarted without its data (by anyone): what it holds is not
            // worth keeping, and a leader keeps a server that answers.
            // Stopped, the key is let go after restart_timeout.
            let stopped = process::stop_immediate(&self.local, dir).await;
            return Err(format!(
                "not promoted: the agent promoted this server at term {was} and it holds term {term}: it came back without its data; promoted again it would replace its replicas' data by a full resync. Stopped it ({stopped:?}), so that the leader key moves to a replica that holds the data"
            ));
        }
        let term = held.map_err(|why| format!("not promoted: {why}"))?;
        conf::mark_promoted(dir, term)?;
        *self.pointed.lock() = (NOWHERE.0.to_string(), NOWHERE.1);
        self.local
            .run(&[&["CLIENT", "UNPAUSE"], &["REPLICAOF", "NO", "ONE"]], CALL)
            .await
            .map(|_| ())
            .map_err(|e| format!("REPLICAOF NO ONE: {e}"))
    }
}
