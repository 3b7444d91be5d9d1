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

use super::etcd::{EtcdError, Op};
use super::ha::Ha;
use super::local::Observation;
use super::member::Member;
use crate::events::Decision;
use serde::{Deserialize, Serialize};
use std::time::Duration;

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

/// Whether `names` is a `synchronous_standby_names` the agent writes
/// ([`standby_names`]): cleared when synchronous replication is off.
pub fn written_by_agent(names: &str) -> bool {
    names.starts_with("ANY ") && names.contains(" (\"") && names.ends_with("\")")
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
            "synchronous: waiting for a look at the local server taken after the leader key went"
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

/// What the leader's server says of its synchronous replication (one
/// statement: [`REPLICATION`]).
struct Replication {
    /// `synchronous_standby_names` in force in the agent's session.
    names: String,
    /// `synchronous_commit` (the server's, unless the agent's role has its own).
    commit: String,
    /// `pg_current_wal_lsn()`, bytes from 0/0.
    lsn: u64,
    /// Each streaming standby: its `application_name`, flushed position
    /// (bytes) and whether its WAL sender counts it as a synchronous
    /// candidate (`sync_priority` > 0, from the sender's own reading of
    /// the setting: a sender that has not reloaded yet still shows the
    /// old one).
    streaming: Vec<(String, u64, bool)>,
}

const REPLICATION: &str = "SELECT current_setting('synchronous_standby_names') AS names,
    current_setting('synchronous_commit') AS commit,
    pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS lsn,
    COALESCE((SELECT json_agg(json_build_array(application_name,
        pg_wal_lsn_diff(flush_lsn, '0/0')::float8, sync_priority > 0))::text
      FROM pg_stat_replication WHERE state = 'streaming' AND flush_lsn IS NOT NULL), '[]') AS streaming";

impl Ha {
    /// The leader named in the last read `sync` key, if any.
    pub(super) fn sync_leader(&self) -> Option<String> {
        let kv = self.sync_key.as_ref()?;
        serde_json::from_str::<SyncSet>(&kv.value)
            .ok()
            .map(|set| set.leader)
    }

    /// Under the last read `sync` key (any term's), why `me` may not take
    /// over, or `None`; no key: the asynchronous rule alone applies.
    pub(super) fn sync_unproven(&self, me: &Member, members: &[Member]) -> Option<String> {
        let kv = self.sync_key.as_ref()?;
        match serde_json::from_str::<SyncSet>(&kv.value) {
            Ok(set) => unproven(&set, kv.revision, me, members),
            Err(e) => Some(format!(
                "synchronous: the `sync` key is unreadable ({e}); nobody can be proven to hold every acknowledged commit"
            )),
        }
    }

    /// The transaction operation that opens a term along with the leader
    /// key: the new set (this member and the standbys in `members`) with
    /// `synchronous = true`, else the removal of an earlier term's set.
    pub(super) fn opening_sync(&self, members: &[Member]) -> Op {
        let spec = &self.local.spec;
        if !spec.synchronous {
            return Op::Delete {
                key: self.keys.sync.clone(),
            };
        }
        let mut names = vec![spec.name.clone()];
        names.extend(self.standbys(members));
        let set = SyncSet::new(&spec.name, spec.synchronous_node_count, names);
        Op::Put {
            key: self.keys.sync.clone(),
            value: serde_json::to_string(&set).unwrap_or_default(),
            lease: 0,
        }
    }

    /// Take the free leader key under `lease` with the term's set, in one
    /// transaction: whether this call took it.
    pub(super) async fn create_leader_key(
        &self,
        lease: i64,
        members: &[Member],
    ) -> Result<bool, EtcdError> {
        let ops = [
            Op::Put {
                key: self.keys.leader.clone(),
                value: self.local.spec.name.clone(),
                lease,
            },
            self.opening_sync(members),
        ];
        self.etcd.txn(&[(&self.keys.leader, None)], &ops).await
    }

    /// Before promoting: make the standbys of `members` synchronous in
    /// the local server's configuration (applied on promotion), so that
    /// its first commit already waits for them; with synchronous
    /// replication off, clear a setting the agent wrote in an earlier term.
    pub(super) async fn prepare_synchronous(&self, members: &[Member]) {
        let spec = &self.local.spec;
        let names = if spec.synchronous {
            standby_names(spec.synchronous_node_count, &self.standbys(members))
        } else {
            match self.local.standby_names().await {
                Ok(names) if written_by_agent(&names) => String::new(),
                _ => return,
            }
        };
        if let Err(e) = self.local.set_standby_names(&names).await {
            tracing::warn!("cluster: cannot set synchronous_standby_names before promoting: {e}");
        }
        if spec.synchronous
            && self
                .local
                .synchronous_commit_is_local()
                .await
                .unwrap_or(false)
        {
            self.raise_synchronous_commit().await;
        }
    }

    /// `synchronous_commit` is `off` or `local`: commits would not wait for
    /// the standbys at all. Set it to `on`, and say so.
    async fn raise_synchronous_commit(&self) {
        match self.local.set_synchronous_commit_on().await {
            Ok(()) => self.record(
                Decision::Synchronous,
                "synchronous_commit was off or local, so commits did not wait for the synchronous standbys: set it to on (ALTER SYSTEM)".into(),
            ),
            Err(e) => tracing::warn!("cluster: cannot set synchronous_commit = on: {e}"),
        }
    }

    /// The other live members that run as standbys and may be promoted
    /// (Patroni leaves `nofailover` members out of the synchronous set:
    /// one holding the most WAL would stop every election).
    fn standbys(&self, members: &[Member]) -> Vec<String> {
        members
            .iter()
            .filter(|m| m.name != self.local.spec.name && m.role == "standby" && !m.nofailover)
            .map(|m| m.name.clone())
            .collect()
    }

    /// As the leader with a primary: one step towards the synchronous
    /// standbys `members` call for (see the module's order of writes).
    pub(super) async fn keep_synchronous(&mut self, members: &[Member]) {
        let synchronous = self.local.spec.synchronous;
        let raw = self.sync_key.as_ref().map(|kv| kv.value.clone());
        let pg = match self.replication().await {
            Ok(pg) => pg,
            Err(e) => {
                tracing::warn!(
                    "cluster: cannot read synchronous replication (pg_stat_replication, synchronous_standby_names): {e}"
                );
                return;
            }
        };
        if !synchronous {
            self.turn_off(raw, &pg).await;
            return;
        }
        if matches!(pg.commit.as_str(), "off" | "local") {
            self.raise_synchronous_commit().await;
            return;
        }
        let me = self.local.spec.name.clone();
        let current = raw
            .as_deref()
            .and_then(|v| serde_json::from_str::<SyncSet>(v).ok())
            .filter(|set| set.leader == me);
        let Some(current) = current else {
            self.open_set(raw.as_deref(), &pg).await;
            return;
        };
        let target = self.target(&current, &pg, members);
        let wanted = standby_names(self.local.spec.synchronous_node_count, &target);
        if pg.names != wanted {
            self.grow(raw.as_deref(), &current, &target, &wanted).await;
        } else {
            self.narrow(raw.as_deref(), &current, &target, &pg).await;
        }
    }

    /// Synchronous replication is off: asynchronous in PostgreSQL first
    /// (a setting the agent wrote), then the set goes.
    async fn turn_off(&mut self, raw: Option<String>, pg: &Replication) {
        if written_by_agent(&pg.names) {
            self.apply_names("", "synchronous replication is off").await;
        } else if let Some(raw) = raw
            && self.write_set(Some(&raw), None).await
        {
            self.record(
                Decision::Synchronous,
                "synchronous replication is off: removed the synchronous set".into(),
            );
        }
    }

    /// Leading without this term's set (synchronous turned on, or the set
    /// was lost): this node holds everything so far, the standbys
    /// streaming may too.
    async fn open_set(&mut self, raw: Option<&str>, pg: &Replication) {
        let spec = self.local.spec.clone();
        let mut names = vec![spec.name.clone()];
        names.extend(pg.streaming.iter().map(|(n, _, _)| n.clone()));
        let set = SyncSet::new(&spec.name, spec.synchronous_node_count, names);
        if self.write_set(raw, Some(&set)).await {
            self.record(
                Decision::Synchronous,
                format!("opened the synchronous set [{}]", set.members.join(", ")),
            );
        }
    }

    /// The standbys to wait for: those streaming that are live members,
    /// padded ([`choose`]) with the set's and the live ones.
    fn target(&mut self, current: &SyncSet, pg: &Replication, members: &[Member]) -> Vec<String> {
        let quorum = self.local.spec.synchronous_node_count;
        let live = self.standbys(members);
        let streaming: Vec<String> = pg
            .streaming
            .iter()
            .map(|(n, _, _)| n.clone())
            .filter(|n| live.contains(n))
            .collect();
        let known: Vec<String> = current
            .members
            .iter()
            .filter(|n| **n != self.local.spec.name)
            .chain(live.iter())
            .cloned()
            .collect();
        let target = choose(&streaming, &known, quorum);
        let short = (target.len() < quorum as usize).then_some(target.len());
        if short.is_some() && short != self.sync_short {
            tracing::warn!(
                "cluster: synchronous_node_count = {quorum} but only {} standby(s) can be synchronous: commits wait until {quorum} stream",
                target.len()
            );
        }
        self.sync_short = short;
        target
    }

    /// PostgreSQL must wait for `target` (`wanted`): the set in etcd
    /// widened first, then the setting.
    async fn grow(
        &mut self,
        raw: Option<&str>,
        current: &SyncSet,
        target: &[String],
        wanted: &str,
    ) {
        self.shrink_mark = None;
        let mut grown = current.members.clone();
        grown.extend(target.iter().cloned());
        let quorum = self.local.spec.synchronous_node_count.min(current.quorum);
        let widened = SyncSet::new(&current.leader, quorum, grown);
        if widened != *current && !self.write_set(raw, Some(&widened)).await {
            return;
        }
        self.apply_names(wanted, "the standbys streaming changed")
            .await;
    }

    /// PostgreSQL already waits for `target` alone: etcd follows once every
    /// WAL sender applies the setting and `quorum` of `target` flushed past
    /// a position taken then.
    async fn narrow(
        &mut self,
        raw: Option<&str>,
        current: &SyncSet,
        target: &[String],
        pg: &Replication,
    ) {
        let quorum = self.local.spec.synchronous_node_count;
        let narrowed = SyncSet::new(&current.leader, quorum, target.to_vec());
        if narrowed == *current || target.len() < quorum as usize {
            self.shrink_mark = None;
            return;
        }
        let mark = match &self.shrink_mark {
            Some((names, lsn)) if names == target => *lsn,
            _ => {
                let applied = pg
                    .streaming
                    .iter()
                    .all(|(n, _, candidate)| *candidate == target.contains(n));
                if applied {
                    self.shrink_mark = Some((target.to_vec(), pg.lsn));
                }
                return;
            }
        };
        let flushed = pg
            .streaming
            .iter()
            .filter(|(n, at, _)| target.contains(n) && *at >= mark)
            .count();
        if flushed < quorum as usize {
            return;
        }
        if self.write_set(raw, Some(&narrowed)).await {
            self.shrink_mark = None;
            self.record(
                Decision::Synchronous,
                format!(
                    "synchronous set narrowed to [{}] (quorum {}): they hold every acknowledged commit",
                    narrowed.members.join(", "),
                    narrowed.quorum
                ),
            );
        }
    }

    async fn replication(&self) -> Result<Replication, String> {
        let rows = self.local.rows(REPLICATION, Duration::from_secs(2)).await?;
        let row = rows.first().ok_or("the statement returned no row")?;
        let streaming: Vec<(String, f64, bool)> =
            serde_json::from_str(&row.get::<_, String>("streaming")).map_err(|e| e.to_string())?;
        Ok(Replication {
            names: row.get("names"),
            commit: row.get("commit"),
            lsn: row.get::<_, f64>("lsn").max(0.0) as u64,
            streaming: streaming
                .into_iter()
                .map(|(n, at, candidate)| (n, at.max(0.0) as u64, candidate))
                .collect(),
        })
    }

    /// `synchronous_standby_names` = `names` on the local server, recorded.
    async fn apply_names(&mut self, names: &str, why: &str) {
        match self.local.set_standby_names(names).await {
            Ok(()) => self.record(
                Decision::Synchronous,
                format!("synchronous_standby_names = '{names}' ({why})"),
            ),
            Err(e) => tracing::warn!("cluster: cannot set synchronous_standby_names: {e}"),
        }
    }

    /// Replace the set `raw` (as read) with `set` (`None`: remove it),
    /// only while this member holds the leader key and nobody changed the
    /// set meanwhile: whether it was written.
    async fn write_set(&mut self, raw: Option<&str>, set: Option<&SyncSet>) -> bool {
        let name = self.local.spec.name.clone();
        let op = match set {
            Some(set) => Op::Put {
                key: self.keys.sync.clone(),
                value: serde_json::to_string(set).unwrap_or_default(),
                lease: 0,
            },
            None => Op::Delete {
                key: self.keys.sync.clone(),
            },
        };
        let when = [
            (self.keys.leader.as_str(), Some(name.as_str())),
            (self.keys.sync.as_str(), raw),
        ];
        match self.etcd.txn(&when, &[op]).await {
            Ok(true) => {
                // The next read shows it; until then act on nothing.
                self.sync_key = None;
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!("cluster: cannot write the synchronous set: {e}");
                false
            }
        }
    }
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
            running: true,
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
