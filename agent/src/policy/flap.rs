//! Flap detection, as Nagios does it: keep the last 21 statuses, count the
//! changes between consecutive ones weighted linearly from 0.75 (oldest) to
//! 1.25 (newest), and express them as a percent of the 20 possible changes.
//! Flapping starts when that percent rises to `high` and stops when it
//! falls to `low`; in between, the flag stays as it was (hysteresis).
//! A flapping probe fires no remediation.

use crate::config::Flapping;
use crate::report::Status;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Statuses kept for flap detection.
pub const WINDOW: usize = 21;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlapDetector {
    /// The last [`WINDOW`] statuses, oldest first.
    pub window: VecDeque<Status>,
    pub flapping: bool,
    /// The latest percent state change.
    pub percent: f64,
}

/// The weighted percent state change of `states` (oldest first).
pub fn percent_state_change(states: &VecDeque<Status>) -> f64 {
    let changes = WINDOW - 1;
    let increment = 0.5 / (changes - 1) as f64;
    // Align the newest change with the newest weight (1.25) when the
    // window is not full yet.
    let offset = changes.saturating_sub(states.len().saturating_sub(1));
    let weighted: f64 = states
        .iter()
        .zip(states.iter().skip(1))
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| 0.75 + (i + offset) as f64 * increment)
        .sum();
    // `+ 0.0` turns the empty sum's -0.0 into 0.0.
    weighted / changes as f64 * 100.0 + 0.0
}

impl FlapDetector {
    /// Record a status; `Some(flapping)` when the flag changes.
    pub fn observe(&mut self, status: Status, settings: Flapping) -> Option<bool> {
        self.window.push_back(status);
        while self.window.len() > WINDOW {
            self.window.pop_front();
        }
        self.percent = percent_state_change(&self.window);
        if !settings.enabled {
            let was = std::mem::replace(&mut self.flapping, false);
            return was.then_some(false);
        }
        let next = if self.percent >= settings.high {
            true
        } else if self.percent <= settings.low {
            false
        } else {
            self.flapping
        };
        (next != self.flapping).then(|| {
            self.flapping = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(states: &[Status]) -> VecDeque<Status> {
        states.iter().copied().collect()
    }

    #[test]
    fn steady_states_do_not_change() {
        assert_eq!(percent_state_change(&window(&[Status::Ok; WINDOW])), 0.0);
    }

    #[test]
    fn alternating_states_are_a_hundred_percent() {
        let states: Vec<Status> = (0..WINDOW)
            .map(|i| {
                if i % 2 == 0 {
                    Status::Ok
                } else {
                    Status::Critical
                }
            })
            .collect();
        assert!((percent_state_change(&window(&states)) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn newer_changes_weigh_more_than_older_ones() {
        let mut old = vec![Status::Ok; WINDOW];
        old[0] = Status::Critical; // change between states 0 and 1
        let mut new = vec![Status::Ok; WINDOW];
        new[WINDOW - 1] = Status::Critical; // change between states 19 and 20
        let (old, new) = (
            percent_state_change(&window(&old)),
            percent_state_change(&window(&new)),
        );
        assert!((old - 0.75 / 20.0 * 100.0).abs() < 1e-9, "{old}");
        assert!((new - 1.25 / 20.0 * 100.0).abs() < 1e-9, "{new}");
    }

    #[test]
    fn flapping_starts_at_high_and_stops_at_low() {
        let settings = Flapping::default();
        let mut detector = FlapDetector::default();
        let mut started_at = None;
        for i in 0..WINDOW {
            let status = if i % 2 == 0 {
                Status::Ok
            } else {
                Status::Critical
            };
            if detector.observe(status, settings) == Some(true) {
                started_at.get_or_insert(i);
            }
        }
        assert!(detector.flapping, "alternating for a whole window flaps");
        assert!(started_at.is_some());
        // Settle: the flag holds between low and high, then clears.
        let mut stopped_at = None;
        for i in 0..WINDOW {
            if detector.observe(Status::Ok, settings) == Some(false) {
                stopped_at = Some(i);
                break;
            }
            assert!(detector.flapping || detector.percent <= settings.low);
        }
        let stopped_at = stopped_at.expect("flapping stops once the probe settles");
        assert!(detector.percent <= settings.low, "{}", detector.percent);
        assert!(stopped_at > 0, "hysteresis keeps the flag for a while");
    }

    #[test]
    fn disabled_detection_never_flaps() {
        let settings = Flapping {
            enabled: false,
            ..Flapping::default()
        };
        let mut detector = FlapDetector::default();
        for i in 0..WINDOW {
            detector.observe(
                if i % 2 == 0 {
                    Status::Ok
                } else {
                    Status::Critical
                },
                settings,
            );
        }
        assert!(!detector.flapping);
    }
}
