//! Building what `describe` and `check` return: reports, measurements,
//! statuses, and thresholds a probe applies itself.

use crate::{Attribute, Info, Kind, Measurement, MeasurementInfo, Report, Result, Status, config};

/// What `check` hands the agent for what the probe returned: its report,
/// a report for an error that decides a status, or the message of an
/// error that does not (the run ends as `unknown`).
pub fn settle(outcome: Result<Report>) -> std::result::Result<Report, String> {
    match outcome {
        Ok(report) => Ok(report),
        Err(error) => match error.status() {
            Some(status) => Ok(Report::new(status, error.to_string())),
            None => Err(error.to_string()),
        },
    }
}

impl Status {
    /// Severity order for "worst wins": ok < unknown < warning < critical.
    fn severity(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Unknown => 1,
            Status::Warning => 2,
            Status::Critical => 3,
        }
    }

    /// The worse of two statuses (critical > warning > unknown > ok).
    pub fn worst(self, other: Status) -> Status {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl Info {
    /// A description with this probe's name, kind and one-line summary, at
    /// version `0.0.0` until [`Info::version`] sets it.
    pub fn new(name: &str, kind: Kind, description: &str) -> Self {
        Info {
            name: name.to_string(),
            version: String::from("0.0.0"),
            kind,
            description: description.to_string(),
            measurements: Vec::new(),
        }
    }

    /// Set the version (e.g. `env!("CARGO_PKG_VERSION")`).
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_string();
        self
    }

    /// Declare a measurement the probe emits.
    pub fn measures(mut self, name: &str, unit: &str, description: &str) -> Self {
        self.measurements.push(MeasurementInfo {
            name: name.to_string(),
            unit: unit.to_string(),
            description: description.to_string(),
        });
        self
    }
}

impl Report {
    /// A report with this status and message and no measurements yet.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Report {
            status,
            message: message.into(),
            measurements: Vec::new(),
        }
    }

    /// An `ok` report.
    pub fn ok(message: impl Into<String>) -> Self {
        Report::new(Status::Ok, message)
    }

    /// A `warning` report.
    pub fn warning(message: impl Into<String>) -> Self {
        Report::new(Status::Warning, message)
    }

    /// A `critical` report.
    pub fn critical(message: impl Into<String>) -> Self {
        Report::new(Status::Critical, message)
    }

    /// An `unknown` report.
    pub fn unknown(message: impl Into<String>) -> Self {
        Report::new(Status::Unknown, message)
    }

    /// Add a measurement.
    pub fn with(mut self, measurement: Measurement) -> Self {
        self.measurements.push(measurement);
        self
    }

    /// Add a measurement in place.
    pub fn push(&mut self, measurement: Measurement) {
        self.measurements.push(measurement);
    }

    /// Make the status at least as bad as `status`.
    pub fn worsen(&mut self, status: Status) {
        self.status = self.status.worst(status);
    }
}

/// A report built from findings: problems, each with the status it
/// deserves, and notes. The message lists the problems when there are
/// any (worst first), the notes otherwise; the status is the worst
/// problem's (`ok` without problems).
#[derive(Default)]
pub struct Findings {
    problems: Vec<(Status, String)>,
    notes: Vec<String>,
    measurements: Vec<Measurement>,
}

impl Findings {
    pub fn new() -> Self {
        Findings::default()
    }

    /// Record a problem; a problem with status `ok` is only a note.
    pub fn problem(&mut self, status: Status, text: impl Into<String>) {
        if status == Status::Ok {
            self.notes.push(text.into());
        } else {
            self.problems.push((status, text.into()));
        }
    }

    /// Record something worth saying when all is well.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Add a measurement.
    pub fn push(&mut self, measurement: Measurement) {
        self.measurements.push(measurement);
    }

