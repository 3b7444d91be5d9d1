//! What each member publishes under its own lease
//! (`/watchpost/SCOPE/members/NAME`), and the election rule that reads
//! them: among the live, healthy standbys, only the most advanced one
//! (received WAL, then `failover_priority`, then name) within
//! `max_lag_bytes` of the leader's last published flush position may take
//! the leader key. Pure functions, so the rule is tested on its own.

use serde::{Deserialize, Serialize};

/// One member's published view of itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    /// `primary`, `standby`, `stopped` or `not answering`.
    pub role: String,
    /// A standby that may be promoted (answering, replaying, not paused).
    pub healthy: bool,
    /// Primary: flush position; standby: the further of the received and
    /// replayed positions (bytes from 0/0).
    pub lsn: Option<u64>,
    pub replayed: Option<u64>,
    pub timeline: Option<u64>,
    /// Whom it streams from (`host:port`), if anyone.
    pub streaming_from: Option<String>,
    /// Where the others reach its server.
    pub host: String,
    pub port: u16,
    /// Its agent's status API.
    pub api: String,
    pub nofailover: bool,
    pub failover_priority: u64,
    /// The etcd revision of a read of the scope that showed no leader key,
    /// when `lsn` was read after it, on a standby that had read to the
    /// end of its own `pg_wal` (so `lsn` is final once the old leader's
    /// server is down); none while a leader exists. The synchronous
    /// election rule counts only such positions ([`super::sync::unproven`]).
    #[serde(default)]
    pub leaderless: Option<i64>,
    /// It led, and has not streamed from a leader since: its WAL may
    /// have diverged from the cluster's timeline (a former primary
    /// waiting for, or failing, its rewind). Never a candidate, nor a
    /// rival of one, until it streams from a leader again.
    #[serde(default)]
    pub diverged: bool,
}

/// The last leader's timeline (the key `timeline`, `T` or `T:LSN`): the
/// timeline of its term and, for a term opened by a promotion, the
/// position on the previous timeline where it began (its switch point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderTimeline {
    pub timeline: u64,
    pub switch: Option<u64>,
}

impl LeaderTimeline {
    /// `T` or `T:LSN` (bytes); `None` for anything else.
    pub fn parse(text: &str) -> Option<LeaderTimeline> {
        let (timeline, switch) = match text.split_once(':') {
            Some((t, at)) => (t, Some(at.parse().ok()?)),
            None => (text, None),
        };
        Some(LeaderTimeline {
            timeline: timeline.parse().ok()?,
            switch,
        })
    }

    pub fn text(&self) -> String {
        match self.switch {
            Some(at) => format!("{}:{at}", self.timeline),
            None => self.timeline.to_string(),
        }
    }

    /// Whether `(timeline, lsn)` is on this term's history as far as it
    /// is known: on its timeline (or a later one), or on the previous
    /// one at or before the switch point.
    pub fn holds(&self, timeline: u64, lsn: u64) -> bool {
        timeline >= self.timeline
            || (timeline + 1 == self.timeline && self.switch.is_some_and(|at| lsn <= at))
    }
}

/// Why `me` may not take the leader key for its timeline, or `None`: a
/// candidate must be on the last leader's timeline, or on the one before
/// at or before the point where that leader's term began. One further
/// behind may be a former primary whose WAL diverged after a switch
/// point. Unknown timelines do not refuse (a server that is not running
/// is no candidate anyway).
pub fn off_timeline(me: &Member, leader: Option<LeaderTimeline>) -> Option<String> {
    let (Some(mine), Some(leader)) = (me.timeline, leader) else {
        return None;
    };
    if leader.holds(mine, me.lsn.unwrap_or(0)) {
        return None;
    }
    Some(format!(
        "on timeline {mine} at {}, not on the last leader's history (timeline {}{}): its WAL may have diverged (a candidate again once it follows a leader)",
        me.lsn.unwrap_or(0),
        leader.timeline,
        leader
            .switch
            .map(|at| format!(", which began at {at} on timeline {}", leader.timeline - 1))
            .unwrap_or_default()
    ))
}

/// A member that led and has not streamed since (`diverged`) is still
/// the most recent leader when it is on the last leader's timeline or a
/// later one: then its WAL is the cluster's, and it may be a candidate.
pub fn last_leader(me: &Member, leader: Option<LeaderTimeline>) -> bool {
    matches!((me.timeline, leader), (Some(mine), Some(l)) if mine >= l.timeline)
}

