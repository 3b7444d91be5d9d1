//! Printing a report as text, JSON or Nagios plugin output.

use crate::config::ThresholdRule;
use crate::policy::thresholds::rule_for;
use crate::report::{Measurement, Report, Status};
use serde_json::json;
use std::fmt::Write as _;

/// The JSON object of `check --format json`.
pub fn json(probe: &str, status: Status, report: &Report) -> serde_json::Value {
    json!({
        "probe": probe,
        "status": status,
        "message": report.message,
        "measurements": report.measurements.iter().map(|m| json!({
            "name": m.name,
            "value": m.value,
            "unit": m.unit,
            "attributes": m.attributes.iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                .collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "duration_ms": report.duration.as_secs_f64() * 1000.0,
        "peak_memory_bytes": report.peak_memory,
        "error": report.error.as_ref().map(|e| json!({"kind": e.kind, "message": e.message})),
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The series label of a measurement: `name` or `name{k="v",...}`.
pub fn series(m: &Measurement) -> String {
    if m.attributes.is_empty() {
        return m.name.clone();
    }
    let labels: Vec<String> = m
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{}{{{}}}", m.name, labels.join(","))
}

/// Human-readable output.
pub fn text(probe: &str, status: Status, report: &Report) -> String {
    let mut out = format!(
        "{probe}: {} - {}\n",
        status.nagios_word(),
        one_line(&report.message)
    );
    if let Some(error) = &report.error {
        let _ = writeln!(
            out,
            "  error: {} ({})",
            error.kind,
            one_line(&error.message)
        );
    }
    for m in &report.measurements {
        let unit = if m.unit.is_empty() || m.unit == "1" {
            String::new()
        } else {
            format!(" {}", m.unit)
        };
        let _ = writeln!(out, "  {} = {}{unit}", series(m), m.value);
    }
    let _ = writeln!(out, "  ({:.1} ms)", report.duration.as_secs_f64() * 1000.0);
    out
}

/// Nagios perfdata unit for a UCUM unit: s, %, B and none are the ones the
/// plugin guidelines know; bytes are scaled by the reader, not here.
fn nagios_unit(unit: &str) -> &'static str {
    match unit {
        "s" => "s",
        "ms" => "ms",
        "us" => "us",
        "%" => "%",
        "By" => "B",
        "{count}" | "c" => "c",
        _ => "",
    }
}

/// A perfdata label: the name plus attribute values, without `'` or `=`.
fn label(m: &Measurement) -> String {
    let mut label = m.name.clone();
    if !m.attributes.is_empty() {
        let values: Vec<&str> = m.attributes.iter().map(|(_, v)| v.as_str()).collect();
        let _ = write!(label, "[{}]", values.join(","));
    }
    label.replace(['\'', '='], "_")
}

/// `STATUS - message | 'label'=value[unit];warn;crit;; ...`
pub fn nagios(status: Status, report: &Report, rules: &[ThresholdRule]) -> String {
    let message = one_line(&report.message).replace('|', "/");
    let mut out = format!("{} - {message}", status.nagios_word());
    if !report.measurements.is_empty() {
        out.push_str(" |");
        for m in &report.measurements {
            let rule = rule_for(rules, &m.name);
            let warn = rule
                .and_then(|r| r.warning.as_ref())
                .map(|r| r.to_string())
                .unwrap_or_default();
            let crit = rule
                .and_then(|r| r.critical.as_ref())
                .map(|r| r.to_string())
                .unwrap_or_default();
            let _ = write!(
                out,
                " '{}'={}{};{warn};{crit};;",
                label(m),
                m.value,
                nagios_unit(&m.unit)
            );
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report() -> Report {
        Report {
            status: Status::Warning,
            message: "disk | nearly\nfull".into(),
            measurements: vec![Measurement {
                name: "system.filesystem.utilization".into(),
                value: 0.9,
                unit: "1".into(),
                attributes: vec![("mountpoint".into(), "/var/lib/it's".into())],
            }],
            error: None,
            duration: Duration::from_millis(2),
            peak_memory: 0,
        }
    }

    #[test]
    fn nagios_output_keeps_the_format_parseable() {
        let out = nagios(Status::Warning, &report(), &[]);
        assert_eq!(
            out,
            "WARNING - disk / nearly full | 'system.filesystem.utilization[/var/lib/it_s]'=0.9;;;;\n"
        );
    }
}
