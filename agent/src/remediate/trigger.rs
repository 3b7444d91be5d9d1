//! When a remediation fires: on the transition of its probe (or of one of
//! the probe's thresholds) *into* a hard state that matches `on.status` —
//! never on a soft state, and not again while the state stays matching.
//! `warning` matches warning and critical; `critical` only critical;
//! `unknown` only unknown.

use crate::config::Trigger;
use crate::daemon::events::RunEvent;
use crate::policy::confirm::HardChange;
use crate::report::Status;

/// Whether a hard status satisfies a trigger's status.
pub fn matches(status: Status, wanted: Status) -> bool {
    match wanted {
        Status::Warning => matches!(status, Status::Warning | Status::Critical),
        other => status == other,
    }
}

/// The hard change of `event` that fires `trigger`, if any.
pub fn fired_by(trigger: &Trigger, event: &RunEvent) -> Option<HardChange> {
    if event.probe != trigger.probe {
        return None;
    }
    let change = match &trigger.measurement {
        None => event.changes.hard?,
        Some(measurement) => {
            event
                .changes
                .rules
                .iter()
                .find(|(m, _)| m == measurement)?
                .1
        }
    };
    (matches(change.to, trigger.status) && !matches(change.from, trigger.status)).then_some(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::confirm::StateType;
    use crate::policy::state::Changes;
    use std::sync::Arc;

    fn event(hard: Option<(Status, Status)>, rules: Vec<(&str, Status, Status)>) -> RunEvent {
        RunEvent {
            probe: "alive".into(),
            at: std::time::SystemTime::now(),
            report: Arc::new(crate::report::Report::failed(
                crate::report::RunError::new(crate::report::ErrorKind::Probe, "x"),
                Default::default(),
                0,
            )),
            changes: Changes {
                status: Status::Critical,
                hard: hard.map(|(from, to)| HardChange { from, to }),
                rules: rules
                    .into_iter()
                    .map(|(m, from, to)| (m.to_string(), HardChange { from, to }))
                    .collect(),
                flapping: None,
            },
            hard: Status::Critical,
            state_type: StateType::Hard,
            flapping: false,
        }
    }

    fn trigger(status: Status, measurement: Option<&str>) -> Trigger {
        Trigger {
            probe: "alive".into(),
            status,
            measurement: measurement.map(String::from),
        }
    }

    #[test]
    fn fires_on_the_transition_into_the_state_only() {
        let t = trigger(Status::Critical, None);
        assert!(fired_by(&t, &event(Some((Status::Ok, Status::Critical)), vec![])).is_some());
        assert!(
            fired_by(
                &t,
                &event(Some((Status::Warning, Status::Critical)), vec![])
            )
            .is_some()
        );
        assert!(
            fired_by(&t, &event(None, vec![])).is_none(),
            "soft or unchanged"
        );
        assert!(fired_by(&t, &event(Some((Status::Ok, Status::Warning)), vec![])).is_none());
    }

    #[test]
    fn warning_triggers_cover_critical_once() {
        let t = trigger(Status::Warning, None);
        assert!(fired_by(&t, &event(Some((Status::Ok, Status::Critical)), vec![])).is_some());
        assert!(
            fired_by(
                &t,
                &event(Some((Status::Warning, Status::Critical)), vec![])
            )
            .is_none()
        );
    }

    #[test]
    fn measurement_triggers_follow_their_threshold() {
        let t = trigger(Status::Critical, Some("lag"));
        assert!(
            fired_by(
                &t,
                &event(None, vec![("lag", Status::Ok, Status::Critical)])
            )
            .is_some()
        );
        assert!(fired_by(&t, &event(Some((Status::Ok, Status::Critical)), vec![])).is_none());
    }
}
