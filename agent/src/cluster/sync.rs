//! Quorum synchronous replication kept by the leader (`[cluster]
//! synchronous = true`), after Patroni's synchronous mode (strict) and
//! pg_auto_failover's `number_sync_standbys`: the leader sets PostgreSQL's
//! `synchronous_standby_names = 'ANY k ("node2", "node3")'`, so that a
//! commit is acknowledged only once `k` (= `synchronous_node_count`)
//! standbys have flushed it, and a cut-off primary acknowledges nothing.
//!
//! The key `/watchpost/SCOPE/sync` holds a [`SyncSet`]: members among which
//! every acknowledged commit is on at least `quorum` (the leader named in
//! it counts as holding everything). The leader keeps that true by the
//! order of its writes (Patroni's rule):
//!
//! - a term starts with the set written in the same transaction as the
//!   leader key, naming the new leader itself and the standbys;
//! - a member is added in etcd first, then in PostgreSQL;
//! - a member is removed (or the quorum raised) in PostgreSQL first; etcd
//!   follows once `quorum` of the new set have flushed past the WAL
//!   position taken after the change was in force.
//!
//! The election ([`unproven`]): with `n` members in the set, a standby
//! takes over only when it has seen the final position of `n - quorum + 1`
//! of them (each read after the leader key was gone) and has received at
//! least as much as every one: any `n - quorum + 1` of them include one of
//! the `quorum` that flushed each acknowledged commit. Otherwise nobody is
//! promoted, and no acknowledged write is lost.

use super::etcd::{EtcdError, Op};
use super::ha::Ha;
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

