//! Applying a probe's configured thresholds to a run's measurements.
//!
//! Each rule covers every series of one measurement name; a rule's status
//! for a run is the worst over those series. The run's status is the worst
//! of the probe's own verdict and every rule's (thresholds can make a
//! report worse, never better).

use crate::config::ThresholdRule;
use crate::report::{Report, Status};

/// The status each rule gives this report, in rule order; `None` for a
/// rule whose measurement is absent from the report (no evidence either
/// way: the caller keeps the rule's previous state).
pub fn rule_statuses(rules: &[ThresholdRule], report: &Report) -> Vec<Option<Status>> {
    rules
        .iter()
        .map(|rule| {
            report
                .measurements
                .iter()
                .filter(|m| m.name == rule.measurement)
                .map(|m| rule_status(rule, m.value))
                .reduce(Status::worst)
        })
        .collect()
}

/// The status one value gets from a rule: critical if the critical range
/// alerts, else warning if the warning range alerts, else ok (critical
/// wins, as in the monitoring-plugins `get_status`).
pub fn rule_status(rule: &ThresholdRule, value: f64) -> Status {
    if rule.critical.as_ref().is_some_and(|r| r.alerts(value)) {
        Status::Critical
    } else if rule.warning.as_ref().is_some_and(|r| r.alerts(value)) {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// The run's overall status: the probe's own verdict made worse by the
/// rules (a rule without a value in this run adds nothing).
pub fn overall(rules: &[ThresholdRule], report: &Report) -> Status {
    rule_statuses(rules, report)
        .into_iter()
        .flatten()
        .fold(report.status, Status::worst)
}

/// The rule for `measurement`, if any: its warning and critical ranges are
/// what `--format nagios` prints in perfdata.
pub fn rule_for<'r>(rules: &'r [ThresholdRule], measurement: &str) -> Option<&'r ThresholdRule> {
    rules.iter().find(|r| r.measurement == measurement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Confirm;
    use crate::config::range::Range;

    fn report(status: Status, values: &[(&str, f64)]) -> Report {
        Report::with_values(status, values)
    }

    fn rule(measurement: &str, warning: &str, critical: &str) -> ThresholdRule {
        ThresholdRule {
            measurement: measurement.into(),
            warning: Some(Range::parse(warning).unwrap()),
            critical: Some(Range::parse(critical).unwrap()),
            confirm: Confirm::default(),
        }
    }

    #[test]
    fn the_worst_series_decides_a_rule() {
        let rules = [rule("lag", "~:10", "~:100")];
        let r = report(
            Status::Ok,
            &[("lag", 5.0), ("lag", 50.0), ("other", 1000.0)],
        );
        assert_eq!(rule_statuses(&rules, &r), vec![Some(Status::Warning)]);
        assert_eq!(overall(&rules, &r), Status::Warning);
    }

    #[test]
    fn thresholds_never_make_a_report_better() {
        let rules = [rule("lag", "~:10", "~:100")];
        let r = report(Status::Critical, &[("lag", 1.0)]);
        assert_eq!(overall(&rules, &r), Status::Critical);
    }

    #[test]
    fn reference_warning_and_critical_vectors() {
        let rules = [rule("x", "30", "60")];
        assert_eq!(
            overall(&rules, &report(Status::Ok, &[("x", 15.3)])),
            Status::Ok
        );
        assert_eq!(
            overall(&rules, &report(Status::Ok, &[("x", 30.0001)])),
            Status::Warning
        );
        assert_eq!(
            overall(&rules, &report(Status::Ok, &[("x", 69.0)])),
            Status::Critical
        );
    }
}
