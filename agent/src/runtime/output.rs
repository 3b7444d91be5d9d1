//! Checking what a probe returned against the contract, and turning it
//! into the agent's [`Report`](crate::report::Report).
//!
//! A report that breaks the contract (a bad name, a NaN, ten thousand
//! measurements) is refused as `invalid-output`; an overlong message is
//! only truncated, with a marker, because the rest of the report is fine.
//!
//! Two attribute keys of one measurement that become the same Prometheus
//! label (`a.b` and `a_b` are both `a_b`) are refused too: exported as
//! they are, they would make Prometheus reject the whole scrape, every
//! metric of the node with it.

use super::bindings::types;
use super::{MeasurementInfo, ProbeInfo};
use crate::report::{ErrorKind, Measurement, RunError, Status};
use crate::util::truncate_utf8;

pub const MAX_MESSAGE_BYTES: usize = 1024;
pub const MAX_MEASUREMENTS: usize = 1000;
pub const MAX_ATTRIBUTES: usize = 32;
pub const MAX_NAME_BYTES: usize = 255;
pub const MAX_ATTRIBUTE_BYTES: usize = 256;

/// A checked report, before timing and memory are attached.
pub struct Checked {
    pub status: Status,
    pub message: String,
    pub measurements: Vec<Measurement>,
}

pub fn status(s: types::Status) -> Status {
    match s {
        types::Status::Ok => Status::Ok,
        types::Status::Warning => Status::Warning,
        types::Status::Critical => Status::Critical,
        types::Status::Unknown => Status::Unknown,
    }
}

/// Truncate a message to [`MAX_MESSAGE_BYTES`], saying how long it was.
pub fn clip_message(message: &str) -> String {
    let message = message.trim();
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_string();
    }
    format!(
        "{}… [truncated: the message was {} bytes]",
        truncate_utf8(message, MAX_MESSAGE_BYTES),
        message.len()
    )
}

