//! The leader's side of synchronous replication, one step per loop:
//! read what its server says ([`crate::cluster::server::Server::replication`]), then open its set, widen
//! it (etcd first, then PostgreSQL) or narrow it (PostgreSQL first, then
//! etcd once the remaining standbys have flushed past a mark), or turn
//! synchronous replication off.

use super::{SyncSet, choose, commits_skip_standbys, standby_names, written_by_agent};
use crate::cluster::dcs::Dcs;
use crate::cluster::etcd::Op;
use crate::cluster::ha::Ha;
use crate::cluster::member::Member;
use crate::cluster::quiet::Level;
use crate::cluster::server::Replication;
use crate::cluster::server::Server;
use crate::events::Decision;

impl<D: Dcs, S: Server> Ha<D, S> {
    /// As the leader with a primary: one step towards the synchronous
    /// standbys `members` call for (see the module's order of writes).
    pub(in crate::cluster) async fn keep_synchronous(&mut self, members: &[Member]) {
        let synchronous = self.local.spec().synchronous;
        let key = self.sync_key.clone();
        if !synchronous && key.is_none() {
            return; // asynchronous, and nothing to undo
        }
        let raw = key.as_ref().map(|k| k.raw.clone());
        let pg = self
            .while_leading(|server| async move { server.replication().await })
            .await;
        self.faults.lock().outcome(
            Level::Warn,
            "read synchronous replication (pg_stat_replication, synchronous_standby_names)",
            &pg,
        );
        let Ok(pg) = pg else {
            return;
        };
        if !synchronous {
            self.turn_off(raw, &pg).await;
            return;
        }
        if commits_skip_standbys(&pg.commit) {
            let _ = self.raise_synchronous_commit().await;
            return;
        }
        let me = self.local.spec().name.clone();
        let current = key.and_then(|k| k.set.ok()).filter(|set| set.leader == me);
        let Some(current) = current else {
            self.open_set(raw.as_deref(), &pg).await;
            return;
        };
        let target = self.target(&current, &pg, members);
        let wanted = standby_names(self.local.spec().synchronous_node_count, &target);
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
        let spec = self.local.spec().clone();
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
        let quorum = self.local.spec().synchronous_node_count;
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
            .filter(|n| **n != self.local.spec().name)
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
        let quorum = self.local.spec().synchronous_node_count.min(current.quorum);
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
        let quorum = self.local.spec().synchronous_node_count;
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

    /// `synchronous_standby_names` = `names` on the local server, recorded.
    async fn apply_names(&mut self, names: &str, why: &str) {
        let set = self
            .while_leading(|server| async move {
                server
                    .alter_system("synchronous_standby_names", names)
                    .await
            })
            .await;
        self.faults
            .lock()
            .outcome(Level::Warn, "set synchronous_standby_names", &set);
        if set.is_ok() {
            self.record(
                Decision::Synchronous,
                format!("synchronous_standby_names = '{names}' ({why})"),
            );
        }
    }

    /// Replace the set `raw` (as read) with `set` (`None`: remove it),
    /// only while this member holds the leader key (under its lease) and
    /// nobody changed the set meanwhile: whether it was written.
    async fn write_set(&mut self, raw: Option<&str>, set: Option<&SyncSet>) -> bool {
        let name = self.local.spec().name.clone();
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
        // Held under this agent's lease, not only in its name.
        let Some(lease) = self.lease else {
            return false;
        };
        let written = self
            .etcd
            .txn_held(&when, (&self.keys.leader, lease), &[op])
            .await;
        self.faults
            .lock()
            .outcome(Level::Warn, "write the synchronous set", &written);
        match written {
            Ok(true) => {
                // The next read shows it; until then act on nothing.
                self.sync_key = None;
                true
            }
            Ok(false) | Err(_) => false,
        }
    }
}
