//! When a remediation is due, and what it is told. A trigger holds while
//! its probe (or one of the probe's thresholds) is *hard* at the level
//! `on.status` names — never on a soft state. `warning` holds for warning
//! and critical; `critical` only for critical; `unknown` only for unknown
//! ([`holds`]). Each stretch during which it holds is one [`Incident`],
//! named by the level's onset, and is settled once.

use crate::config::Remediation;
use crate::report::{Report, Status};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

/// Whether a hard status satisfies a trigger's (or an `unless`'s) status.
pub fn holds(status: Status, wanted: Status) -> bool {
    crate::policy::confirm::level_holds(status, wanted)
}

/// One incident of one remediation, as decided and acted on.
#[derive(Clone, Debug)]
pub struct Incident {
    pub remediation: Remediation,
    /// The hard status that holds.
    pub status: Status,
    /// The onset of the incident (ms since the Unix epoch; 0: unrecorded).
    pub onset: u64,
    /// The probe's last report when the decision was made.
    pub report: Option<Arc<Report>>,
    /// Shared by the decision and its outcome records.
    pub id: String,
}

impl Incident {
    pub fn probe(&self) -> &str {
        &self.remediation.on.probe
    }

    pub fn message(&self) -> &str {
        self.report.as_ref().map_or("", |r| r.message.as_str())
    }

    /// "probe "alive" is critical: connection refused"
    pub fn because(&self) -> String {
        format!(
            "probe {:?} is {}: {}",
            self.probe(),
            self.status,
            self.message()
        )
    }

    fn measurements(&self) -> Value {
        self.report
            .as_ref()
            .map_or(Value::Array(vec![]), |r| json!(r.measurements))
    }

    /// The trigger, for the decision's audit record.
    pub fn detail(&self) -> Value {
        json!({
            "trigger": {
                "probe": self.probe(),
                "measurement": self.remediation.on.measurement,
                "status": self.status,
                "onset_ms": self.onset,
                "message": self.message(),
                "measurements": self.measurements(),
                "error": self.report.as_ref().and_then(|r| r.error.as_ref()),
            }
        })
    }

    /// The environment of exec-style actions (`WATCHPOST_*`).
    pub fn env(&self, node: &str) -> BTreeMap<String, String> {
        let measurements = serde_json::to_string(&self.measurements()).unwrap_or_default();
        BTreeMap::from([
            ("WATCHPOST_EVENT_ID".to_string(), self.id.clone()),
            (
                "WATCHPOST_REMEDIATION".to_string(),
                self.remediation.name.clone(),
            ),
            ("WATCHPOST_PROBE".to_string(), self.probe().to_string()),
            ("WATCHPOST_STATUS".to_string(), self.status.to_string()),
            ("WATCHPOST_MESSAGE".to_string(), self.message().to_string()),
            ("WATCHPOST_MEASUREMENTS".to_string(), measurements),
            ("WATCHPOST_NODE".to_string(), node.to_string()),
        ])
    }

    /// The JSON body of webhooks.
    pub fn event(&self, node: &str, decision: &str, message: &str) -> Value {
        json!({
            "event": "watchpost.remediation",
            "id": self.id,
            "decision": decision,
            "node": node,
            "remediation": self.remediation.name,
            "action": self.remediation.action.kind(),
            "probe": self.probe(),
            "status": self.status,
            "message": message,
            "probe_message": self.message(),
            "measurements": self.measurements(),
            "at": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        })
    }
}

/// A record of `incident` with this decision.
pub fn record_of(
    core: &super::Remediator,
    incident: &Incident,
    decision: crate::events::Decision,
    reason: Option<&str>,
    message: String,
    detail: Value,
) -> super::audit::AuditRecord {
    super::audit::AuditRecord {
        id: incident.id.clone(),
        at: SystemTime::now(),
        node: core.node(),
        remediation: incident.remediation.name.clone(),
        probe: incident.probe().to_string(),
        decision,
        reason: reason.map(String::from),
        action: incident.remediation.action.kind().into(),
        status: incident.status,
        message,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_holds_for_critical_but_not_unknown() {
        assert!(holds(Status::Critical, Status::Warning));
        assert!(holds(Status::Warning, Status::Warning));
        assert!(!holds(Status::Unknown, Status::Warning));
        assert!(!holds(Status::Warning, Status::Critical));
        assert!(holds(Status::Unknown, Status::Unknown));
    }
}