fn invalid(message: String) -> RunError {
    RunError::new(ErrorKind::InvalidOutput, message)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The Prometheus label an attribute key becomes: every character but
/// ASCII letters, digits, `_` and `:` as `_`, a leading digit prefixed
/// with `_`, and the exporter's own labels (`probe`, `node`, `le`)
/// prefixed with `attr_`.
pub fn label_name(key: &str) -> String {
    let mut out = crate::util::prometheus_name(key);
    if matches!(out.as_str(), "probe" | "node" | "le") {
        out.insert_str(0, "attr_");
    }
    out
}

/// Largest description (of a probe or a measurement) kept from
/// `describe`, in bytes; longer ones are truncated with a marker.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;

/// Check what `describe` returned against the contract, as a report is
/// checked: at most [`MAX_MEASUREMENTS`] measurements with valid, distinct
/// names and units of at most [`MAX_ATTRIBUTE_BYTES`]; a name and version
/// of at most [`MAX_NAME_BYTES`]. Descriptions are truncated. Anything
/// else is `invalid-output`, and the probe does not load.
pub fn info(info: types::Info) -> Result<ProbeInfo, RunError> {
    let clip = |text: &str, max: usize| {
        let text = text.trim();
        if text.len() <= max {
            text.to_string()
        } else {
            format!("{}… [truncated]", truncate_utf8(text, max))
        }
    };
    if info.name.len() > MAX_NAME_BYTES || info.version.len() > MAX_NAME_BYTES {
        return Err(invalid(format!(
            "`describe` returned a name or version over {MAX_NAME_BYTES} bytes"
        )));
    }
    if info.measurements.len() > MAX_MEASUREMENTS {
        return Err(invalid(format!(
            "`describe` lists {} measurements; at most {MAX_MEASUREMENTS} are allowed",
            info.measurements.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(info.measurements.len());
    let mut measurements = Vec::with_capacity(info.measurements.len());
    for m in info.measurements {
        if !valid_name(&m.name) {
            return Err(invalid(format!(
                "`describe` lists the measurement name {:?}, which is invalid: use 1 to \
                 {MAX_NAME_BYTES} letters, digits, `.`, `_` or `-`",
                truncate_utf8(&m.name, 64)
            )));
        }
        if m.unit.len() > MAX_ATTRIBUTE_BYTES {
            return Err(invalid(format!(
                "`describe` gives measurement `{}` an overlong unit",
                m.name
            )));
        }
        if !seen.insert(m.name.clone()) {
            return Err(invalid(format!(
                "`describe` lists measurement `{}` twice",
                m.name
            )));
        }
        measurements.push(MeasurementInfo {
            description: clip(&m.description, MAX_DESCRIPTION_BYTES),
            name: m.name,
            unit: m.unit,
        });
    }
    Ok(ProbeInfo {
        name: info.name,
        version: info.version,
        kind: kind_name(info.kind).to_string(),
        description: clip(&info.description, MAX_DESCRIPTION_BYTES),
        measurements,
    })
}

fn kind_name(kind: types::Kind) -> &'static str {
    match kind {
        types::Kind::Availability => "availability",
        types::Kind::Consistency => "consistency",
        types::Kind::Integrity => "integrity",
        types::Kind::Performance => "performance",
        types::Kind::Host => "host",
    }
}

/// Check a report from `check` against the contract.
pub fn check(report: types::Report) -> Result<Checked, RunError> {
    if report.measurements.len() > MAX_MEASUREMENTS {
        return Err(invalid(format!(
            "the report has {} measurements; at most {MAX_MEASUREMENTS} are allowed",
            report.measurements.len()
        )));
    }
    let mut measurements = Vec::with_capacity(report.measurements.len());
    for m in report.measurements {
        if !valid_name(&m.name) {
            return Err(invalid(format!(
                "measurement name {:?} is invalid: use 1 to {MAX_NAME_BYTES} letters, digits, \
                 `.`, `_` or `-`",
                truncate_utf8(&m.name, 64)
            )));
        }
        if !m.value.is_finite() {
            return Err(invalid(format!(
                "measurement `{}` has value {}; values must be finite",
                m.name, m.value
            )));
        }
        if m.attributes.len() > MAX_ATTRIBUTES {
            return Err(invalid(format!(
                "measurement `{}` has {} attributes; at most {MAX_ATTRIBUTES} are allowed",
                m.name,
                m.attributes.len()
            )));
        }
        if m.unit.len() > MAX_ATTRIBUTE_BYTES {
            return Err(invalid(format!(
                "measurement `{}` has an overlong unit",
                m.name
            )));
        }
        let mut attributes = Vec::with_capacity(m.attributes.len());
        for a in m.attributes {
            if !valid_name(&a.key) || a.value.len() > MAX_ATTRIBUTE_BYTES {
                return Err(invalid(format!(
                    "measurement `{}` has an invalid attribute {:?}: keys are names like \
                     measurement names, values at most {MAX_ATTRIBUTE_BYTES} bytes",
                    m.name,
                    truncate_utf8(&a.key, 64)
                )));
            }
            let label = label_name(&a.key);
            if let Some((other, _)) = attributes
                .iter()
                .find(|(k, _): &&(String, String)| label_name(k) == label)
            {
                return Err(invalid(format!(
                    "measurement `{}` has the attributes `{other}` and `{}`, which are the same \
                     label `{label}` once exported: rename one of them",
                    m.name, a.key
                )));
            }
            attributes.push((a.key, a.value));
        }
        measurements.push(Measurement {
            name: m.name,
            value: m.value,
            unit: m.unit,
            attributes,
        });
    }
    Ok(Checked {
        status: status(report.status),
        message: clip_message(&report.message),
        measurements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(measurements: Vec<types::Measurement>) -> types::Report {
        types::Report {
            status: types::Status::Ok,
            message: "fine".into(),
            measurements,
        }
    }

    fn m(name: &str, value: f64) -> types::Measurement {
        types::Measurement {
            name: name.into(),
            value,
            unit: "1".into(),
            attributes: vec![],
        }
    }

    #[test]
    fn a_good_report_passes() {
        let checked = check(report(vec![m("system.cpu.utilization", 0.5)])).unwrap();
        assert_eq!(checked.measurements[0].name, "system.cpu.utilization");
    }

    #[test]
    fn bad_names_and_values_are_invalid_output() {
        for bad in [
            m("", 1.0),
            m("has space", 1.0),
            m("ok", f64::NAN),
            m("ok", f64::INFINITY),
        ] {
            let err = check(report(vec![bad])).err().unwrap();
            assert_eq!(err.kind, ErrorKind::InvalidOutput, "{err}");
        }
        let many = (0..=MAX_MEASUREMENTS).map(|_| m("x", 1.0)).collect();
        assert_eq!(
            check(report(many)).err().unwrap().kind,
            ErrorKind::InvalidOutput
        );
    }

    #[test]
    fn attributes_that_become_the_same_label_are_invalid_output() {
        let with = |keys: &[&str]| {
            let mut one = m("x", 1.0);
            one.attributes = keys
                .iter()
                .map(|k| types::Attribute {
                    key: k.to_string(),
                    value: "v".into(),
                })
                .collect();
            check(report(vec![one]))
        };
        for clash in [
            ["a.b", "a_b"],
            ["a-b", "a.b"],
            ["x", "x"],
            ["probe", "attr_probe"],
        ] {
            let err = with(&clash).err().unwrap();
            assert_eq!(err.kind, ErrorKind::InvalidOutput);
            assert!(err.message.contains("same"), "{err}");
            assert!(err.message.contains(clash[1]), "{err}");
        }
        assert!(with(&["a.b", "a.c", "ab"]).is_ok());
    }

    fn described(measurements: Vec<(&str, &str)>) -> types::Info {
        types::Info {
            name: "p".into(),
            version: "1".into(),
            kind: types::Kind::Host,
            description: "d".repeat(10_000),
            measurements: measurements
                .into_iter()
                .map(|(name, unit)| types::MeasurementInfo {
                    name: name.into(),
                    unit: unit.into(),
                    description: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn describe_output_is_checked_like_a_report() {
        let fine = info(described(vec![("a.b", "By"), ("c", "1")])).unwrap();
        assert_eq!(fine.measurements.len(), 2);
        assert!(fine.description.len() < MAX_DESCRIPTION_BYTES + 20);
        let long_unit = "u".repeat(MAX_ATTRIBUTE_BYTES + 1);
        for bad in [
            described(vec![("has space", "1")]),
            described(vec![("x", "1"), ("x", "1")]),
            described(vec![("x", long_unit.as_str())]),
            described(vec![("x", "1"); MAX_MEASUREMENTS + 1]),
        ] {
            let err = info(bad).err().unwrap();
            assert_eq!(err.kind, ErrorKind::InvalidOutput, "{err}");
        }
    }

    #[test]
    fn long_messages_are_truncated_with_a_marker() {
        let long = "é".repeat(100_000);
        let clipped = clip_message(&long);
        assert!(clipped.len() < MAX_MESSAGE_BYTES + 100);
        assert!(
            clipped.ends_with("[truncated: the message was 200000 bytes]"),
            "{clipped}"
        );
    }
}
