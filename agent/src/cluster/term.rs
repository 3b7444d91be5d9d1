//! The `timeline` key (the last leader's term, [`LeaderTimeline`]:
//! `T:LSN:NAME`) as the leader writes it. Every write is guarded by the
//! leader's lease (a compare on the leader key's value and lease id,
//! [`Dcs::txn_held`]), so that a node that lost the key never rewrites
//! another term's; an answer that is lost is read back, never inferred.
//! After a promotion the leader writes where its timeline really began
//! (PostgreSQL reuses timeline numbers, so the election compares the
//! start too: [`super::member::off_timeline`]).

use super::etcd::Op;
use super::ha::Ha;
use super::local::Observation;
use super::member::LeaderTimeline;
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;

/// The term a leader whose server runs as a primary on `timeline`, begun
/// at `start`, should publish when the key last read says `key`, or
/// `None` when the key already says it: absent (a term opened before the
/// key existed), this node's term on the same number with another or no
/// start written (the election's guess, its position when elected,
/// before the promotion's real switch point was known), or this node's
/// term on a lower number (PostgreSQL numbered the promotion one past the
/// newest history file it found, which may be past the term's: its
/// standbys follow it there, and a later number than the term's is on no
/// one's history: [`LeaderTimeline::holds`]).
pub fn to_publish(
    key: Option<&LeaderTimeline>,
    me: &str,
    timeline: u64,
    start: Option<u64>,
) -> Option<LeaderTimeline> {
    let want = LeaderTimeline {
        timeline,
        switch: start,
        by: Some(me.to_string()),
    };
    match key {
        None => Some(want),
        Some(key)
            if key.timeline == timeline
                && key.by.as_deref() == Some(me)
                && start.is_some()
                && key.switch != start =>
        {
            Some(want)
        }
        Some(key) if key.timeline < timeline && key.by.as_deref() == Some(me) => Some(want),
        Some(_) => None,
    }
}

impl<D: Dcs, S: Server> Ha<D, S> {
    /// Write `term` as the leader's timeline, only while this node holds
    /// the leader key under its lease. `Ok` once it is written (answered,
    /// or read back after a lost answer); `Err` (why) when it was not, or
    /// whether it was cannot be told (then the caller does not act on
    /// it: a promotion waits for the next loop).
    pub(super) async fn write_term(&mut self, term: &LeaderTimeline) -> Result<(), String> {
        let lease = self.lease.ok_or("this node has no lease")?;
        let me = self.local.spec().name.clone();
        let text = term.text();
        let answer = self
            .etcd
            .txn_held(
                &[(self.keys.leader.as_str(), Some(me.as_str()))],
                (&self.keys.leader, lease),
                &[Op::Put {
                    key: self.keys.timeline.clone(),
                    value: text.clone(),
                    lease: 0,
                }],
            )
            .await;
        match answer {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "the timeline {text} was not written: this node no longer holds the leader key under its lease"
                ));
            }
            Err(e) => {
                // Lost: what the store holds decides (the value names this
                // node's term, so only this write can have put it there,
                // and only while the key was held).
                match self.etcd.get(&self.keys.timeline).await {
                    Ok(Some(kv)) if kv.value == text => {}
                    Ok(_) => {
                        return Err(format!(
                            "the answer to writing the timeline {text} was lost ({e}), and the key read back does not hold it"
                        ));
                    }
                    Err(read) => {
                        return Err(format!(
                            "the answer to writing the timeline {text} was lost ({e}), and the key could not be read back: {read}"
                        ));
                    }
                }
            }
        }
        self.know_term(Some(term.clone()));
        Ok(())
    }

    /// The last leader's term is now `term` in the store (written or put
    /// back by this node): the election's reference, and the value a
    /// take compares ([`Ha::timeline_read`]), kept together.
    pub(super) fn know_term(&mut self, term: Option<LeaderTimeline>) {
        self.timeline_read = term.as_ref().map(LeaderTimeline::text);
        self.leader_timeline = term;
    }

    /// As the leader whose server runs as a primary (`seen`): publish its
    /// term as it is ([`to_publish`]) if the key last read does not say
    /// it. A failure is logged and tried again next loop.
    pub(super) async fn publish_term(&mut self, seen: &Observation) {
        if !(self.holding() && seen.primary()) {
            return;
        }
        let Some(timeline) = seen.timeline else {
            return;
        };
        let me = self.local.spec().name.clone();
        let Some(term) = to_publish(
            self.leader_timeline.as_ref(),
            &me,
            timeline,
            seen.timeline_start,
        ) else {
            return;
        };
        if let Err(e) = self.write_term(&term).await {
            tracing::warn!("cluster: cannot publish this leader's timeline: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_publishes_where_its_timeline_really_began() {
        let key = |text: &str| LeaderTimeline::parse(text);
        type Row<'a> = (Option<LeaderTimeline>, u64, Option<u64>, Option<&'a str>);
        let table: [Row; 10] = [
            // No key yet (an upgrade): written, with the start if known.
            (None, 4, Some(1200), Some("4:1200:m0")),
            (None, 4, None, Some("4::m0")),
            // Elected at 1195, promoted at 1200: the real start.
            (key("4:1195:m0"), 4, Some(1200), Some("4:1200:m0")),
            (key("4:1200:m0"), 4, Some(1200), None),
            // The start unknown: the key is left as it is.
            (key("4:1195:m0"), 4, None, None),
            // Another member's term, or a later number: not this rule's.
            (key("4:1195:m1"), 4, Some(1200), None),
            (key("5:1300:m0"), 4, Some(1200), None),
            // Its own term, but the promotion got a higher number (a
            // newer history file found): the real one.
            (key("4:1195:m0"), 5, Some(1200), Some("5:1200:m0")),
            (key("4:1195:m0"), 5, None, Some("5::m0")),
            (key("4:1195:m1"), 5, Some(1200), None),
        ];
        for (before, timeline, start, want) in table {
            let got = to_publish(before.as_ref(), "m0", timeline, start).map(|t| t.text());
            assert_eq!(got.as_deref(), want, "{before:?} {timeline} {start:?}");
        }
    }
}
