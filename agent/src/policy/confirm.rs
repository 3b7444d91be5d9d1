//! Soft and hard states: a problem becomes *hard* after `failures`
//! consecutive results at its level, and the state is ok again after
//! `recoveries` consecutive ok results (Nagios' max_check_attempts,
//! Consul's failures_before_critical / success_before_passing).
//! Remediation and alerts act on hard states only.
//!
//! Unlike Nagios, a change between problem statuses is confirmed too: each
//! level a remediation can wait for ([`Level`]: warning-or-worse, critical,
//! unknown) needs its own `failures` consecutive results before the hard
//! status reaches it. A server refusing connections (hard warning) followed
//! by one timed-out run is *not* hard critical; three critical runs are.
//! When results mix levels so that none is confirmed, the hard status stays
//! where it was.
//!
//! Every hard change also stamps [`Onsets`]: when each level last began to
//! hold. An onset names one incident, so remediation can tell "already
//! decided for this incident" from "a new incident" across restarts.

use crate::config::Confirm;
use crate::report::Status;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether the current status is confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateType {
    Soft,
    Hard,
}

/// A level a trigger can wait for, as written in `on.status`: `warning`
/// holds for warning and critical, `critical` and `unknown` only for
/// themselves (`ok` is never a problem level).
pub fn level_holds(status: Status, wanted: Status) -> bool {
    match wanted {
        Status::Warning => matches!(status, Status::Warning | Status::Critical),
        other => status == other,
    }
}

/// The problem levels, in the order [`Onsets`] keeps them.
const LEVELS: [Status; 3] = [Status::Warning, Status::Critical, Status::Unknown];

/// When each problem level last began to hold, in milliseconds since the
/// Unix epoch (`None`: it never did, or the state predates onsets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Onsets {
    #[serde(default)]
    pub warning: Option<u64>,
    #[serde(default)]
    pub critical: Option<u64>,
    #[serde(default)]
    pub unknown: Option<u64>,
}

impl Onsets {
    fn slot(&mut self, level: Status) -> Option<&mut Option<u64>> {
        match level {
            Status::Warning => Some(&mut self.warning),
            Status::Critical => Some(&mut self.critical),
            Status::Unknown => Some(&mut self.unknown),
            Status::Ok => None,
        }
    }

    /// Record a hard change at `at`: every level that holds after it but
    /// did not before begins now.
    pub fn stamp(&mut self, change: HardChange, at: SystemTime) {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        for level in LEVELS {
            if level_holds(change.to, level)
                && !level_holds(change.from, level)
                && let Some(slot) = self.slot(level)
            {
                *slot = Some(ms);
            }
        }
    }

    /// The onset of the incident during which `wanted` holds (0 when the
    /// level holds but its onset was never recorded).
    pub fn of(&self, wanted: Status) -> u64 {
        let onset = match wanted {
            Status::Warning => self.warning,
            Status::Critical => self.critical,
            Status::Unknown => self.unknown,
            Status::Ok => None,
        };
        onset.unwrap_or(0)
    }
}

/// The confirmation state of one series of results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    /// The confirmed status.
    pub hard: Status,
    /// The latest status.
    pub current: Status,
    /// Consecutive non-ok results up to now.
    pub failures: u32,
    /// Consecutive ok results up to now.
    pub recoveries: u32,
    /// Consecutive results at each level (warning-or-worse, critical,
    /// unknown), in the order of [`LEVELS`].
    #[serde(default)]
    pub streaks: [u32; 3],
    /// When each level of `hard` began.
    #[serde(default)]
    pub onsets: Onsets,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            hard: Status::Ok,
            current: Status::Ok,
            failures: 0,
            recoveries: 0,
            streaks: [0; 3],
            onsets: Onsets::default(),
        }
    }
}

/// A change of hard status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardChange {
    pub from: Status,
    pub to: Status,
}

impl Tracker {
    /// Record one result at `at`; the hard change it causes, if any.
    pub fn observe(
        &mut self,
        status: Status,
        confirm: Confirm,
        at: SystemTime,
    ) -> Option<HardChange> {
        self.current = status;
        for (streak, level) in self.streaks.iter_mut().zip(LEVELS) {
            *streak = if level_holds(status, level) {
                streak.saturating_add(1)
            } else {
                0
            };
        }
        let next = if status == Status::Ok {
            self.recoveries = self.recoveries.saturating_add(1);
            self.failures = 0;
            (self.hard != Status::Ok && self.recoveries >= confirm.recoveries).then_some(Status::Ok)
        } else {
            self.failures = self.failures.saturating_add(1);
            self.recoveries = 0;
            self.confirmed_level(confirm.failures)
                .filter(|level| *level != self.hard)
        };
        let change = HardChange {
            from: self.hard,
            to: next?,
        };
        self.hard = change.to;
        self.onsets.stamp(change, at);
        Some(change)
    }

