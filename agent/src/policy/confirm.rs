//! Soft and hard states: a problem becomes *hard* after `failures`
//! consecutive non-ok results, and the state is ok again after `recoveries`
//! consecutive ok results (Nagios' max_check_attempts, Consul's
//! failures_before_critical / success_before_passing). Remediation and
//! alerts act on hard states only.
//!
//! Once a problem is hard, a change between problem statuses (warning to
//! critical, say) is hard at once, as in Nagios.

use crate::config::Confirm;
use crate::report::Status;
use serde::{Deserialize, Serialize};

/// Whether the current status is confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateType {
    Soft,
    Hard,
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
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            hard: Status::Ok,
            current: Status::Ok,
            failures: 0,
            recoveries: 0,
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
    /// Record one result; the hard change it causes, if any.
    pub fn observe(&mut self, status: Status, confirm: Confirm) -> Option<HardChange> {
        self.current = status;
        let next = if status == Status::Ok {
            self.recoveries = self.recoveries.saturating_add(1);
            self.failures = 0;
            (self.hard != Status::Ok && self.recoveries >= confirm.recoveries).then_some(Status::Ok)
        } else {
            self.failures = self.failures.saturating_add(1);
            self.recoveries = 0;
            let confirmed = self.hard != Status::Ok || self.failures >= confirm.failures;
            (confirmed && self.hard != status).then_some(status)
        };
        next.map(|to| {
            let change = HardChange {
                from: self.hard,
                to,
            };
            self.hard = to;
            change
        })
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

    #[test]
    fn a_problem_is_hard_after_exactly_n_breaches() {
        let mut t = Tracker::default();
        let c = confirm(3, 2);
        assert_eq!(t.observe(Status::Critical, c), None);
        assert_eq!(t.state_type(), StateType::Soft);
        assert_eq!(t.observe(Status::Critical, c), None);
        assert_eq!(
            t.observe(Status::Critical, c),
            Some(HardChange {
                from: Status::Ok,
                to: Status::Critical
            })
        );
        assert_eq!(t.state_type(), StateType::Hard);
        assert_eq!(t.observe(Status::Critical, c), None);
    }

    #[test]
    fn recovery_needs_exactly_m_passes() {
        let mut t = Tracker::default();
        let c = confirm(1, 2);
        t.observe(Status::Critical, c);
        assert_eq!(t.hard, Status::Critical);
        assert_eq!(t.observe(Status::Ok, c), None);
        assert_eq!(t.state_type(), StateType::Soft);
        assert_eq!(
            t.observe(Status::Ok, c),
            Some(HardChange {
                from: Status::Critical,
                to: Status::Ok
            })
        );
    }

    #[test]
    fn an_ok_in_between_restarts_the_count() {
        let mut t = Tracker::default();
        let c = confirm(2, 1);
        t.observe(Status::Critical, c);
        t.observe(Status::Ok, c);
        assert_eq!(t.observe(Status::Critical, c), None);
        assert!(t.observe(Status::Critical, c).is_some());
    }

    #[test]
    fn problem_to_problem_changes_are_hard_at_once() {
        let mut t = Tracker::default();
        let c = confirm(2, 1);
        t.observe(Status::Warning, c);
        t.observe(Status::Warning, c);
        assert_eq!(t.hard, Status::Warning);
        assert_eq!(
            t.observe(Status::Critical, c),
            Some(HardChange {
                from: Status::Warning,
                to: Status::Critical
            })
        );
    }

    #[test]
    fn mixed_problems_count_together() {
        let mut t = Tracker::default();
        let c = confirm(2, 1);
        assert_eq!(t.observe(Status::Warning, c), None);
        assert_eq!(
            t.observe(Status::Critical, c),
            Some(HardChange {
                from: Status::Ok,
                to: Status::Critical
            })
        );
    }
}
