//! Quorum synchronous replication kept by the leader (`[cluster]
//! synchronous = true`), after Patroni's synchronous mode (strict) and
//! pg_auto_failover's `number_sync_standbys`: the leader sets PostgreSQL's
//! `synchronous_standby_names = 'ANY k ("node2", "node3")'`, so that a
//! commit is acknowledged only once `k` (= `synchronous_node_count`)
//! standbys have flushed it, and a primary cut off from its standbys
//! acknowledges nothing (the only exception: a leader that has never had
//! a standby commits alone, and then nobody else can be promoted).
//!
//! The key `/watchpost/SCOPE/sync` holds a [`SyncSet`]: members among which
//! every acknowledged commit is on at least `quorum` (the leader named in
//! it counts as holding everything; a set naming its leader has quorum 1).
//! The leader keeps that true by the order of its writes (Patroni's rule):
//!
//! - a term starts with the set written in the same transaction as the
//!   leader key, naming the new leader itself and the standbys;
//! - a member is added in etcd first, then in PostgreSQL;
//! - a member is removed (or the quorum raised) in PostgreSQL first; etcd
//!   follows once every WAL sender runs with the new setting and `quorum`
//!   of the new set have flushed past the WAL position taken then.
//!
//! The election ([`unproven`]): with `n` members in the set, a standby
//! takes over only when it has seen the final position of `n - quorum + 1`
//! of them (each read after the leader key was gone, by a standby that had
//! read to the end of its own `pg_wal`) and has received at least as much
//! as every one: any `n - quorum + 1` of them include one of the `quorum`
//! that flushed each acknowledged commit. Otherwise nobody is promoted,
//! and no acknowledged write is lost.
//!
//! Here the set and the pure rules; `term` what opens a term (the set
//! with the leader key, the setting before a promotion) and the election
//! check; `keep` the leader's steps while it leads.

mod keep;
mod term;

use super::etcd::Kv;
use super::local::Observation;
use super::member::Member;
use serde::{Deserialize, Serialize};

/// The synchronous set of one leader's term (the `sync` key's value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSet {
    /// The leader whose commits it covers.
    pub leader: String,
    /// Every acknowledged commit is flushed on at least this many members.
    pub quorum: u32,
    /// Member names, sorted; may include the leader itself.
    pub members: Vec<String>,
}

impl SyncSet {
    /// The set of `leader`'s term over `members` (sorted here): with the
    /// leader in it, quorum 1 (the leader alone may hold a commit: one
    /// acknowledged before any standby was synchronous), else `quorum`.
    pub fn new(leader: &str, quorum: u32, mut members: Vec<String>) -> SyncSet {
        members.sort();
        members.dedup();
        let quorum = if members.iter().any(|m| m == leader) {
            1
        } else {
            quorum
        };
        SyncSet {
            leader: leader.to_string(),
            quorum,
            members,
        }
    }
}

/// The revision to publish as [`Member::leaderless`]: the last read's
/// (`leaderless`) only for a standby that has read to the end of its own
/// `pg_wal` since it started, whose position is then final.
pub fn settled(seen: &Observation, leaderless: Option<i64>) -> Option<i64> {
    leaderless.filter(|_| seen.in_recovery && seen.wal_end_read)
}

/// Whether `synchronous_commit` = `commit` makes commits skip waiting for
/// standbys (`off`, `local`), which makes `synchronous_standby_names` moot.
pub fn commits_skip_standbys(commit: &str) -> bool {
    matches!(commit, "off" | "local")
}

/// Whether `names` is a `synchronous_standby_names` the agent writes
/// ([`standby_names`]): cleared when synchronous replication is off.
pub fn written_by_agent(names: &str) -> bool {
    names.starts_with("ANY ") && names.contains(" (\"") && names.ends_with("\")")
}

/// The `sync` key as read, parsed once per read.
#[derive(Clone, Debug)]
pub struct SyncKey {
    /// Its text, compared in the leader's transactions (nobody changed it).
    pub raw: String,
    /// Its etcd `mod_revision`: the election's reference.
    pub revision: i64,
    /// The set, or why the text is not one.
    pub set: Result<SyncSet, String>,
}