/// `synchronous_standby_names` for `names` with quorum `quorum`: PostgreSQL's
/// quorum syntax (`ANY k (...)`, PostgreSQL 10+), names double-quoted;
/// empty (asynchronous) for no names.
pub fn standby_names(quorum: u32, names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
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

/// What the leader's server says of its synchronous replication.
struct Replication {
    /// `synchronous_standby_names` in force.
    names: String,
    /// `synchronous_commit` (the server's, unless the agent's role has its own).
    commit: String,
    /// `pg_current_wal_lsn()`, bytes.
    lsn: u64,
    /// (application_name, flushed bytes) of each streaming standby.
    streaming: Vec<(String, u64)>,
}

const REPLICATION: &str = "SELECT current_setting('synchronous_standby_names') AS names,
    current_setting('synchronous_commit') AS commit,
    pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS lsn,
    COALESCE((SELECT json_agg(json_build_array(application_name,
        pg_wal_lsn_diff(flush_lsn, '0/0')::float8))::text
      FROM pg_stat_replication WHERE state = 'streaming' AND flush_lsn IS NOT NULL), '[]') AS streaming";

impl Ha {
    /// Under the last read `sync` key (any term's), why `me` may not take
    /// over, or `None`; no key: the asynchronous rule alone applies.
    pub(super) fn sync_unproven(&self, me: &Member, members: &[Member]) -> Option<String> {
        let kv = self.sync_key.as_ref()?;
        match serde_json::from_str::<SyncSet>(&kv.value) {
            Ok(set) => unproven(&set, kv.revision, me, members),
            Err(e) => Some(format!("synchronous: the `sync` key is unreadable ({e})")),
        }
    }

    /// The transaction operations that open a term along with the leader
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
        names.sort();
        let set = SyncSet {
            leader: spec.name.clone(),
            quorum: spec.synchronous_node_count,
            members: names,
        };
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
    /// its first commit already waits for them.
    pub(super) async fn prepare_synchronous(&self, members: &[Member]) {
        let spec = &self.local.spec;
        if !spec.synchronous {
            return;
        }
        let names = standby_names(spec.synchronous_node_count, &self.standbys(members));
        if let Err(e) = self.local.set_standby_names(&names).await {
            tracing::warn!("cluster: cannot set synchronous_standby_names before promoting: {e}");
        }
        if self.local.commits_skip_standbys().await.unwrap_or(false) {
            self.raise_synchronous_commit().await;
        }
    }

    /// `synchronous_commit` is `off` or `local`: commits would not wait for
    /// the standbys at all. Set it to `on`, and say so.
    async fn raise_synchronous_commit(&self) {
        match self.local.wait_for_standbys_on_commit().await {
            Ok(()) => self.record(
                Decision::Synchronous,
                "synchronous_commit was off or local, so commits did not wait for the synchronous standbys: set it to on (ALTER SYSTEM)".into(),
            ),
            Err(e) => tracing::warn!("cluster: cannot set synchronous_commit = on: {e}"),
        }
    }

    /// The other live members that run as standbys.
    fn standbys(&self, members: &[Member]) -> Vec<String> {
        members
            .iter()
            .filter(|m| m.name != self.local.spec.name && m.role == "standby")
            .map(|m| m.name.clone())
            .collect()
    }

    /// As the leader with a primary: one step towards the synchronous
    /// standbys `members` call for (see the module's order of writes).
    pub(super) async fn keep_synchronous(&mut self, members: &[Member]) {
        let spec = self.local.spec.clone();
        let raw = self.sync_key.as_ref().map(|kv| kv.value.clone());
        let current = raw
            .as_deref()
            .and_then(|v| serde_json::from_str::<SyncSet>(v).ok())
            .filter(|set| set.leader == spec.name);
        if !spec.synchronous && raw.is_none() {
            return;
        }
        let Ok(pg) = self.replication().await else {
            return;
        };
        if !spec.synchronous {
            // Turned off: asynchronous in PostgreSQL first, then the set.
            if !pg.names.is_empty() && current.is_some() {
                self.apply_names("", "synchronous replication turned off")
                    .await;
            } else if let Some(raw) = raw
                && self.write_set(Some(&raw), None).await
            {
                self.record(
                    Decision::Synchronous,
                    "synchronous replication is off: removed the synchronous set".into(),
                );
            }
            return;
        }
        if matches!(pg.commit.as_str(), "off" | "local") {
            self.raise_synchronous_commit().await;
            return;
        }
        let quorum = spec.synchronous_node_count;
        let Some(current) = current else {
            // Leading without this term's set (synchronous turned on, or
            // the set was lost): this node holds everything, so far.
            let mut names = vec![spec.name.clone()];
            names.extend(pg.streaming.iter().map(|(n, _)| n.clone()));
            names.sort();
            names.dedup();
            let set = SyncSet {
                leader: spec.name.clone(),
                quorum,
                members: names,
            };
            if self.write_set(raw.as_deref(), Some(&set)).await {
                self.record(
                    Decision::Synchronous,
                    format!("opened the synchronous set [{}]", set.members.join(", ")),
                );
            }
            return;
        };
        let live = self.standbys(members);
        let mut streaming: Vec<String> = pg
            .streaming
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| live.contains(n))
            .collect();
        streaming.sort();
        streaming.dedup();
        let known: Vec<String> = current
            .members
            .iter()
            .filter(|n| **n != spec.name)
            .chain(live.iter())
            .cloned()
            .collect();
        let target = choose(&streaming, &known, quorum);
        let wanted = standby_names(quorum, &target);
        if pg.names != wanted {
            self.shrink_mark = None;
            let mut grown = current.members.clone();
            grown.extend(target.iter().cloned());
            grown.sort();
            grown.dedup();
            let widened = SyncSet {
                leader: spec.name.clone(),
                quorum: quorum.min(current.quorum),
                members: grown,
            };
            if widened != current && !self.write_set(raw.as_deref(), Some(&widened)).await {
                return;
            }
            self.apply_names(&wanted, "the standbys streaming changed")
                .await;
            return;
        }
        let narrowed = SyncSet {
            leader: spec.name.clone(),
            quorum,
            members: target.clone(),
        };
        if narrowed == current {
            self.shrink_mark = None;
            return;
        }
        // PostgreSQL already waits for `target`: etcd follows once
        // `quorum` of them flushed past a position taken after that.
        let mark = match &self.shrink_mark {
            Some((names, lsn)) if *names == target => *lsn,
            _ => {
                self.shrink_mark = Some((target, pg.lsn));
                return;
            }
        };
        let flushed = pg
            .streaming
            .iter()
            .filter(|(n, at)| target.contains(n) && *at >= mark)
            .count();
        if target.is_empty() || flushed < quorum as usize {
            return;
        }
        if self.write_set(raw.as_deref(), Some(&narrowed)).await {
            self.shrink_mark = None;
            self.record(
                Decision::Synchronous,
                format!(
                    "synchronous set narrowed to [{}] (quorum {quorum}): they hold every acknowledged commit",
                    narrowed.members.join(", ")
                ),
            );
        }
    }

    async fn replication(&self) -> Result<Replication, String> {
        let rows = self.local.rows(REPLICATION, Duration::from_secs(2)).await?;
        let row = rows.first().ok_or("no row")?;
        let streaming: Vec<(String, f64)> =
            serde_json::from_str(&row.get::<_, String>("streaming")).map_err(|e| e.to_string())?;
        Ok(Replication {
            names: row.get("names"),
            commit: row.get("commit"),
            lsn: row.get::<_, f64>("lsn").max(0.0) as u64,
            streaming: streaming
                .into_iter()
                .map(|(n, at)| (n, at.max(0.0) as u64))
                .collect(),
        })
    }

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
                // The next read shows it; until then act on what was written.
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
    use super::*;

    fn set(members: &[&str], quorum: u32) -> SyncSet {
        SyncSet {
            leader: "n1".into(),
            quorum,
            members: members.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn settled(name: &str, lsn: u64, at: i64) -> Member {
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
        let (a, b) = (settled("n2", 100, 10), settled("n3", 90, 11));
        assert_eq!(unproven(&s, 5, &a, &[a.clone(), b.clone()]), None);
        let why = unproven(&s, 5, &b, &[a.clone(), b.clone()]).unwrap();
        assert!(why.contains("`n2` received more"), "{why}");
    }

    #[test]
    fn one_of_two_synchronous_standbys_alone_proves_nothing() {
        // The other may hold commits this one never received.
        let s = set(&["n2", "n3"], 1);
        let a = settled("n2", 100, 10);
        let why = unproven(&s, 5, &a, std::slice::from_ref(&a)).unwrap();
        assert!(why.contains("2 must"), "{why}");
        // With quorum 2 every commit is on both: one suffices.
        assert_eq!(unproven(&set(&["n2", "n3"], 2), 5, &a, &[]), None);
    }

    #[test]
    fn positions_from_before_the_leader_went_do_not_count() {
        let s = set(&["n2", "n3"], 1);
        let a = settled("n2", 100, 10);
        let stale = settled("n3", 50, 4);
        assert!(unproven(&s, 5, &a, &[stale]).is_some());
        let mut unsettled = a.clone();
        unsettled.leaderless = None;
        assert!(unproven(&s, 5, &unsettled, &[settled("n3", 50, 9)]).is_some());
    }

    #[test]
    fn a_set_still_naming_the_old_leader_needs_every_standby() {
        // The term began with the leader in its own set: until the leader
        // narrowed it, commits may be on the leader alone, which reports
        // no position once gone: nobody is proven.
        let s = set(&["n1", "n2", "n3"], 1);
        let (a, b) = (settled("n2", 100, 10), settled("n3", 100, 10));
        assert!(unproven(&s, 5, &a, &[a.clone(), b.clone()]).is_some());
    }
}
