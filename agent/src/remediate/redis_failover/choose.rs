//! The Redis failover's decision, as a pure function of what the agent
//! read: whether the old primary is gone, and which replica takes its
//! place. Kept apart from the I/O so that it is tested as a table and by
//! a seeded simulation with injected faults (below), besides end to end.
//!
//! The rules:
//!
//! - the old primary must be [`Primary::Gone`]: it neither answers nor
//!   refuses. An answer of any kind (a reply, an error reply such as
//!   `LOADING`, `BUSY` or max clients, a connection accepted and closed)
//!   is [`Primary::Alive`]; a connection accepted and then silent (a
//!   frozen process), or the agent's own failure, is
//!   [`Primary::CannotTell`], which never counts as gone;
//! - every configured replica must be readable: one the agent cannot
//!   read may still be linked to the old primary on the other side of a
//!   split (and keep it taking writes past `min-replicas-to-write`), so
//!   an unreadable replica is "cannot tell", never skipped;
//! - no server of the set may already claim to be a primary
//!   (`role:master`): an earlier failover (whose reply was lost) or a
//!   hand may have promoted it, and a second promotion makes two;
//! - no replica may still be linked to it (`master_link_status:up`: the
//!   primary is alive for that replica, whatever the agent sees);
//! - a candidate is a replica (`role:slave`) of the old primary's address
//!   whose link is down; the old primary's replication id is the one its
//!   candidates hold (`master_replid`): candidates that disagree cannot be
//!   told apart by offset, so the decision refuses;
//! - the candidate with the highest offset (`master_repl_offset`) is
//!   chosen, the configured `failover` target first among equals;
//! - the chosen one may lack at most `max_lag_bytes` of the newest offset
//!   any readable server holds of that history (the old primary's own
//!   last offset died with it: this bounds what the promotion loses
//!   against every copy the agent can read).

use std::fmt;

/// What the agent saw of the old primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Primary {
    /// No answer at all: the connection was refused, had no route, or was
    /// not accepted in time.
    Gone(String),
    /// It answered, or refused (LOADING, BUSY, max clients, a bad login).
    Alive(String),
    /// It accepted a connection but did not answer in time, or the agent
    /// could not ask: not "down".
    CannotTell(String),
}

/// What the agent read of one replica of the set (`INFO replication`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The target's name.
    pub name: String,
    /// `role:slave` (true) or `role:master`.
    pub replica: bool,
    /// `master_host:master_port`, as the replica has it.
    pub source: Option<(String, u16)>,
    /// `master_link_status:up`.
    pub link_up: bool,
    /// `master_replid`.
    pub replid: String,
    /// `master_repl_offset`, in bytes of the replication stream.
    pub offset: u64,
}

/// One replica as the decision sees it: read, or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replica {
    Read(Seen),
    Unreadable { name: String, why: String },
}

/// What the decision is given.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    pub primary: Primary,
    /// The old primary's address, as its replicas name it.
    pub primary_address: (&'a str, u16),
    /// The configured `failover` target, preferred among equals.
    pub preferred: &'a str,
    pub replicas: Vec<Replica>,
    pub max_lag_bytes: u64,
}

/// The replica to promote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub name: String,
    pub replid: String,
    pub offset: u64,
    /// The newest offset of that history any readable server holds.
    pub newest: u64,
    /// Readable candidates not chosen, to be repointed.
    pub others: Vec<String>,
}

/// Why the decision does not promote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    PrimaryAlive(String),
    PrimaryCannotTell(String),
    StillLinked(String),
    /// A configured replica cannot be read (name, why).
    ReplicaUnreadable(String, String),
    /// A server of the set other than the old primary is a primary.
    AnotherPrimary(String),
    NoCandidate(String),
    ReplidsDisagree(Vec<(String, String)>),
    TooFarBehind {
        name: String,
        offset: u64,
        newest: u64,
        limit: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PrimaryAlive(why) => {
                write!(f, "the old primary is alive ({why}): not failing over")
            }
            Refusal::PrimaryCannotTell(why) => write!(
                f,
                "the old primary's state cannot be told ({why}): that is not \"down\"; not failing over"
            ),
            Refusal::StillLinked(name) => write!(
                f,
                "the replica `{name}` is still linked to the old primary (master_link_status:up): the primary is alive; not failing over"
            ),
            Refusal::ReplicaUnreadable(name, why) => write!(
                f,
                "the replica `{name}` cannot be read ({why}): it may still be linked to the old primary on the other side of a split, which then keeps taking writes; cannot tell, not failing over"
            ),
            Refusal::AnotherPrimary(name) => write!(
                f,
                "`{name}` already claims to be a primary (role:master): an earlier failover or a hand promoted it; promoting another would make two primaries; not failing over"
            ),
            Refusal::NoCandidate(why) => write!(f, "no replica can be promoted: {why}"),
            Refusal::ReplidsDisagree(ids) => {
                let list: Vec<String> = ids.iter().map(|(n, id)| format!("`{n}` {id}")).collect();
                write!(
                    f,
                    "the replicas hold different replication ids ({}): which one is the old primary's history cannot be told; promote by hand",
                    list.join(", ")
                )
            }
            Refusal::TooFarBehind {
                name,
                offset,
                newest,
                limit,
            } => write!(
                f,
                "the best replica `{name}` is at offset {offset}, {} bytes behind the newest copy ({newest}), more than max_lag_bytes = {limit}",
                newest - offset
            ),
        }
    }
}