    /// Run one part of a check on its own, so that a part that fails (a
    /// missing column or extension, an unsupported object, a missing
    /// privilege) is reported as that part's problem and the others go on.
    ///
    /// An error that decides a status (a target unreachable: `critical`;
    /// refused: `warning`) is recorded with it; any other error is
    /// `unknown` for this part: `PART: cannot be checked: ERROR`. Returns
    /// true when the part ran to the end.
    pub fn part(&mut self, part: &str, f: impl FnOnce(&mut Findings) -> Result<()>) -> bool {
        match f(self) {
            Ok(()) => true,
            Err(error) => {
                let status = error.status().unwrap_or(Status::Unknown);
                self.problem(status, format!("{part}: cannot be checked: {error}"));
                false
            }
        }
    }

    /// Take in the findings of one of several like parts (a repository of
    /// several): their problems and notes prefixed with `prefix`, their
    /// measurements as they are.
    pub fn absorb(&mut self, other: Findings, prefix: &str) {
        self.problems.extend(
            other
                .problems
                .into_iter()
                .map(|(status, text)| (status, format!("{prefix}{text}"))),
        );
        self.notes.extend(
            other
                .notes
                .into_iter()
                .map(|text| format!("{prefix}{text}")),
        );
        self.measurements.extend(other.measurements);
    }

    /// The worst status so far.
    pub fn status(&self) -> Status {
        self.problems
            .iter()
            .fold(Status::Ok, |worst, (status, _)| worst.worst(*status))
    }

    /// The report: worst status, problems (worst first) or notes as the
    /// message, `; `-separated.
    pub fn into_report(mut self) -> Report {
        let status = self.status();
        self.problems
            .sort_by_key(|(status, _)| std::cmp::Reverse(status.severity()));
        let message = if self.problems.is_empty() {
            self.notes.join("; ")
        } else {
            let problems: Vec<String> = self.problems.into_iter().map(|(_, p)| p).collect();
            problems.join("; ")
        };
        Report {
            status,
            message,
            measurements: self.measurements,
        }
    }
}

/// A measurement without attributes; add them with [`Measurement::attr`].
pub fn measurement(name: &str, value: f64, unit: &str) -> Measurement {
    Measurement {
        name: name.to_string(),
        value,
        unit: unit.to_string(),
        attributes: Vec::new(),
    }
}

impl Measurement {
    /// Add an attribute (a label such as `mountpoint` = `/`).
    pub fn attr(mut self, key: &str, value: impl Into<String>) -> Self {
        self.attributes.push(Attribute {
            key: key.to_string(),
            value: value.into(),
        });
        self
    }
}

/// Which side of a limit is bad.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Direction {
    Above,
    Below,
}

/// A warning and a critical limit that a probe applies to one value.
///
/// (The agent can apply its own Nagios-range thresholds on top of these; a
/// probe's own limits are its sensible defaults.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold {
    /// Values past this are `warning`.
    pub warning: f64,
    /// Values past this are `critical`.
    pub critical: f64,
    direction: Direction,
}

impl Threshold {
    /// Bad when the value is above a limit (e.g. disk usage).
    pub fn above(warning: f64, critical: f64) -> Self {
        Threshold {
            warning,
            critical,
            direction: Direction::Above,
        }
    }

    /// Bad when the value is below a limit (e.g. connected standbys).
    pub fn below(warning: f64, critical: f64) -> Self {
        Threshold {
            warning,
            critical,
            direction: Direction::Below,
        }
    }

    /// The same threshold with the limits overridden by the config keys
    /// `warning_key` and `critical_key` when they are set. An error names
    /// the key when a value is not a number or the two are the wrong way round.
    pub fn configured(mut self, warning_key: &str, critical_key: &str) -> Result<Self> {
        let warning = config::get::<f64>(warning_key)?;
        let critical = config::get::<f64>(critical_key)?;
        if let Some(critical) = critical {
            self.critical = critical;
        }
        match warning {
            Some(warning) => self.warning = warning,
            // Only the critical limit was set: a default warning limit past
            // it would never fire, so move it to the critical limit.
            None if !self.ordered() => self.warning = self.critical,
            None => {}
        }
        if !self.ordered() {
            let (relation, bound) = match self.direction {
                Direction::Above => ("at most", "above"),
                Direction::Below => ("at least", "below"),
            };
            crate::bail!(
                "config `{warning_key}` = {} must be {relation} `{critical_key}` = {} \
                 (this probe alerts on values {bound} the limits)",
                self.warning,
                self.critical
            );
        }
        Ok(self)
    }

