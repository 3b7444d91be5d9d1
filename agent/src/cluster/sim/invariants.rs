//! The simulation's safety invariants on who accepts writes, looked at on
//! every change of a server's role (the fake servers run [`Invariants::look`]
//! before and after each start, stop, promotion and rewind) and after every
//! step of the world: at most one server accepts writes, and one that does
//! holds the leader key in the store, now, under a lease that has not
//! expired; a server that starts accepting writes was on the history of
//! the last one that did (as that one's WAL ends now): no write of the
//! last primary is on a timeline the new one left. The first broken one
//! is kept for the episode's report.

use super::fake::Node;
use crate::cluster::dcs::memory::Store;
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::time::Instant;

/// What the invariants look at: the store, the leader key's name, and
/// every member's server by member name.
pub struct Invariants {
    store: Arc<Mutex<Store>>,
    leader_key: String,
    nodes: Vec<(String, Arc<Mutex<Node>>)>,
    start: Instant,
    broken: Mutex<Option<String>>,
    /// Which servers accepted writes at the last look, and the last one
    /// that did (indexes into `nodes`).
    seen: Mutex<(Vec<bool>, Option<usize>)>,
    /// Synchronous mode: a promoted server must hold every commit the
    /// last primary acknowledged ([`Node::acked`]).
    synchronous: bool,
}

impl Invariants {
    pub fn new(
        store: Arc<Mutex<Store>>,
        leader_key: String,
        nodes: Vec<(String, Arc<Mutex<Node>>)>,
        synchronous: bool,
    ) -> Invariants {
        let writable: Vec<bool> = nodes.iter().map(|(_, n)| writable(&n.lock())).collect();
        let last = writable.iter().position(|w| *w);
        Invariants {
            seen: Mutex::new((writable, last)),
            store,
            leader_key,
            nodes,
            start: Instant::now(),
            broken: Mutex::new(None),
            synchronous,
        }
    }

    /// Look now; the first invariant found broken is kept.
    pub fn look(&self) {
        if let Err(broken) = self.writers() {
            let mut kept = self.broken.lock();
            if kept.is_none() {
                *kept = Some(broken);
            }
        }
    }

    /// The first invariant found broken, if any.
    pub fn broken(&self) -> Option<String> {
        self.broken.lock().clone()
    }

    fn writers(&self) -> Result<(), String> {
        let now = Instant::now();
        let at = (now - self.start).as_secs_f64();
        let holder = {
            let store = self.store.lock();
            store
                .get(&self.leader_key)
                .map(|kv| (kv.value.clone(), store.lease_expiry(kv.lease)))
        };
        let nodes: Vec<Node> = self.nodes.iter().map(|(_, n)| n.lock().clone()).collect();
        self.history(&nodes)?;
        let mut writers = Vec::new();
        for ((name, _), node) in self.nodes.iter().zip(&nodes) {
            if !writable(node) {
                continue;
            }
            writers.push(name.clone());
            let valid = holder
                .as_ref()
                .is_some_and(|(h, until)| h == name && until.is_some_and(|u| now < u));
            if !valid {
                return Err(format!(
                    "at {at:.3}s {name} accepts writes without holding the leader key under a live lease (key: {:?})",
                    holder
                        .as_ref()
                        .map(|(h, until)| (h, until.map(|u| u.checked_duration_since(self.start))))
                ));
            }
        }
        if writers.len() > 1 {
            return Err(format!(
                "at {at:.3}s two primaries accept writes: {writers:?}"
            ));
        }
        Ok(())
    }
}

impl Invariants {
    /// A server that began accepting writes since the last look: on the
    /// history of the last one that did.
    fn history(&self, nodes: &[Node]) -> Result<(), String> {
        let mut seen = self.seen.lock();
        let (was, last) = &mut *seen;
        for (i, node) in nodes.iter().enumerate() {
            let now = writable(node);
            if now
                && !was[i]
                && let Some(before) = *last
                && before != i
                && let Some((timeline, at)) = node.history.last()
                && !on_history(node, &nodes[before])
            {
                let last = &nodes[before];
                return Err(format!(
                    "{} was promoted from timeline {timeline} at {at}, which is not on the history of the last primary {} (timeline {}, at {}, history {:?})",
                    self.nodes[i].0, self.nodes[before].0, last.timeline, last.lsn, last.history
                ));
            }
            if self.synchronous
                && now
                && !was[i]
                && let Some(before) = *last
                && before != i
                && let Some(missing) = lost_acknowledged(node, &nodes[before])
            {
                return Err(format!(
                    "{} was promoted without commits {} acknowledged: {missing}",
                    self.nodes[i].0, self.nodes[before].0
                ));
            }
            if now {
                *last = Some(i);
            }
            was[i] = now;
        }
        Ok(())
    }
}

fn writable(node: &Node) -> bool {
    node.running && node.primary
}

/// Whether the WAL `node` held before its promotion is on `primary`'s
/// history: each timeline it left ended within the primary's part of it,
/// and on timelines the primary never saw it wrote nothing.
///
/// A timeline is named by its number and where it began (PostgreSQL gives
/// the same number to every promotion from the same history): a timeline
/// of the primary's number begun elsewhere is not the primary's.
fn on_history(node: &Node, primary: &Node) -> bool {
    let mut start = 0;
    for (timeline, end) in &node.history {
        let fine = match timeline.cmp(&primary.timeline) {
            std::cmp::Ordering::Greater => *end <= start,
            _ => primary.contains(*timeline, start, *end),
        };
        if !fine {
            return false;
        }
        start = *end;
    }
    true
}

/// Synchronous mode: why `node`, just promoted, lacks a commit `primary`
/// (the last server that accepted writes) acknowledged, or `None`. The
/// commits acknowledged on the primary's timeline end at `primary.acked`;
/// `node` holds that timeline up to where it left it (its last switch
/// point), when that timeline is the primary's (the same number, begun at
/// the same point). A primary that acknowledged nothing on its timeline
/// (`acked` at its start) loses nothing there.
fn lost_acknowledged(node: &Node, primary: &Node) -> Option<String> {
    let begun = primary.timeline_start();
    if primary.acked <= begun {
        return None;
    }
    let mut start = 0;
    for (timeline, end) in &node.history {
        if (*timeline, start) == (primary.timeline, begun) {
            return (*end < primary.acked).then(|| {
                format!(
                    "it left timeline {timeline} at {end}, and commits up to {} were acknowledged there",
                    primary.acked
                )
            });
        }
        start = *end;
    }
    Some(format!(
        "it never was on the primary's timeline {} (begun at {begun}), where commits up to {} were acknowledged",
        primary.timeline, primary.acked
    ))
}