    /// The most severe level confirmed by `failures` consecutive results.
    /// A run of warnings and criticals confirms warning unless the
    /// criticals alone are enough.
    fn confirmed_level(&self, failures: u32) -> Option<Status> {
        let [warning_or_worse, critical, unknown] = self.streaks;
        if critical >= failures {
            Some(Status::Critical)
        } else if warning_or_worse >= failures {
            Some(Status::Warning)
        } else if unknown >= failures {
            Some(Status::Unknown)
        } else {
            None
        }
    }

    /// Soft while the latest result is not (yet) the confirmed one.
    pub fn state_type(&self) -> StateType {
        if self.current == self.hard {
            StateType::Hard
        } else {
            StateType::Soft
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirm(failures: u32, recoveries: u32) -> Confirm {
        Confirm {
            failures,
            recoveries,
        }
    }

    fn now() -> SystemTime {
        SystemTime::now()
    }

    fn change(from: Status, to: Status) -> Option<HardChange> {
        Some(HardChange { from, to })
    }

    #[test]
    fn a_problem_is_hard_after_exactly_n_breaches() {
        let mut t = Tracker::default();
        let c = confirm(3, 2);
        assert_eq!(t.observe(Status::Critical, c, now()), None);
        assert_eq!(t.state_type(), StateType::Soft);
        assert_eq!(t.observe(Status::Critical, c, now()), None);
        assert_eq!(
            t.observe(Status::Critical, c, now()),
            change(Status::Ok, Status::Critical)
        );
        assert_eq!(t.state_type(), StateType::Hard);
        assert_eq!(t.observe(Status::Critical, c, now()), None);
    }

    #[test]
    fn recovery_needs_exactly_m_passes() {
        let mut t = Tracker::default();
        let c = confirm(1, 2);
        t.observe(Status::Critical, c, now());
        assert_eq!(t.hard, Status::Critical);
        assert_eq!(t.observe(Status::Ok, c, now()), None);
        assert_eq!(t.state_type(), StateType::Soft);
        assert_eq!(
            t.observe(Status::Ok, c, now()),
            change(Status::Critical, Status::Ok)
        );
    }

    #[test]
    fn an_ok_in_between_restarts_the_count() {
        let mut t = Tracker::default();
        let c = confirm(2, 1);
        t.observe(Status::Critical, c, now());
        t.observe(Status::Ok, c, now());
        assert_eq!(t.observe(Status::Critical, c, now()), None);
        assert!(t.observe(Status::Critical, c, now()).is_some());
    }

    /// The vector: `for = 3`, hard warning, then one critical
    /// result is not hard critical; three are.
    #[test]
    fn an_escalation_needs_its_own_confirmations() {
        let mut t = Tracker::default();
        let c = confirm(3, 1);
        for _ in 0..3 {
            t.observe(Status::Warning, c, now());
        }
        assert_eq!(t.hard, Status::Warning);
        assert_eq!(t.observe(Status::Critical, c, now()), None);
        assert_eq!(t.state_type(), StateType::Soft);
        assert_eq!(t.observe(Status::Critical, c, now()), None);
        assert_eq!(
            t.observe(Status::Critical, c, now()),
            change(Status::Warning, Status::Critical)
        );
    }

    /// Three sandbox timeouts (hard unknown) then one critical stays unknown.
    #[test]
    fn unknown_then_one_critical_stays_unknown() {
        let mut t = Tracker::default();
        let c = confirm(3, 1);
        for _ in 0..3 {
            t.observe(Status::Unknown, c, now());
        }
        assert_eq!(t.hard, Status::Unknown);
        assert_eq!(t.observe(Status::Critical, c, now()), None);
        assert_eq!(t.hard, Status::Unknown);
    }

    #[test]
    fn mixed_warnings_and_criticals_confirm_warning_only() {
        let mut t = Tracker::default();
        let c = confirm(2, 1);
        assert_eq!(t.observe(Status::Warning, c, now()), None);
        assert_eq!(
            t.observe(Status::Critical, c, now()),
            change(Status::Ok, Status::Warning)
        );
        assert_eq!(
            t.observe(Status::Critical, c, now()),
            change(Status::Warning, Status::Critical)
        );
    }

    #[test]
    fn onsets_name_incidents() {
        let mut t = Tracker::default();
        let c = confirm(1, 1);
        let t0 = UNIX_EPOCH + std::time::Duration::from_secs(100);
        let t1 = t0 + std::time::Duration::from_secs(1);
        let t2 = t1 + std::time::Duration::from_secs(1);
        t.observe(Status::Warning, c, t0);
        t.observe(Status::Critical, c, t1);
        // Warning-or-worse began at t0 and still holds; critical began at t1.
        assert_eq!(t.onsets.of(Status::Warning), 100_000);
        assert_eq!(t.onsets.of(Status::Critical), 101_000);
        t.observe(Status::Ok, c, t2);
        t.observe(Status::Critical, c, t2);
        assert_eq!(t.onsets.of(Status::Warning), 102_000);
        assert_eq!(t.onsets.of(Status::Critical), 102_000);
    }
}
