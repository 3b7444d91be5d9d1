//! What opens a leader's term under synchronous replication: its set,
//! written in the same etcd transaction as the leader key, and the
//! setting a standby takes before it promotes; and the standby's side of
//! the election (is it proven to hold every acknowledged commit?).

use super::{SyncSet, commits_skip_standbys, standby_names, unproven, written_by_agent};
use crate::cluster::dcs::Dcs;
use crate::cluster::etcd::{EtcdError, Op};
use crate::cluster::ha::Ha;
use crate::cluster::member::Member;
use crate::cluster::quiet::Level;
use crate::cluster::server::Server;
use crate::events::Decision;

impl<D: Dcs, S: Server> Ha<D, S> {
    /// The leader named in the last read `sync` key, if any.
    pub(in crate::cluster) fn sync_leader(&self) -> Option<String> {
        let key = self.sync_key.as_ref()?;
        key.set.as_ref().ok().map(|set| set.leader.clone())
    }

    /// Under the last read `sync` key (any term's), why `me` may not take
    /// over, or `None`; no key: the asynchronous rule alone applies.
    pub(in crate::cluster) fn sync_unproven(
        &self,
        me: &Member,
        members: &[Member],
    ) -> Option<String> {
        let key = self.sync_key.as_ref()?;
        match &key.set {
            Ok(set) => unproven(set, key.revision, me, members),
            Err(e) => Some(format!(
                "synchronous: the `sync` key is unreadable ({e}); nobody can be proven to hold every acknowledged commit"
            )),
        }
    }

    /// The transaction operation that opens a term along with the leader
    /// key: the new set (this member and the standbys in `members`) with
    /// `synchronous = true`, else the removal of an earlier term's set.
    pub(in crate::cluster) fn opening_sync(&self, members: &[Member]) -> Op {
        let spec = &self.local.spec();
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
    /// `timeline`: the term's timeline and switch point, written with it.
    pub(in crate::cluster) async fn create_leader_key(
        &self,
        lease: i64,
        members: &[Member],
        timeline: Option<crate::cluster::member::LeaderTimeline>,
    ) -> Result<bool, EtcdError> {
        let mut ops = vec![
            Op::Put {
                key: self.keys.leader.clone(),
                value: self.local.spec().name.clone(),
                lease,
            },
            self.opening_sync(members),
        ];
        if let Some(timeline) = timeline {
            ops.push(Op::Put {
                key: self.keys.timeline.clone(),
                value: timeline.text(),
                lease: 0,
            });
        }
        // The term this election was decided on is still the last one.
        let read = (self.keys.timeline.as_str(), self.timeline_read.as_deref());
        self.etcd
            .txn(&[(&self.keys.leader, None), read], &ops)
            .await
    }

    /// Before promoting: make the standbys of `members` synchronous in
    /// the local server's configuration (applied on promotion), so that
    /// its first commit already waits for them; with synchronous
    /// replication off, clear a setting the agent wrote in an earlier term.
    /// `Err` (why) under `synchronous = true` when the settings could not
    /// be read or written: a promotion then would acknowledge commits no
    /// standby holds, so the caller does not promote.
    pub(in crate::cluster) async fn prepare_synchronous(
        &mut self,
        members: &[Member],
    ) -> Result<(), String> {
        let spec = self.local.spec().clone();
        let names = if spec.synchronous {
            standby_names(spec.synchronous_node_count, &self.standbys(members))
        } else {
            let names = self
                .while_leading(
                    |server| async move { server.setting("synchronous_standby_names").await },
                )
                .await;
            match names {
                Ok(names) if written_by_agent(&names) => String::new(),
                _ => return Ok(()),
            }
        };
        let set = self
            .while_leading(|server| async move {
                server
                    .alter_system("synchronous_standby_names", &names)
                    .await
            })
            .await;
        if let Err(e) = set {
            let why = format!("cannot set synchronous_standby_names before promoting: {e}");
            tracing::warn!("cluster: {why}");
            if spec.synchronous {
                return Err(why);
            }
        }
        if spec.synchronous {
            let commit = self
                .while_leading(|server| async move { server.setting("synchronous_commit").await })
                .await
                .map_err(|e| format!("cannot read synchronous_commit before promoting: {e}"))?;
            if commits_skip_standbys(&commit) {
                self.raise_synchronous_commit().await?;
            }
        }
        Ok(())
    }

    /// `synchronous_commit` is `off` or `local`: commits would not wait for
    /// the standbys at all. Set it to `on`, and say so; `Err` if it cannot.
    pub(super) async fn raise_synchronous_commit(&mut self) -> Result<(), String> {
        let set = self
            .while_leading(
                |server| async move { server.alter_system("synchronous_commit", "on").await },
            )
            .await;
        self.faults
            .lock()
            .outcome(Level::Warn, "set synchronous_commit = on", &set);
        match set {
            Ok(()) => {
                self.record(
                    Decision::Synchronous,
                    "synchronous_commit was off or local, so commits did not wait for the synchronous standbys: set it to on (ALTER SYSTEM)".into(),
                );
                Ok(())
            }
            Err(e) => Err(format!("cannot set synchronous_commit = on: {e}")),
        }
    }

    /// The other live members that run as standbys and may be promoted
    /// (Patroni leaves `nofailover` members out of the synchronous set:
    /// one holding the most WAL would stop every election).
    pub(super) fn standbys(&self, members: &[Member]) -> Vec<String> {
        members
            .iter()
            .filter(|m| m.name != self.local.spec().name && m.role == "standby" && !m.nofailover)
            .map(|m| m.name.clone())
            .collect()
    }
}
