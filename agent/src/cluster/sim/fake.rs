//! A fake database server and fence for the HA loop's table tests and
//! simulation: a few fields stand for a PostgreSQL server (running, in
//! recovery, timeline and its history, WAL position, upstream), and the
//! test flips the faults the loop must survive (a state that cannot be
//! read, a stop or a rewind that fails, a fence that cannot start or
//! cannot signal the server). A clean (`fast`) stop of a primary writes
//! its shutdown checkpoint and sends it to the standbys streaming from
//! it, as PostgreSQL's WAL senders do. Every call that can change who
//! accepts writes runs the test's [`Watch`] before and after it, so that
//! the invariants are checked at each change, not only between steps.

use crate::cluster::local::{Observation, ShutDown};
use crate::cluster::server::{Replication, Server};
use crate::config::ClusterSpec;
use crate::pgserver::postmaster::{Postmaster, Probe};
use parking_lot::Mutex;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Every server of a simulated cluster, by `host:port`.
pub type Peers = Arc<Mutex<Vec<(String, Arc<Mutex<Node>>)>>>;

/// The test's check of its invariants, run before and after each call
/// that can change who accepts writes (no lock of a node held).
pub type Watch = Arc<dyn Fn() + Send + Sync>;

pub use super::fake_fence::FakeFence;
pub use super::node::{Node, parse_standby_names};

/// The agent's handle on a fake server.
pub struct FakeServer {
    pub spec: ClusterSpec,
    pub node: Arc<Mutex<Node>>,
    /// Every server of the cluster by `host:port` (to rewind from).
    pub peers: Peers,
    /// Run around each call that changes the server's role (`None`: the
    /// table tests, which check after the pass).
    pub watch: Option<Watch>,
}

fn ready<T: Send>(value: T) -> impl Future<Output = T> + Send {
    std::future::ready(value)
}

impl FakeServer {
    /// Run `change` between two looks of the test's watch.
    fn watched<T>(&self, change: impl FnOnce() -> T) -> T {
        if let Some(watch) = &self.watch {
            watch();
        }
        let answer = change();
        if let Some(watch) = &self.watch {
            watch();
        }
        answer
    }

    /// A clean stop's last WAL, sent to the standbys streaming from this
    /// server (`node`: as it is now, stopped).
    fn send_to_standbys(&self, node: &Node) {
        let me = format!("{}:{}", self.spec.host, self.spec.port);
        let peers = self.peers.lock();
        for (_, peer) in peers.iter().filter(|(_, p)| !Arc::ptr_eq(p, &self.node)) {
            let mut peer = peer.lock();
            if peer.running
                && !peer.primary
                && peer.streaming
                && peer.upstream.as_deref() == Some(me.as_str())
                && peer.on(node)
            {
                peer.lsn = node.lsn;
                peer.timeline = node.timeline;
                peer.history = node.history.clone();
            }
        }
    }

    fn peer(&self, host: &str, port: u16) -> Option<Arc<Mutex<Node>>> {
        let at = format!("{host}:{port}");
        let peers = self.peers.lock();
        peers.iter().find(|(a, _)| *a == at).map(|(_, n)| n.clone())
    }
}

impl Server for FakeServer {
    type Fence = FakeFence;

    fn term_is_replicated(&self) -> bool {
        self.node.lock().term_replicated
    }

    fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    fn fence(&self, _record: PathBuf) -> FakeFence {
        FakeFence {
            node: self.node.clone(),
            id: None,
            sent: None,
        }
    }

    fn postmaster(&self) -> Probe {
        let node = self.node.lock();
        let state = match (node.unknown, node.running) {
            (true, _) => Postmaster::Unknown("postmaster.pid cannot be read".into()),
            (false, true) => Postmaster::Running(4242),
            (false, false) => Postmaster::Stopped,
        };
        Probe {
            state,
            fault: node
                .unknown
                .then(|| "postmaster.pid has 2 hard links".into()),
        }
    }

