//! A probe's state across runs: its confirmed (hard) status, the soft
//! status of the latest run, per-threshold confirmation, flap detection and
//! a history. [`ProbeState::apply`] folds one run into it and says what
//! changed, which is what remediation, telemetry and the audit act on.
//!
//! A threshold rule whose measurement is missing from a run (a failed run,
//! a standby gone from `pg_stat_replication`) keeps its previous state: an
//! absent value is not evidence that the problem is gone.

use super::confirm::{HardChange, Onsets, StateType, Tracker};
use super::flap::FlapDetector;
use super::thresholds;
use crate::config::ProbeSpec;
use crate::report::{Report, Status};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

/// Entries of history kept per probe.
pub const HISTORY: usize = 50;

/// One past run in the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When the run finished.
    #[serde(with = "humantime_serde")]
    pub at: SystemTime,
    pub status: Status,
    pub state_type: StateType,
}

/// Everything remembered about a probe, persisted in `state_dir`.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeState {
    /// The probe's own status, confirmed with the probe's `for`/`recover`.
    pub own: Tracker,
    /// One tracker per threshold rule, by measurement name.
    pub rules: BTreeMap<String, Tracker>,
    pub flap: FlapDetector,
    pub history: VecDeque<HistoryEntry>,
    pub last_report: Option<Report>,
    #[serde(default, with = "humantime_serde")]
    pub last_run: Option<SystemTime>,
    /// When each level of the combined hard status ([`ProbeState::hard`])
    /// began: what identifies an incident for remediation.
    #[serde(default)]
    pub onsets: Onsets,
    /// Runs folded in so far: orders the saved copies of the state (see
    /// `store::journal`).
    #[serde(default)]
    pub seq: u64,
}

impl Clone for ProbeState {
    fn clone(&self) -> Self {
        let mut copy = ProbeState::default();
        copy.clone_from(self);
        copy
    }

    /// Field by field, into the memory `self` already holds: the state
    /// writer copies every run's state into the previous copy this way
    /// (the history's, the flap window's and the report's buffers are
    /// reused). The patterns name every field, so a new one cannot be
    /// forgotten here.
    fn clone_from(&mut self, source: &Self) {
        let ProbeState {
            own,
            rules,
            flap,
            history,
            last_report,
            last_run,
            onsets,
            seq,
        } = source;
        self.own.clone_from(own);
        self.rules.clone_from(rules);
        let FlapDetector {
            window,
            flapping,
            percent,
        } = flap;
        self.flap.window.clone_from(window);
        self.flap.flapping = *flapping;
        self.flap.percent = *percent;
        self.history.clone_from(history);
        self.last_report.clone_from(last_report);
        self.last_run = *last_run;
        self.onsets = *onsets;
        self.seq = *seq;
    }
}

/// What one run changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// The run's status: the probe's verdict made worse by thresholds.
    pub status: Status,
    /// The probe's hard status changed.
    pub hard: Option<HardChange>,
    /// Threshold rules whose hard status changed, by measurement.
    pub rules: Vec<(String, HardChange)>,
    /// Flapping started (`true`) or stopped (`false`).
    pub flapping: Option<bool>,
    /// The latest status of the probe's own verdict or of a threshold
    /// rule changed, or a rule came or went: a confirmation counter was
    /// reset, which must reach the disk before a crash could make a
    /// restart confirm on stale counts.
    pub currents: bool,
}

impl ProbeState {
    /// The confirmed status: the worst hard status of the probe's own
    /// verdict and of every threshold rule.
    pub fn hard(&self) -> Status {
        self.rules
            .values()
            .map(|t| t.hard)
            .fold(self.own.hard, Status::worst)
    }

    /// The latest run's status.
    pub fn current(&self) -> Status {
        self.rules
            .values()
            .map(|t| t.current)
            .fold(self.own.current, Status::worst)
    }

    pub fn state_type(&self) -> StateType {
        if self.current() == self.hard() {
            StateType::Hard
        } else {
            StateType::Soft
        }
    }

    /// The hard status of the rule for `measurement`.
    pub fn rule_hard(&self, measurement: &str) -> Option<Status> {
        self.rules.get(measurement).map(|t| t.hard)
    }

    /// The hard status a trigger watches (the probe's combined status, or
    /// one rule's) and the onset of the incident during which it holds
    /// the `wanted` level (see [`Onsets::of`]).
    pub fn watched(&self, measurement: Option<&str>, wanted: Status) -> (Status, u64) {
        match measurement {
            None => (self.hard(), self.onsets.of(wanted)),
            Some(m) => self
                .rules
                .get(m)
                .map_or((Status::Ok, 0), |t| (t.hard, t.onsets.of(wanted))),
        }
    }

