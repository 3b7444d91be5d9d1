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

/// One fake server's state, shared by its [`FakeServer`] (the agent's
/// handle, dropped when the agent crashes) and the test.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub running: bool,
    /// Running and out of recovery: accepts writes.
    pub primary: bool,
    /// A start comes up in recovery (`standby.signal`).
    pub standby_marked: bool,
    /// The upstream it is configured to follow (`host:port`).
    pub upstream: Option<String>,
    /// It streams from `upstream` (set by the test's replication step).
    pub streaming: bool,
    pub timeline: u64,
    /// The end of its WAL, bytes.
    pub lsn: u64,
    /// The timelines it left and where: `(timeline, switch point)`.
    pub history: Vec<(u64, u64)>,
    /// Whether it runs cannot be told (`postmaster.pid` unreadable).
    pub unknown: bool,
    /// Stops fail (`pg_ctl stop` errors, the server keeps running).
    pub stop_fails: bool,
    /// Rewinds fail.
    pub rewind_fails: bool,
    /// The fence cannot be started.
    pub fence_broken: bool,
    /// The fence cannot signal the server: once armed it exits (and says
    /// so), so the agent sees it unarmed.
    pub fence_fails: bool,
    /// After a clean stop of a primary: where its stream ended, the
    /// shutdown checkpoint included (a standby that replayed up to it has
    /// everything).
    pub shut_down: Option<u64>,
    /// Its clean stop writes no record of its own (Redis, MariaDB): its
    /// stream ends where the last write left it.
    pub no_shutdown_record: bool,
    /// Its term is replicated data, as Redis's and MariaDB's
    /// ([`Server::term_is_replicated`]).
    pub term_replicated: bool,
    /// Why it may not lead although it answers as a replica (an engine's
    /// finding: MariaDB's errant GTIDs, a stopped SQL thread).
    pub unfit: Option<String>,
    /// Settings cannot be read or written (SQL fails).
    pub sql_fails: bool,
    /// How long a start (its crash recovery) and a checkpoint take: the
    /// server runs at once but answers only after it (zero: at once).
    pub slow: Duration,
    /// A start's recovery ends then (the server does not answer before).
    pub recovering_until: Option<Instant>,
    /// Armed fences (one per fence process; a crashed agent's stays):
    /// their deadlines.
    pub fences: Vec<(u64, Option<Instant>)>,
    /// The fence processes that fired and what they did, not yet reaped.
    pub fired: Vec<(u64, bool)>,
    pub(super) next_fence: u64,
    /// Its member's name (its `application_name` on its upstream).
    pub name: String,
    /// `synchronous_standby_names` (`ANY k ("a", "b")`; empty: commits
    /// wait for no standby).
    pub sync_names: String,
    /// As a primary: the last WAL position of its timeline acknowledged
    /// to a client (every commit up to it returned). With standby names
    /// set, only once `k` of them flushed it ([`Node::acknowledge`]).
    pub acked: u64,
}

impl Node {
    /// A server of timeline 1 at `lsn`.
    pub fn new(primary: bool, lsn: u64) -> Node {
        Node {
            running: true,
            primary,
            standby_marked: !primary,
            timeline: 1,
            lsn,
            ..Node::default()
        }
    }

    /// As a primary at the end of a step: the commits acknowledged now,
    /// given what its streaming standbys (name, flushed position) hold:
    /// everything without standby names; with `ANY k (...)`, up to the
    /// `k`-th most advanced of the named ones.
    pub fn acknowledge(&mut self, standbys: &[(String, u64)]) {
        let (k, names) = parse_standby_names(&self.sync_names);
        if names.is_empty() {
            self.acked = self.lsn;
            return;
        }
        let mut flushed: Vec<u64> = standbys
            .iter()
            .filter(|(name, _)| names.contains(name))
            .map(|(_, lsn)| (*lsn).min(self.lsn))
            .collect();
        flushed.sort_unstable_by(|a, b| b.cmp(a));
        if k >= 1
            && let Some(kth) = flushed.get(k - 1)
        {
            self.acked = self.acked.max(*kth);
        }
    }