    fn observe(&self, _budget: Duration) -> impl Future<Output = Observation> + Send {
        let probe = self.postmaster();
        let mut node = self.node.lock().clone();
        // Still in its crash recovery: running, not answering yet.
        node.running &= node.recovering_until.is_none_or(|t| Instant::now() >= t);
        ready(Observation {
            server: probe.state,
            pid_fault: probe.fault,
            answering: node.running,
            in_recovery: node.running && !node.primary,
            lsn: node.running.then_some(node.lsn),
            replayed: (node.running && !node.primary).then_some(node.lsn),
            replay_paused: false,
            timeline: node.running.then_some(node.timeline),
            timeline_start: node.running.then(|| node.timeline_start()),
            wal_end_read: node.running && !node.primary,
            streaming_from: (node.running && node.streaming)
                .then(|| node.upstream.clone())
                .flatten(),
            unfit: node.unfit.clone(),
        })
    }

    fn rewind_precondition(&self) -> impl Future<Output = Option<String>> + Send {
        ready(None)
    }

    fn start(&self) -> impl Future<Output = Result<(), String>> + Send {
        let slow = self.node.lock().slow;
        let started = self.watched(|| {
            let mut node = self.node.lock();
            if node.unknown || node.running {
                Err("the server's start: another server might be running".into())
            } else {
                node.running = true;
                node.primary = !node.standby_marked;
                node.shut_down = None;
                node.recovering_until = (!slow.is_zero()).then(|| Instant::now() + slow);
                Ok(())
            }
        });
        let node = self.node.clone();
        async move {
            if started.is_err() || slow.is_zero() {
                return started;
            }
            // The start waits: back once the server answers, or sooner
            // if it stopped meanwhile (a fence fired).
            tokio::time::sleep(slow).await;
            if node.lock().running {
                started
            } else {
                Err("the server's start: the server exited during its recovery".into())
            }
        }
    }

    fn stop(&self, mode: &str) -> impl Future<Output = Result<(), String>> + Send {
        ready(self.watched(|| {
            let mut node = self.node.lock();
            let clean = mode == "fast" && node.running && node.primary;
            node.stop()?;
            if clean {
                // The shutdown checkpoint, sent before the senders exit.
                if !node.no_shutdown_record {
                    node.lsn += 1;
                }
                node.shut_down = Some(node.lsn);
                let now = node.clone();
                drop(node);
                self.send_to_standbys(&now);
            }
            Ok(())
        }))
    }

    fn start_promotion(&self) -> impl Future<Output = Result<(), String>> + Send {
        ready(self.watched(|| {
            let mut node = self.node.lock();
            if node.running && !node.primary {
                let (timeline, lsn) = (node.timeline, node.lsn);
                node.history.push((timeline, lsn));
                node.timeline += 1;
                node.primary = true;
                // Nothing acknowledged on the new timeline yet.
                node.acked = lsn;
                node.streaming = false;
                Ok(())
            } else {
                Err("not a running standby".into())
            }
        }))
    }

    fn confirm_promotion(&self) -> impl Future<Output = Result<(), String>> + Send {
        let slow = self.node.lock().slow;
        let node = self.node.clone();
        async move {
            // Its write waits on the disk.
            if !slow.is_zero() {
                tokio::time::sleep(slow).await;
            }
            let node = node.lock();
            if node.running && node.primary {
                Ok(())
            } else {
                Err("the promoted server no longer runs as a primary".to_string())
            }
        }
    }

    fn mark_standby(&self) -> std::io::Result<()> {
        self.node.lock().standby_marked = true;
        Ok(())
    }

    fn point_at(&self, host: &str, port: u16) -> Result<(), String> {
        let mut node = self.node.lock();
        node.standby_marked = true;
        node.upstream = Some(format!("{host}:{port}"));
        Ok(())
    }

    fn follow(&self, host: &str, port: u16) -> impl Future<Output = Result<(), String>> + Send {
        let mut node = self.node.lock();
        node.upstream = Some(format!("{host}:{port}"));
        node.streaming = false;
        ready(Ok(()))
    }

    fn conninfo(&self, host: &str, port: u16) -> String {
        format!("host={host} port={port}")
    }

