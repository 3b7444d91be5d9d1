//! {{name}}: a Watchpost probe. It reports the host's memory use and goes
//! warning or critical above the `warning` and `critical` percentages of
//! its config (90 and 95 unless set). Replace `check` with what you want to
//! watch; `wit/` is the contract it implements (world `probe`).

wit_bindgen::generate!({ path: "wit", world: "probe" });

use watchpost::probe::types::{Attribute, Kind, Measurement, MeasurementInfo, Status};
use watchpost::probe::{config, host, log};

struct Probe;

/// A percentage from the probe's config, or `default`.
fn percent(key: &str, default: f64) -> Result<f64, String> {
    match config::get(key) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("config `{key}` = {text:?} is not a number (a percentage)")),
    }
}

impl Guest for Probe {
    fn describe() -> Info {
        Info {
            name: "{{name}}".into(),
            version: "0.1.0".into(),
            kind: Kind::Host,
            description: "memory use of the host".into(),
            measurements: vec![MeasurementInfo {
                name: "system.memory.utilization".into(),
                unit: "1".into(),
                description: "fraction of memory in use".into(),
            }],
        }
    }

    fn check() -> Result<Report, String> {
        let warning = percent("warning", 90.0)?;
        let critical = percent("critical", 95.0)?;
        let memory = host::memory();
        let used = memory.used_bytes as f64 / memory.total_bytes.max(1) as f64;
        let status = if used * 100.0 >= critical {
            Status::Critical
        } else if used * 100.0 >= warning {
            Status::Warning
        } else {
            Status::Ok
        };
        let message = format!("{:.1}% of memory in use", used * 100.0);
        if status != Status::Ok {
            log::log(log::Level::Warn, &message);
        }
        Ok(Report {
            status,
            message,
            measurements: vec![Measurement {
                name: "system.memory.utilization".into(),
                value: used,
                unit: "1".into(),
                attributes: vec![Attribute {
                    key: "host".into(),
                    value: host::hostname(),
                }],
            }],
        })
    }
}

export!(Probe);
