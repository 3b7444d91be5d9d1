//! One fake server's state ([`Node`]), shared by the agent's handle on
//! it ([`super::fake::FakeServer`]), its fence ([`super::fake_fence`])
//! and the test: a leaf, so that both can use it.

use std::time::Duration;
use tokio::time::Instant;

/// One fake server's state, shared by its [`super::fake::FakeServer`] (the agent's
/// handle, dropped when the agent crashes) and the test.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub running: bool,
    /// Running and out of recovery: accepts writes.
    pub primary: bool,
    /// A start comes up in recovery (marked a standby's).
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
    /// Stops fail (the stop errors, the server keeps running).
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
    /// ([`crate::cluster::server::Server::term_is_replicated`]).
    pub term_replicated: bool,
    /// Why it may not lead although it answers as a replica (an engine's
    /// finding: MariaDB's errant GTIDs, a stopped SQL thread).
    pub unfit: Option<String>,
    /// Settings cannot be read or written (SQL fails).
    pub sql_fails: bool,
    /// How long its slow work takes (zero: none is slow): a start (its
    /// crash recovery) and a checkpoint, the server running at once but
    /// answering only after it; a promotion's confirmation and a
    /// setting's write (a disk that stalls), the call returning (and the
    /// setting applied) only after it.
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

    pub(super) fn stop(&mut self) -> Result<(), String> {
        if self.stop_fails || self.unknown {
            return Err("the server's stop: the server did not stop".into());
        }
        self.running = false;
        self.primary = false;
        self.streaming = false;
        self.recovering_until = None;
        Ok(())
    }
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