impl SyncKey {
    pub fn read(kv: &Kv) -> SyncKey {
        SyncKey {
            raw: kv.value.clone(),
            revision: kv.revision,
            set: serde_json::from_str(&kv.value).map_err(|e| e.to_string()),
        }
    }
}

/// `synchronous_standby_names` for `names` with quorum `quorum`: PostgreSQL's
/// quorum syntax (`ANY k (...)`, PostgreSQL 10+), names double-quoted;
/// empty (asynchronous) for no names.
pub fn standby_names(quorum: u32, names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let list: Vec<String> = names
        .iter()
        .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
        .collect();
    format!("ANY {quorum} ({})", list.join(", "))
}

/// The standbys the leader makes synchronous: those streaming from it,
/// and, while fewer than `quorum` do, the ones `known` before (in order),
/// so that commits wait for them rather than go unprotected.
pub fn choose(streaming: &[String], known: &[String], quorum: u32) -> Vec<String> {
    let mut names: Vec<String> = streaming.to_vec();
    for name in known {
        if names.len() >= quorum as usize {
            break;
        }
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Why `me` may not take over under `set` (written at etcd revision
/// `set_revision`), or `None` when it holds every acknowledged commit.
/// Only positions read after the leader key was gone count (a member's
/// `leaderless` revision above `set_revision`: the set's leader still
/// held its key when it wrote the set).
pub fn unproven(
    set: &SyncSet,
    set_revision: i64,
    me: &Member,
    members: &[Member],
) -> Option<String> {
    let settled = |m: &Member| {
        m.role == "standby" && m.lsn.is_some() && m.leaderless.is_some_and(|r| r > set_revision)
    };
    if !settled(me) {
        return Some(
            "synchronous: this standby's position is not final yet (it has not read its own pg_wal to the end since it started: replay in progress, or held back by recovery_min_apply_delay)"
                .into(),
        );
    }
    let need = (set.members.len() + 1)
        .saturating_sub(set.quorum as usize)
        .max(1);
    let seen: Vec<&Member> = set
        .members
        .iter()
        .filter_map(|name| {
            if *name == me.name {
                Some(me)
            } else {
                members.iter().find(|m| m.name == *name && settled(m))
            }
        })
        .collect();
    if seen.len() < need {
        let names: Vec<&str> = seen.iter().map(|m| m.name.as_str()).collect();
        return Some(format!(
            "synchronous: every acknowledged commit is on {} of [{}]; only [{}] reported a final position, and {need} must (nobody can be proven to hold every acknowledged commit)",
            set.quorum,
            set.members.join(", "),
            names.join(", ")
        ));
    }
    let mine = me.lsn.unwrap_or(0);
    seen.iter().find(|m| m.lsn.unwrap_or(0) > mine).map(|m| {
        format!(
            "synchronous: `{}` received more ({} vs {mine} bytes)",
            m.name,
            m.lsn.unwrap_or(0)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::settled;
    use super::*;

    fn set(members: &[&str], quorum: u32) -> SyncSet {
        SyncSet {
            leader: "n1".into(),
            quorum,
            members: members.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn final_at(name: &str, lsn: u64, at: i64) -> Member {
        Member {
            name: name.into(),
            role: "standby".into(),
            healthy: true,
            lsn: Some(lsn),
            leaderless: Some(at),
            ..Member::default()
        }
    }

    #[test]
    fn a_set_naming_its_leader_has_quorum_one() {
        // Commits acknowledged before a standby was synchronous may be on
        // the leader alone: with quorum 2, one standby would "prove" them.
        let set = SyncSet::new("n1", 2, vec!["n2".into(), "n1".into()]);
        assert_eq!(
            (set.quorum, set.members.clone()),
            (1, vec!["n1".into(), "n2".into()])
        );
        let standby = final_at("n2", 100, 10);
        assert!(unproven(&set, 5, &standby, &[]).is_some());
        assert_eq!(
            SyncSet::new("n1", 2, vec!["n2".into(), "n3".into()]).quorum,
            2
        );
    }

    #[test]
    fn a_standby_that_has_not_read_its_own_wal_to_the_end_has_no_final_position() {
        // Restarted with no upstream: replay of its own pg_wal runs (or
        // waits for recovery_min_apply_delay) behind the WAL it holds.
        let mut seen = Observation {
            server: crate::pgserver::postmaster::Postmaster::Running(1),
            answering: true,
            in_recovery: true,
            lsn: Some(100),
            ..Observation::default()
        };
        assert_eq!(settled(&seen, Some(7)), None);
        seen.wal_end_read = true;
        assert_eq!(settled(&seen, Some(7)), Some(7));
        assert_eq!(settled(&seen, None), None);
        seen.in_recovery = false;
        assert_eq!(settled(&seen, Some(7)), None);
    }

    #[test]
    fn only_the_agents_own_setting_is_cleared() {
        assert!(written_by_agent(&standby_names(
            1,
            &["a".into(), "b".into()]
        )));
        assert!(!written_by_agent("FIRST 1 (a, b)"));
        assert!(!written_by_agent("*"));
        assert!(!written_by_agent(""));
    }

    #[test]
    fn names_use_the_quorum_syntax() {
        assert_eq!(
            standby_names(1, &["node2".into(), "node3".into()]),
            "ANY 1 (\"node2\", \"node3\")"
        );
        assert_eq!(standby_names(1, &[]), "");
    }

    #[test]
    fn missing_standbys_are_kept_until_the_quorum_streams() {
        let known = ["b".to_string(), "c".to_string()];
        assert_eq!(choose(&["c".into()], &known, 1), vec!["c"]);
        assert_eq!(choose(&[], &known, 1), vec!["b"]);
        assert_eq!(choose(&["c".into()], &known, 2), vec!["b", "c"]);
        assert!(choose(&[], &[], 1).is_empty());
    }

    #[test]
    fn the_most_advanced_of_enough_members_is_proven() {
        let s = set(&["n2", "n3"], 1);
        let (a, b) = (final_at("n2", 100, 10), final_at("n3", 90, 11));
        assert_eq!(unproven(&s, 5, &a, &[a.clone(), b.clone()]), None);
        let why = unproven(&s, 5, &b, &[a.clone(), b.clone()]).unwrap();
        assert!(why.contains("`n2` received more"), "{why}");
    }

    #[test]
    fn one_of_two_synchronous_standbys_alone_proves_nothing() {
        // The other may hold commits this one never received.
        let s = set(&["n2", "n3"], 1);
        let a = final_at("n2", 100, 10);
        let why = unproven(&s, 5, &a, std::slice::from_ref(&a)).unwrap();
        assert!(why.contains("2 must"), "{why}");
        // With quorum 2 every commit is on both: one suffices.
        assert_eq!(unproven(&set(&["n2", "n3"], 2), 5, &a, &[]), None);
    }

    #[test]
    fn positions_from_before_the_leader_went_do_not_count() {
        let s = set(&["n2", "n3"], 1);
        let a = final_at("n2", 100, 10);
        let stale = final_at("n3", 50, 4);
        assert!(unproven(&s, 5, &a, &[stale]).is_some());
        let mut unsettled = a.clone();
        unsettled.leaderless = None;
        assert!(unproven(&s, 5, &unsettled, &[final_at("n3", 50, 9)]).is_some());
    }

    #[test]
    fn a_set_still_naming_the_old_leader_needs_every_standby() {
        // The term began with the leader in its own set: until the leader
        // narrowed it, commits may be on the leader alone, which reports
        // no position once gone: nobody is proven.
        let s = set(&["n1", "n2", "n3"], 1);
        let (a, b) = (final_at("n2", 100, 10), final_at("n3", 100, 10));
        assert!(unproven(&s, 5, &a, &[a.clone(), b.clone()]).is_some());
    }
}