    /// Where its current timeline began: the point where it left the
    /// one before (0 on the first).
    pub fn timeline_start(&self) -> u64 {
        self.history.last().map_or(0, |(_, switch)| *switch)
    }

    /// Whether `lsn` on the timeline numbered `timeline` that began at
    /// `start` lies on this server's history: its timeline (the same
    /// number begun at the same point) at or behind its end, or one it
    /// left, at or before the point where it left it. Numbers are reused
    /// (promotions from the same history get the same one): a timeline is
    /// named by its number and where it began.
    pub fn contains(&self, timeline: u64, start: u64, lsn: u64) -> bool {
        if (timeline, start) == (self.timeline, self.timeline_start()) {
            return lsn <= self.lsn;
        }
        let mut begun = 0;
        for (t, switch) in &self.history {
            if (*t, begun) == (timeline, start) {
                return lsn <= *switch;
            }
            begun = *switch;
        }
        false
    }

    /// Whether this server's own position lies on `upstream`'s history.
    pub fn on(&self, upstream: &Node) -> bool {
        upstream.contains(self.timeline, self.timeline_start(), self.lsn)
    }

    /// A fence left armed by an earlier run of the agent.
    pub fn arm_left_over(&mut self, until: Instant) {
        self.next_fence += 1;
        let id = self.next_fence;
        self.fences.push((id, Some(until)));
    }

    /// Fire the fences whose deadline passed by `now`: stop the server.
    pub fn fire_fences(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .fences
            .iter()
            .filter(|(_, until)| until.is_some_and(|u| now >= u))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.fences.retain(|(f, _)| *f != id);
            let stopped = self.running;
            self.running = false;
            self.primary = false;
            self.streaming = false;
            self.fired.push((id, stopped));
        }
    }

    fn stop(&mut self) -> Result<(), String> {
        if self.stop_fails || self.unknown {
            return Err("pg_ctl stop: the server did not stop".into());
        }
        self.running = false;
        self.primary = false;
        self.streaming = false;
        self.recovering_until = None;
        Ok(())
    }
}

/// Every server of a simulated cluster, by `host:port`.
pub type Peers = Arc<Mutex<Vec<(String, Arc<Mutex<Node>>)>>>;

/// The test's check of its invariants, run before and after each call
/// that can change who accepts writes (no lock of a node held).
pub type Watch = Arc<dyn Fn() + Send + Sync>;

pub use super::fake_fence::FakeFence;

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
                Err("pg_ctl start: another server might be running".into())
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
            // `pg_ctl start -w`: back once the server answers, or sooner
            // if it stopped meanwhile (a fence fired).
            tokio::time::sleep(slow).await;
            if node.lock().running {
                started
            } else {
                Err("pg_ctl start: the server exited during its recovery".into())
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
        ready(Ok(()))
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

    /// Applied at once, as a reload that every WAL sender has seen.
    fn alter_system(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), String>> + Send {
        let mut node = self.node.lock();
        ready(if node.sql_fails {
            Err("no answer within 2s".to_string())
        } else {
            if name == "synchronous_standby_names" {
                node.sync_names = value.to_string();
            }
            Ok(())
        })
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

/// `ANY k ("a", "b")` (what the agent writes) as `(k, names)`; `(0, [])`
/// for anything else (empty: asynchronous).
pub fn parse_standby_names(text: &str) -> (usize, Vec<String>) {
    let Some(rest) = text.strip_prefix("ANY ") else {
        return (0, Vec::new());
    };
    let Some((k, list)) = rest.split_once(' ') else {
        return (0, Vec::new());
    };
    let names = list
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(|n| n.trim().trim_matches('"').replace("\"\"", "\""))
        .filter(|n| !n.is_empty())
        .collect();
    (k.parse().unwrap_or(0), names)
}