    /// Fold one run into the state.
    pub fn apply(&mut self, spec: &ProbeSpec, report: &Report, at: SystemTime) -> Changes {
        let before = self.hard();
        let mut currents = self.own.current != report.status;
        self.own.observe(report.status, spec.confirm, at);
        let statuses = thresholds::rule_statuses(&spec.thresholds, report);
        // Rules removed from the config are forgotten.
        let rules = self.rules.len();
        self.rules
            .retain(|name, _| spec.thresholds.iter().any(|r| &r.measurement == name));
        currents |= self.rules.len() != rules;
        let mut rule_changes = Vec::new();
        for (rule, status) in spec.thresholds.iter().zip(statuses) {
            let tracker = match self.rules.get_mut(&rule.measurement) {
                Some(tracker) => tracker,
                None => {
                    currents = true;
                    self.rules.entry(rule.measurement.clone()).or_default()
                }
            };
            // Missing from this run: the rule keeps its state.
            let Some(status) = status else { continue };
            currents |= tracker.current != status;
            if let Some(change) = tracker.observe(status, rule.confirm, at) {
                rule_changes.push((rule.measurement.clone(), change));
            }
        }
        let status = self.current();
        let after = self.hard();
        let hard = (before != after).then_some(HardChange {
            from: before,
            to: after,
        });
        if let Some(change) = hard {
            self.onsets.stamp(change, at);
        }
        let flapping = self.flap.observe(status, spec.flapping);
        self.history.push_back(HistoryEntry {
            at,
            status,
            state_type: self.state_type(),
        });
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        // Into the previous report's buffers (no allocation when the
        // message and measurements are alike).
        match &mut self.last_report {
            Some(last) => last.clone_from(report),
            None => self.last_report = Some(report.clone()),
        }
        self.last_run = Some(at);
        self.seq += 1;
        Changes {
            status,
            hard,
            rules: rule_changes,
            flapping,
            currents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::range::Range;
    use crate::config::{Confirm, Flapping, Place, ThresholdRule, WasmSource};
    use crate::report::Measurement;
    use std::time::Duration;

    fn spec(failures: u32, recoveries: u32, thresholds: Vec<ThresholdRule>) -> ProbeSpec {
        ProbeSpec {
            dirs: Default::default(),
            name: "p".into(),
            wasm: WasmSource::Builtin("host-cpu".into()),
            sha256: None,
            every: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            memory: 1 << 20,
            targets: vec![],
            config: BTreeMap::new(),
            thresholds,
            confirm: Confirm {
                failures,
                recoveries,
            },
            flapping: Flapping::default(),
            place: Place::default(),
        }
    }

    fn report(status: Status, lag: f64) -> Report {
        Report {
            status,
            message: String::new(),
            measurements: vec![Measurement {
                name: "lag".into(),
                value: lag,
                unit: "By".into(),
                attributes: vec![],
            }],
            error: None,
            duration: Duration::ZERO,
            peak_memory: 0,
        }
    }

    #[test]
    fn the_probe_goes_hard_after_its_own_count() {
        let spec = spec(2, 1, vec![]);
        let mut state = ProbeState::default();
        let c = state.apply(&spec, &report(Status::Critical, 0.0), SystemTime::now());
        assert_eq!((c.status, c.hard), (Status::Critical, None));
        assert_eq!(state.state_type(), StateType::Soft);
        let c = state.apply(&spec, &report(Status::Critical, 0.0), SystemTime::now());
        assert_eq!(
            c.hard,
            Some(HardChange {
                from: Status::Ok,
                to: Status::Critical
            })
        );
        assert_eq!(state.history.len(), 2);
        assert_eq!(state.history[1].state_type, StateType::Hard);
    }

    #[test]
    fn a_threshold_rule_confirms_with_its_own_count() {
        let rule = ThresholdRule {
            measurement: "lag".into(),
            warning: None,
            critical: Some(Range::parse("~:100").unwrap()),
            confirm: Confirm {
                failures: 3,
                recoveries: 1,
            },
        };
        let spec = spec(1, 1, vec![rule]);
        let mut state = ProbeState::default();
        for _ in 0..2 {
            let c = state.apply(&spec, &report(Status::Ok, 500.0), SystemTime::now());
            assert_eq!((c.status, c.hard), (Status::Critical, None));
        }
        let c = state.apply(&spec, &report(Status::Ok, 500.0), SystemTime::now());
        assert_eq!(
            c.rules,
            vec![(
                "lag".to_string(),
                HardChange {
                    from: Status::Ok,
                    to: Status::Critical
                }
            )]
        );
        assert_eq!(state.hard(), Status::Critical);
        assert_eq!(state.rule_hard("lag"), Some(Status::Critical));
        let c = state.apply(&spec, &report(Status::Ok, 5.0), SystemTime::now());
        assert_eq!(
            c.hard,
            Some(HardChange {
                from: Status::Critical,
                to: Status::Ok
            })
        );
    }

    /// A failed run without the measurement keeps a hard-critical rule
    /// critical (it used to count as ok, so the rule recovered on a
    /// timeout and its remediation fired again at the next breach).
    #[test]
    fn a_missing_measurement_keeps_the_rule_state() {
        let rule = ThresholdRule {
            measurement: "lag".into(),
            warning: None,
            critical: Some(Range::parse("~:100").unwrap()),
            confirm: Confirm {
                failures: 1,
                recoveries: 1,
            },
        };
        let spec = spec(1, 1, vec![rule]);
        let mut state = ProbeState::default();
        state.apply(&spec, &report(Status::Ok, 500.0), SystemTime::now());
        assert_eq!(state.rule_hard("lag"), Some(Status::Critical));
        let mut failed = report(Status::Unknown, 0.0);
        failed.measurements.clear();
        let c = state.apply(&spec, &failed, SystemTime::now());
        assert!(c.rules.is_empty(), "{c:?}");
        assert_eq!(state.rule_hard("lag"), Some(Status::Critical));
        let (hard, onset) = state.watched(Some("lag"), Status::Critical);
        assert_eq!(hard, Status::Critical);
        assert!(onset > 0);
    }

    #[test]
    fn state_round_trips_through_json() {
        let spec = spec(1, 1, vec![]);
        let mut state = ProbeState::default();
        state.apply(&spec, &report(Status::Warning, 1.0), SystemTime::now());
        let json = serde_json::to_string(&state).unwrap();
        let back: ProbeState = serde_json::from_str(&json).unwrap();
        assert_eq!(back.hard(), Status::Warning);
        assert_eq!(back.history.len(), 1);
    }
}