    fn ordered(&self) -> bool {
        match self.direction {
            Direction::Above => self.warning <= self.critical,
            Direction::Below => self.warning >= self.critical,
        }
    }

    /// An upper threshold that exists only when the config sets at least one
    /// of the two keys (a missing warning limit equals the critical one; a
    /// missing critical limit is infinite).
    pub fn optional_above(warning_key: &str, critical_key: &str) -> Result<Option<Self>> {
        let critical = config::get::<f64>(critical_key)?;
        let warning = config::get::<f64>(warning_key)?;
        if warning.is_none() && critical.is_none() {
            return Ok(None);
        }
        let critical = critical.unwrap_or(f64::INFINITY);
        Threshold::above(warning.unwrap_or(critical), critical)
            .configured(warning_key, critical_key)
            .map(Some)
    }

    /// A lower threshold that exists only when the config sets at least one
    /// of the two keys (a missing warning limit equals the critical one; a
    /// missing critical limit is minus infinity).
    pub fn optional_below(warning_key: &str, critical_key: &str) -> Result<Option<Self>> {
        let critical = config::get::<f64>(critical_key)?;
        let warning = config::get::<f64>(warning_key)?;
        if warning.is_none() && critical.is_none() {
            return Ok(None);
        }
        let critical = critical.unwrap_or(f64::NEG_INFINITY);
        Threshold::below(warning.unwrap_or(critical), critical)
            .configured(warning_key, critical_key)
            .map(Some)
    }

    /// The status of `value` against the limits (limits themselves are ok).
    pub fn status(&self, value: f64) -> Status {
        let past = |limit: f64| match self.direction {
            Direction::Above => value > limit,
            Direction::Below => value < limit,
        };
        if past(self.critical) {
            Status::Critical
        } else if past(self.warning) {
            Status::Warning
        } else {
            Status::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_wins() {
        assert_eq!(Status::Ok.worst(Status::Warning), Status::Warning);
        assert_eq!(Status::Critical.worst(Status::Warning), Status::Critical);
        assert_eq!(Status::Unknown.worst(Status::Ok), Status::Unknown);
        assert_eq!(Status::Unknown.worst(Status::Warning), Status::Warning);
    }

    #[test]
    fn findings_report_the_worst_problem_first() {
        let mut findings = Findings::new();
        findings.note("all fine here");
        assert_eq!(findings.status(), Status::Ok);
        findings.problem(Status::Warning, "a bit slow");
        findings.problem(Status::Critical, "down");
        findings.problem(Status::Ok, "just a note");
        let report = findings.into_report();
        assert_eq!(report.status, Status::Critical);
        assert_eq!(report.message, "down; a bit slow");
        let mut quiet = Findings::new();
        quiet.note("one");
        quiet.note("two");
        assert_eq!(quiet.into_report().message, "one; two");
    }

    #[test]
    fn a_failing_part_is_unknown_and_the_others_report() {
        let mut findings = Findings::new();
        assert!(!findings.part("statements", |_| Err(crate::Error::msg("no column `x`"))));
        assert!(findings.part("connections", |f| {
            f.push(measurement("c", 1.0, "1"));
            Ok(())
        }));
        let report = findings.into_report();
        assert_eq!(report.status, Status::Unknown);
        assert_eq!(
            report.message,
            "statements: cannot be checked: no column `x`"
        );
        assert_eq!(report.measurements.len(), 1);
    }

    #[test]
    fn thresholds_compare_by_direction() {
        let disk = Threshold::above(85.0, 95.0);
        assert_eq!(disk.status(85.0), Status::Ok);
        assert_eq!(disk.status(85.1), Status::Warning);
        assert_eq!(disk.status(99.0), Status::Critical);
        let standbys = Threshold::below(1.0, 1.0);
        assert_eq!(standbys.status(1.0), Status::Ok);
        assert_eq!(standbys.status(0.0), Status::Critical);
    }
}
