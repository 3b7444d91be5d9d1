//! A term this node took the leader key for and has not opened yet (its
//! server not promoted): the `timeline` key it replaced, the one it wrote,
//! and whether the promotion was asked. Kept in memory and, before each
//! step that could open the term, in `state_dir/cluster-term`, so that an
//! agent restarted after its node was killed between taking the key and
//! promoting can still withdraw the term (seeds 7676 and 10327: the term
//! `T+1:LSN:NAME` stayed the election's reference while every server was
//! past `LSN` on timeline `T`, and no member was a candidate again).
//!
//! Why this is correct under lost answers and crashes between any two
//! steps: only the member a term names can open it (by promoting its own
//! server), and its agent asks for the promotion only after the record
//! says so (`asked`, written and fsynced first). So a record that says
//! the promotion was not asked proves the term never opened, whatever
//! happened after: the key's transaction unsent, applied with its answer
//! lost, or applied and followed by a crash. Putting the timeline back is
//! a compare-and-put (the timeline still the one this term wrote, and the
//! leader key still this node's under its lease, or free): never over a
//! later term's, and a resend of one that was applied finds the timeline
//! changed and does nothing.
//!
//! Once the promotion was asked, whether the term opened cannot be told:
//! a promotion may finish after its answer is lost; a server that is
//! down shows only its control file, whose timeline is the last
//! checkpoint's (the old one, until a checkpoint after the promotion); a
//! promoted server restarted read-only replays its own new
//! timeline while in recovery. "Cannot tell" never counts as "did not
//! open": the term then stays the election's reference (its own server,
//! promoted, is on it; not promoted, it is still a candidate at or behind
//! the term's switch point: [`super::member::last_leader`]). A record that
//! cannot be written stops the step it guards (no key taken, no promotion
//! asked); one that cannot be read at start is logged and counts as asked
//! (nothing is put back).

use super::etcd::{EtcdError, Op};
use super::ha::Ha;
use super::member::LeaderTimeline;
pub use super::pending_term::{FILE, PendingTerm};
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;
use std::path::Path;

impl<D: Dcs, S: Server> Ha<D, S> {
    /// The state directory (where the marker and the record live).
    fn state_dir(&self) -> &Path {
        self.marker.parent().unwrap_or(Path::new("/"))
    }

    /// Write the pending term's record (or remove it when none is
    /// pending), crash-safely (fsynced, renamed, the directory fsynced).
    fn save_pending(&self) -> Result<(), String> {
        let dir = crate::safefs::OwnedDir::open(self.state_dir());
        let done = dir.and_then(|dir| match &self.term_before {
            Some(pending) => dir.replace(FILE, pending.text().as_bytes(), 0o600),
            None => dir.remove_file(FILE).and_then(|()| dir.sync()),
        });
        done.map_err(|e| {
            format!(
                "cannot write {}: {e}",
                self.state_dir().join(FILE).display()
            )
        })
    }

    /// Right before the transaction that takes the key (or writes a new
    /// term) for `ours`: record it, with the term it replaces. The term it
    /// replaces is the last one that opened: when the key still holds a
    /// pending term of this node's that never opened, the one before that.
    /// `Err` (why): not recorded, and the caller does not take the key.
    pub(super) fn begin_term(&mut self, ours: Option<LeaderTimeline>) -> Result<(), String> {
        let before = match &self.term_before {
            Some(pending) if pending.ours.is_some() && pending.ours == self.leader_timeline => {
                pending.before.clone()
            }
            _ => self.leader_timeline.clone(),
        };
        let earlier = self.term_before.replace(PendingTerm {
            before,
            ours,
            asked: false,
        });
        let saved = self.save_pending();
        if saved.is_err() {
            // The record on disk is still the earlier one.
            self.term_before = earlier;
        }
        saved
    }

    /// Right before the promotion is asked: the record says so (from now
    /// on the term may open). `Err` (why): not recorded, and the caller
    /// does not promote. Nothing to do when no term is pending.
    pub(super) fn asking_promotion(&mut self) -> Result<(), String> {
        let Some(pending) = self.term_before.as_mut() else {
            return Ok(());
        };
        pending.asked = true;
        self.save_pending().map_err(|e| {
            // Not asked after all: the record on disk still says so.
            if let Some(pending) = self.term_before.as_mut() {
                pending.asked = false;
            }
            format!("not promoted: {e}")
        })
    }