/// The decision (see the module's documentation).
pub fn choose(input: &Input) -> Result<Choice, Refusal> {
    match &input.primary {
        Primary::Gone(_) => {}
        Primary::Alive(why) => return Err(Refusal::PrimaryAlive(why.clone())),
        Primary::CannotTell(why) => return Err(Refusal::PrimaryCannotTell(why.clone())),
    }
    let (host, port) = input.primary_address;
    let of_primary = |s: &Seen| {
        s.replica
            && s.source
                .as_ref()
                .is_some_and(|(h, p)| same_host(h, host) && *p == port)
    };
    let mut read: Vec<&Seen> = Vec::new();
    for replica in &input.replicas {
        match replica {
            Replica::Read(seen) => read.push(seen),
            Replica::Unreadable { name, why } => {
                return Err(Refusal::ReplicaUnreadable(name.clone(), why.clone()));
            }
        }
    }
    if let Some(primary) = read.iter().find(|s| !s.replica) {
        return Err(Refusal::AnotherPrimary(primary.name.clone()));
    }
    if let Some(linked) = read.iter().find(|s| of_primary(s) && s.link_up) {
        return Err(Refusal::StillLinked(linked.name.clone()));
    }
    let candidates: Vec<&Seen> = read
        .iter()
        .copied()
        .filter(|s| of_primary(s) && !s.replid.is_empty())
        .collect();
    if candidates.is_empty() {
        let mut why: Vec<String> = input
            .replicas
            .iter()
            .map(|r| match r {
                Replica::Unreadable { name, why } => format!("`{name}` cannot be read ({why})"),
                Replica::Read(s) if !s.replica => format!("`{}` is a primary itself", s.name),
                Replica::Read(s) => format!(
                    "`{}` replicates from {}",
                    s.name,
                    s.source
                        .as_ref()
                        .map_or("no one".into(), |(h, p)| format!("{h}:{p}"))
                ),
            })
            .collect();
        if why.is_empty() {
            why.push("none is configured".into());
        }
        return Err(Refusal::NoCandidate(why.join("; ")));
    }
    let mut ids: Vec<(String, String)> = candidates
        .iter()
        .map(|s| (s.name.clone(), s.replid.clone()))
        .collect();
    if ids.iter().any(|(_, id)| *id != ids[0].1) {
        ids.sort();
        return Err(Refusal::ReplidsDisagree(ids));
    }
    let replid = ids[0].1.clone();
    let best = candidates
        .iter()
        .max_by(|a, b| {
            a.offset
                .cmp(&b.offset)
                .then((a.name == input.preferred).cmp(&(b.name == input.preferred)))
                .then(b.name.cmp(&a.name))
        })
        .expect("candidates is not empty");
    // Every readable copy of that history: a replica linked elsewhere or
    // already promoted by hand keeps the id as `master_replid` or not at
    // all; only the same id counts.
    let newest = read
        .iter()
        .filter(|s| s.replid == replid)
        .map(|s| s.offset)
        .max()
        .unwrap_or(best.offset);
    if newest - best.offset > input.max_lag_bytes {
        return Err(Refusal::TooFarBehind {
            name: best.name.clone(),
            offset: best.offset,
            newest,
            limit: input.max_lag_bytes,
        });
    }
    let others = read
        .iter()
        .filter(|s| s.name != best.name)
        .map(|s| s.name.clone())
        .collect();
    Ok(Choice {
        name: best.name.clone(),
        replid,
        offset: best.offset,
        newest,
        others,
    })
}

/// Whether two host names are the same server's: equal, or both this
/// machine's loopback.
pub fn same_host(a: &str, b: &str) -> bool {
    let local = |h: &str| h == "localhost" || h == "127.0.0.1" || h == "::1";
    a.eq_ignore_ascii_case(b) || (local(a) && local(b))
}

#[cfg(test)]
#[path = "choose_tests.rs"]
mod tests;
