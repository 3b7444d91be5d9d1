//! Start-up reconciliation of the audit log: an action that was `fired`
//! and has no outcome was cut short by a crash, a `kill -9` or a shutdown
//! that could not wait for it. It is never silently re-run (it may have
//! half happened: a fence without a promotion); it is reported instead —
//! an `interrupted` record with the same id, an error in the log, a count,
//! an event — and the ledger is brought up to date with the fire (its
//! cooldown, its incident settled), in case the crash fell between the
//! `fired` record and the ledger's save.

use super::Remediator;
use super::audit::{self, AuditRecord};
use crate::events::Decision;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// `fired` records of `records` that no outcome follows, oldest first.
pub fn unfinished(records: impl IntoIterator<Item = AuditRecord>) -> Vec<AuditRecord> {
    let mut open: BTreeMap<String, AuditRecord> = BTreeMap::new();
    for record in records {
        if record.decision == Decision::Fired {
            open.insert(record.id.clone(), record);
        } else if record.decision.is_outcome() {
            open.remove(&record.id);
        }
    }
    let mut left: Vec<AuditRecord> = open.into_values().collect();
    left.sort_by_key(|r| r.at);
    left
}

/// Record every unfinished action of the audit log as interrupted.
pub fn interrupted_actions(core: &Remediator) {
    let records = match audit::read_all(core.audit.path()) {
        Ok(records) => records,
        Err(e) => {
            tracing::error!(
                "cannot read the audit log {} to find interrupted actions: {e}",
                core.audit.path().display()
            );
            return;
        }
    };
    for fired in unfinished(records) {
        let onset = fired.detail["trigger"]["onset_ms"].as_u64();
        core.with_ledger(|l| {
            let guards = l.guards(&fired.remediation, false);
            // The ledger's fire is stamped when it was decided, a moment
            // before the record: the same fire, not a second one.
            let same = |t: SystemTime| {
                fired.at.duration_since(t).unwrap_or_default() < std::time::Duration::from_secs(10)
                    || t >= fired.at
            };
            if !guards.fires.iter().any(|t| same(*t)) && guards.last_fired.is_none_or(|t| !same(t))
            {
                guards.fired(fired.at);
            }
            if let Some(onset) = onset {
                l.data.settled.insert(fired.remediation.clone(), onset);
            }
            if let Err(e) = l.save() {
                tracing::error!("cannot save the remediation ledger: {e}");
            }
        });
        let message = format!(
            "interrupted: the agent stopped while this action ran (fired at {}: {}); it is not re-run — check what it left done",
            humantime::format_rfc3339_millis(fired.at),
            fired.message
        );
        core.record(AuditRecord {
            at: SystemTime::now(),
            node: core.node(),
            decision: Decision::Interrupted,
            reason: Some("agent-stopped".into()),
            message,
            detail: json!({"fired_at": humantime::format_rfc3339_millis(fired.at).to_string()}),
            ..fired
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;
    use serde_json::Value;

    fn record(id: &str, decision: Decision) -> AuditRecord {
        AuditRecord {
            id: id.into(),
            at: SystemTime::now(),
            node: "n".into(),
            remediation: "r".into(),
            probe: "p".into(),
            decision,
            reason: None,
            action: "failover".into(),
            status: Status::Critical,
            message: String::new(),
            detail: Value::Null,
        }
    }

    #[test]
    fn a_fired_record_without_an_outcome_is_unfinished() {
        let left = unfinished([
            record("a", Decision::Fired),
            record("a", Decision::Step),
            record("a", Decision::Succeeded),
            record("b", Decision::Fired),
            record("b", Decision::Step),
            record("c", Decision::Fired),
            record("c", Decision::Interrupted),
        ]);
        assert_eq!(
            left.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
    }
}