    /// Whether this node holds the key for a term whose promotion was
    /// never asked (recorded so, [`Ha::asking_promotion`]): its server was
    /// not made writable in that term, so giving the key up needs no stop
    /// first. `false` when no term is pending (then a stop comes first).
    pub(super) fn promotion_not_asked(&self) -> bool {
        self.term_before
            .as_ref()
            .is_some_and(|pending| !pending.asked)
    }

    /// The pending term is settled (opened: its server promoted; put
    /// back; or overtaken by another term): nothing to put back any more.
    pub(super) fn settle_term(&mut self) {
        self.term_before = None;
        if let Err(e) = self.save_pending() {
            tracing::warn!("cluster: {e} (it says the promotion was asked: nothing is put back)");
        }
    }

    /// The term this node took the key for did not open (its promotion
    /// failed, or was never attempted): when the promotion was never
    /// asked, the timeline written with the key is put back, so that the
    /// standbys on the last leader's history remain candidates. A
    /// promotion that was asked may have opened the term: its timeline
    /// stays.
    ///
    /// The former leader's marker is left as it is: this term set none
    /// before its promotion was asked, and one from an earlier term that
    /// opened says what it said (seed 11967: cleared here after a second,
    /// failed election, it made a former leader whose WAL had diverged a
    /// candidate again, and its promotion dropped the later leader's
    /// writes).
    pub(super) async fn term_not_opened(&mut self) {
        let Some(pending) = self.term_before.clone() else {
            return;
        };
        if pending.asked {
            tracing::warn!(
                "cluster: the promotion for the term {:?} was asked and did not finish: whether the term opened cannot be told, so its timeline stays the election's reference",
                pending.ours.as_ref().map(LeaderTimeline::text)
            );
            self.settle_term();
            return;
        }
        // Only while the timeline is still the one this term wrote, and
        // the key is still this node's (under its lease) or gone: never
        // over a later term's.
        let me = self.local.spec().name.clone();
        let ours = pending.ours.as_ref().map(LeaderTimeline::text);
        // No timeline before (a cluster that never failed over): removed.
        let put = [match &pending.before {
            Some(before) => Op::Put {
                key: self.keys.timeline.clone(),
                value: before.text(),
                lease: 0,
            },
            None => Op::Delete {
                key: self.keys.timeline.clone(),
            },
        }];
        let timeline = (self.keys.timeline.as_str(), ours.as_deref());
        let mut put_back = Ok(false);
        if let Some(lease) = self.lease {
            put_back = self
                .etcd
                .txn_held(
                    &[(self.keys.leader.as_str(), Some(me.as_str())), timeline],
                    (&self.keys.leader, lease),
                    &put,
                )
                .await;
        }
        if matches!(put_back, Ok(false)) {
            put_back = self
                .etcd
                .txn(&[(self.keys.leader.as_str(), None), timeline], &put)
                .await;
        }
        if matches!(put_back, Ok(false)) {
            // A compare failed: on the timeline (another term since, or
            // this one never written), or on the leader key (still held,
            // by this node's lapsed lease or by another's). Which one is
            // read back, never inferred (seed 18864: taken for the first,
            // the record was dropped while this node's own lapsed key
            // still existed, and the term that never opened barred every
            // member for good).
            put_back = match self.etcd.get(&self.keys.timeline).await {
                Ok(Some(kv)) if Some(&kv.value) == ours.as_ref() => {
                    Err(EtcdError::Refused("the leader key is still held".into()))
                }
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
        }
        match put_back {
            // Put back: the election's reference from now on (this pass
            // too: the scope it read still showed the term).
            Ok(true) => {
                self.know_term(pending.before.clone());
                self.settle_term();
            }
            // The timeline is no longer this term's (another term since,
            // or never written): nothing left to do.
            Ok(false) => self.settle_term(),
            Err(e) => {
                // Kept, and tried again while there is no leader
                // ([`Ha::put_back_pending_term`]): a term that never opened
                // must not stay the election's reference (seed 166: it
                // barred every member). A resend after a lost answer that
                // was applied finds the timeline changed and does nothing.
                tracing::warn!(
                    "cluster: cannot put the last leader's timeline back (tried again): {e}"
                );
            }
        }
    }

    /// No leader: a term this node took the key for that never opened,
    /// whose timeline could not be put back then (or whose agent was
    /// restarted before it could promote: the record read at start), is
    /// put back now (only while the timeline is still the one it wrote and
    /// no one holds the key: [`Ha::term_not_opened`]).
    pub(super) async fn put_back_pending_term(&mut self) {
        if self.term_before.is_some() && !self.holding() {
            self.term_not_opened().await;
        }
    }
}
