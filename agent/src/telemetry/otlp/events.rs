//! The OTLP log records (events) an operator reads next to the metrics:
//! confirmed state changes (`watchpost.state.change`), flapping starting
//! or stopping (`watchpost.flapping`), and every remediation decision or
//! outcome (`watchpost.remediation`, with the audit record's fields as
//! attributes), e.g. "restarted postgresql at 12:03:04 because pg-alive
//! was critical".

use crate::events::{RemediationEvent, RunEvent};
use crate::report::Status;
use opentelemetry::logs::{AnyValue, LogRecord, Logger, Severity};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger};
use std::time::SystemTime;

fn severity(status: Status) -> Severity {
    match status {
        Status::Ok => Severity::Info,
        Status::Warning | Status::Unknown => Severity::Warn,
        Status::Critical => Severity::Error,
    }
}

/// A record of `event` at `at` with its severity and body.
fn record(
    logger: &SdkLogger,
    event: &'static str,
    at: SystemTime,
    severity: Severity,
    body: String,
) -> SdkLogRecord {
    let mut record = logger.create_log_record();
    record.set_event_name(event);
    record.set_timestamp(at);
    record.set_observed_timestamp(at);
    record.set_severity_number(severity);
    record.set_severity_text(severity.name());
    record.set_body(AnyValue::from(body));
    record
}

/// Emit the state changes of one run, if it made any.
pub fn state_changes(logger: &SdkLogger, run: &RunEvent, target: &str, node: &str) {
    let changes = &run.changes;
    let emit = |event: &'static str,
                severity: Severity,
                body: String,
                attributes: Vec<(&'static str, AnyValue)>| {
        let mut record = record(logger, event, run.at, severity, body);
        record.add_attribute("probe", run.probe.clone());
        record.add_attribute("target", target.to_string());
        record.add_attribute("node", node.to_string());
        for (key, value) in attributes {
            record.add_attribute(key, value);
        }
        logger.emit(record);
    };
    let message = &run.report.message;
    if let Some(change) = &changes.hard {
        emit(
            "watchpost.state.change",
            severity(change.to),
            format!(
                "{} is {} (was {}): {message}",
                run.probe, change.to, change.from
            ),
            vec![
                ("from", change.from.as_str().into()),
                ("to", change.to.as_str().into()),
                ("state_type", "hard".into()),
            ],
        );
    }
    for (measurement, change) in &changes.rules {
        emit(
            "watchpost.state.change",
            severity(change.to),
            format!(
                "{} {measurement} is {} (was {})",
                run.probe, change.to, change.from
            ),
            vec![
                ("from", change.from.as_str().into()),
                ("to", change.to.as_str().into()),
                ("state_type", "hard".into()),
                ("measurement", measurement.clone().into()),
            ],
        );
    }
    if let Some(flapping) = changes.flapping {
        let body = if flapping {
            format!(
                "{} started flapping; its state changes are held back",
                run.probe
            )
        } else {
            format!("{} stopped flapping", run.probe)
        };
        emit(
            "watchpost.flapping",
            if flapping {
                Severity::Warn
            } else {
                Severity::Info
            },
            body,
            vec![("flapping", flapping.into())],
        );
    }
}

/// Emit one remediation decision or outcome, with the audit record's fields.
pub fn remediation(logger: &SdkLogger, event: &RemediationEvent, node: &str) {
    use crate::events::Decision;
    let severity = match event.decision {
        Decision::Failed | Decision::NotVerified | Decision::Interrupted => Severity::Error,
        Decision::Fired | Decision::Succeeded | Decision::DryRun => Severity::Info,
        _ => Severity::Warn,
    };
    let mut record = record(
        logger,
        "watchpost.remediation",
        event.at,
        severity,
        event.message.clone(),
    );
    record.add_attribute("id", event.id.clone());
    record.add_attribute("remediation", event.remediation.clone());
    record.add_attribute("probe", event.probe.clone());
    record.add_attribute("decision", event.decision.as_str());
    if let Some(reason) = &event.reason {
        record.add_attribute("reason", reason.clone());
    }
    record.add_attribute("action", event.action.clone());
    record.add_attribute("status", event.status.as_str());
    record.add_attribute("node", node.to_string());
    logger.emit(record);
}