/// Why a standby may not take the leader key, or `None` when it may.
pub fn not_a_candidate(
    me: &Member,
    others: &[Member],
    leader_optime: Option<u64>,
    max_lag_bytes: u64,
) -> Option<String> {
    if me.nofailover {
        return Some("tagged nofailover".into());
    }
    if me.diverged {
        return Some("it led and has not streamed from a leader since: its WAL may have diverged from the cluster's timeline (a candidate again once it follows a leader, rewound if need be)".into());
    }
    if !me.healthy {
        return Some(format!(
            "not a healthy standby ({}{})",
            me.role,
            if me.role == "standby" {
                ", replay paused or nothing received"
            } else {
                ""
            }
        ));
    }
    let mine = me.lsn.unwrap_or(0);
    if let Some(optime) = leader_optime
        && optime.saturating_sub(mine) > max_lag_bytes
    {
        return Some(format!(
            "{} bytes behind the leader's last published position, more than max_lag_bytes = {max_lag_bytes}",
            optime - mine
        ));
    }
    let better = others.iter().find(|o| {
        o.name != me.name
            && o.healthy
            && !o.nofailover
            && !o.diverged
            && (
                o.lsn.unwrap_or(0),
                o.failover_priority,
                std::cmp::Reverse(&o.name),
            ) > (mine, me.failover_priority, std::cmp::Reverse(&me.name))
    });
    better.map(|o| {
        format!(
            "`{}` is a better candidate (received {} vs {mine}, priority {} vs {})",
            o.name,
            o.lsn.unwrap_or(0),
            o.failover_priority,
            me.failover_priority
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standby(name: &str, lsn: u64) -> Member {
        Member {
            name: name.into(),
            role: "standby".into(),
            healthy: true,
            lsn: Some(lsn),
            failover_priority: 1,
            ..Member::default()
        }
    }

    #[test]
    fn the_most_advanced_standby_wins() {
        let a = standby("a", 100);
        let b = standby("b", 200);
        let all = [a.clone(), b.clone()];
        assert!(not_a_candidate(&b, &all, Some(200), 1 << 20).is_none());
        assert!(
            not_a_candidate(&a, &all, Some(200), 1 << 20)
                .unwrap()
                .contains("`b` is a better candidate")
        );
    }

    #[test]
    fn ties_go_to_priority_then_name() {
        let mut a = standby("a", 100);
        let b = standby("b", 100);
        assert!(not_a_candidate(&a, &[a.clone(), b.clone()], None, 0).is_none());
        assert!(not_a_candidate(&b, &[a.clone(), b.clone()], None, 0).is_some());
        a.failover_priority = 0;
        assert!(not_a_candidate(&b, &[a.clone(), b.clone()], None, 0).is_none());
    }

    #[test]
    fn a_standby_too_far_behind_the_leader_is_never_promoted() {
        let a = standby("a", 100);
        let why =
            not_a_candidate(&a, std::slice::from_ref(&a), Some(100 + (2 << 20)), 1 << 20).unwrap();
        assert!(why.contains("bytes behind"), "{why}");
    }

    #[test]
    fn a_diverged_former_primary_is_never_a_candidate_nor_a_rival() {
        // It ran ahead on its own timeline: the most WAL, but not the
        // cluster's.
        let mut former = standby("a", 900);
        former.diverged = true;
        let b = standby("b", 100);
        let all = [former.clone(), b.clone()];
        let why = not_a_candidate(&former, &all, Some(100), 1 << 20).unwrap();
        assert!(why.contains("diverged"), "{why}");
        assert!(not_a_candidate(&b, &all, Some(100), 1 << 20).is_none());
        // Once it streams from a leader again, it is one like the others.
        former.diverged = false;
        assert!(not_a_candidate(&former, &[former.clone(), b], Some(100), 1 << 20).is_none());
    }

    #[test]
    fn unhealthy_and_nofailover_members_are_not_candidates_nor_rivals() {
        let mut paused = standby("z", 999);
        paused.healthy = false;
        let a = standby("a", 100);
        assert!(not_a_candidate(&paused, std::slice::from_ref(&a), None, 1 << 20).is_some());
        assert!(not_a_candidate(&a, &[paused], None, 1 << 20).is_none());
        let mut tagged = standby("b", 100);
        tagged.nofailover = true;
        assert_eq!(
            not_a_candidate(&tagged, &[], None, 1 << 20).as_deref(),
            Some("tagged nofailover")
        );
    }
}
