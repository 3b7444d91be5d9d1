//! What one probe run produced: the data that flows from the runtime to the
//! policy, the status API, telemetry and the command line.
//!
//! These are the agent's own types, decoupled from the WIT bindings so that
//! everything downstream of the runtime can be tested without Wasm.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A check's status, in the Nagios plugin convention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    /// The Nagios plugin exit code: 0 ok, 1 warning, 2 critical, 3 unknown.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// The value exported as the probe status gauge (same as the exit code).
    pub fn as_gauge(self) -> f64 {
        f64::from(self.exit_code())
    }

    /// Severity for "worst wins": ok < unknown < warning < critical.
    fn severity(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Unknown => 1,
            Status::Warning => 2,
            Status::Critical => 3,
        }
    }

    /// The worse of two statuses.
    pub fn worst(self, other: Status) -> Status {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// Upper-case word used in Nagios output (`OK`, `WARNING`, ...).
    pub fn nagios_word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// Lower-case word (`ok`, `warning`, ...), as in JSON and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }

    /// Parse the lower-case word.
    pub fn parse(word: &str) -> Option<Status> {
        match word {
            "ok" => Some(Status::Ok),
            "warning" => Some(Status::Warning),
            "critical" => Some(Status::Critical),
            "unknown" => Some(Status::Unknown),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One number a probe observed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// Labels, in the order the probe gave them.
    pub attributes: Vec<(String, String)>,
}

impl Measurement {
    /// The value of attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a run did not produce a trustworthy report. The run's status is then
/// `unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The run outlived its deadline and was cut off.
    Timeout,
    /// The probe tried to use more memory than its cap.
    Memory,
    /// The probe trapped (panicked, hit `unreachable`, divided by zero, ...).
    Trap,
    /// The probe used a capability (e.g. a database target) it was not granted.
    Denied,
    /// The probe returned a report that breaks the contract (bad names,
    /// non-finite values, too many measurements).
    InvalidOutput,
    /// The probe itself returned an error: it could not decide a status.
    Probe,
    /// The probe could not be loaded or instantiated.
    Load,
    /// The agent itself failed while serving the probe (out of file
    /// descriptors or memory): nothing is known about what it checks.
    Agent,
}

impl ErrorKind {
    /// The kebab-case name used in JSON, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Memory => "memory",
            ErrorKind::Trap => "trap",
            ErrorKind::Denied => "denied",
            ErrorKind::InvalidOutput => "invalid-output",
            ErrorKind::Probe => "probe",
            ErrorKind::Load => "load",
            ErrorKind::Agent => "agent",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed run's error kind and message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RunError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RunError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// The result of one run of one probe.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub status: Status,
    pub message: String,
    pub measurements: Vec<Measurement>,
    /// Set when the run failed; `status` is then `unknown`.
    pub error: Option<RunError>,
    /// Wall-clock time of the run (instantiate + check).
    #[serde(with = "duration_ms")]
    pub duration: Duration,
    /// Peak linear memory the run used, in bytes.
    pub peak_memory: u64,
}

impl Clone for Report {
    fn clone(&self) -> Self {
        Report {
            status: self.status,
            message: self.message.clone(),
            measurements: self.measurements.clone(),
            error: self.error.clone(),
            duration: self.duration,
            peak_memory: self.peak_memory,
        }
    }

    /// Field by field, into the buffers `self` already holds: a probe's
    /// state keeps its last report this way on every run.
    fn clone_from(&mut self, source: &Self) {
        let Report {
            status,
            message,
            measurements,
            error,
            duration,
            peak_memory,
        } = source;
        self.status = *status;
        self.message.clone_from(message);
        self.measurements.clone_from(measurements);
        self.error.clone_from(error);
        self.duration = *duration;
        self.peak_memory = *peak_memory;
    }
}

impl Report {
    /// The report of a run that failed with `error`.
    pub fn failed(error: RunError, duration: Duration, peak_memory: u64) -> Self {
        Report {
            status: Status::Unknown,
            message: error.message.clone(),
            measurements: Vec::new(),
            error: Some(error),
            duration,
            peak_memory,
        }
    }
}

/// (De)serialize a `Duration` as fractional milliseconds.
pub mod duration_ms {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }

    /// A value no `Duration` holds (say `1e300` in a damaged state file) is
    /// an error, never a panic.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Duration::try_from_secs_f64(ms.max(0.0) / 1000.0)
            .map_err(|_| D::Error::custom(format!("{ms} ms is not a duration")))
    }
}

#[cfg(test)]
impl Report {
    /// A report for unit tests: `status` and unitless measurements
    /// `(name, value)`, nothing else.
    pub fn with_values(status: Status, values: &[(&str, f64)]) -> Report {
        Report {
            status,
            message: String::new(),
            measurements: values
                .iter()
                .map(|(name, value)| Measurement {
                    name: name.to_string(),
                    value: *value,
                    unit: String::new(),
                    attributes: vec![],
                })
                .collect(),
            error: None,
            duration: std::time::Duration::ZERO,
            peak_memory: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[derive(serde::Deserialize)]
    struct Timed {
        #[serde(with = "super::duration_ms")]
        d: Duration,
    }

    #[test]
    fn durations_too_large_to_hold_are_errors_not_panics() {
        let ok: Timed = serde_json::from_str(r#"{"d": 1500.0}"#).unwrap();
        assert_eq!(ok.d, Duration::from_millis(1500));
        assert!(serde_json::from_str::<Timed>(r#"{"d": 1e300}"#).is_err());
    }
}