    fn rewind_and_follow(
        &self,
        host: &str,
        port: u16,
        _source: &str,
    ) -> impl Future<Output = Result<String, String>> + Send {
        let source = self.peer(host, port).map(|n| n.lock().clone());
        let answer = self.watched(|| {
            let mut node = self.node.lock();
            node.stop()?;
            if node.rewind_fails {
                return Err("pg_rewind: could not connect".to_string());
            }
            let source = source.ok_or("pg_rewind: no such server")?;
            if !source.running {
                return Err("pg_rewind: the source server does not run".into());
            }
            node.timeline = source.timeline;
            node.history = source.history.clone();
            // Rewound to where its history and the source's part.
            node.lsn = node.lsn.min(source.lsn);
            node.upstream = Some(format!("{host}:{port}"));
            node.standby_marked = true;
            node.running = true;
            node.primary = false;
            Ok("rewound".to_string())
        });
        ready(answer)
    }

    fn setting(&self, name: &str) -> impl Future<Output = Result<String, String>> + Send {
        let node = self.node.lock();
        ready(if node.sql_fails {
            Err("no answer within 2s".to_string())
        } else if name == "synchronous_standby_names" {
            Ok(node.sync_names.clone())
        } else if name == "synchronous_commit" {
            Ok("on".to_string())
        } else {
            Ok(String::new())
        })
    }

    /// Applied once its write is done (after `slow`: never, if the call
    /// is dropped first), as a reload that every WAL sender has seen.
    fn alter_system(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), String>> + Send {
        let slow = self.node.lock().slow;
        let node = self.node.clone();
        let (name, value) = (name.to_string(), value.to_string());
        async move {
            if !slow.is_zero() {
                tokio::time::sleep(slow).await;
            }
            let mut node = node.lock();
            if node.sql_fails {
                Err("no answer within 2s".to_string())
            } else {
                if name == "synchronous_standby_names" {
                    node.sync_names = value;
                }
                Ok(())
            }
        }
    }

    fn checkpoint(&self) -> impl Future<Output = Result<(), String>> + Send {
        let slow = self.node.lock().slow;
        let node = self.node.clone();
        let answering = move || {
            let node = node.lock();
            if node.running && node.recovering_until.is_none_or(|t| Instant::now() >= t) {
                Ok(())
            } else {
                Err("CHECKPOINT: the server does not answer".to_string())
            }
        };
        async move {
            answering()?;
            if !slow.is_zero() {
                tokio::time::sleep(slow).await;
            }
            answering()
        }
    }

    fn shut_down_at(&self) -> impl Future<Output = Result<ShutDown, String>> + Send {
        let node = self.node.lock();
        ready(Ok(ShutDown {
            reach: node.shut_down.unwrap_or(node.lsn + 1),
            timeline: node.timeline,
        }))
    }

    fn pending_restart(&self) -> impl Future<Output = Result<Vec<String>, String>> + Send {
        ready(Ok(Vec::new()))
    }

    fn receiving_timeline(&self) -> impl Future<Output = Option<u64>> + Send {
        let node = self.node.lock();
        ready(node.streaming.then_some(node.timeline))
    }

    /// The standbys streaming from this server (their names and flushed
    /// positions), as `pg_stat_replication` shows them.
    fn replication(&self) -> impl Future<Output = Result<Replication, String>> + Send {
        let me = format!("{}:{}", self.spec.host, self.spec.port);
        let node = self.node.lock().clone();
        let answer = if node.sql_fails || !node.running {
            Err("no answer within 2s".to_string())
        } else {
            let (_, names) = parse_standby_names(&node.sync_names);
            let streaming = streaming_from(&self.peers, &me)
                .into_iter()
                .map(|(name, lsn)| {
                    let candidate = names.contains(&name);
                    (name, lsn, candidate)
                })
                .collect();
            Ok(Replication {
                names: node.sync_names.clone(),
                commit: "on".into(),
                lsn: node.lsn,
                streaming,
            })
        };
        ready(answer)
    }
}

/// The standbys streaming from the server at `address` among `peers`:
/// `(name, position)`.
pub fn streaming_from(peers: &Peers, address: &str) -> Vec<(String, u64)> {
    peers
        .lock()
        .iter()
        .filter_map(|(_, n)| {
            let n = n.lock();
            (n.running && !n.primary && n.streaming && n.upstream.as_deref() == Some(address))
                .then(|| (n.name.clone(), n.lsn))
        })
        .collect()
}
