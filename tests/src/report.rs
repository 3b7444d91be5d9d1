//! Running a probe once through `watchpost check --format json` and
//! reading its report: status, message and measurements ([`Checked`], or
//! the free functions over any report's JSON).

use crate::cli::{Outcome, assert_no_panic, watchpost_run};
use serde_json::Value;
use std::path::Path;

/// A report printed by `watchpost check --format json`.
#[derive(Debug)]
pub struct Checked {
    /// The exit code (0 ok, 1 warning, 2 critical, 3 unknown).
    pub code: i32,
    pub json: Value,
}

/// `watchpost check PROBE ARGS... --format json`, which must not panic and
/// must print a JSON report.
pub fn check(probe: &Path, args: &[String]) -> Checked {
    let mut all = vec!["check".to_string(), probe.display().to_string()];
    all.extend(args.iter().cloned());
    all.extend(["--format".to_string(), "json".to_string()]);
    let outcome: Outcome = watchpost_run(&all);
    assert_no_panic(&outcome);
    Checked {
        code: outcome.code,
        json: outcome.json(),
    }
}

/// `["--set", "k=v", ...]` for every pair.
pub fn sets(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")])
        .collect()
}

impl Checked {
    pub fn status(&self) -> &str {
        self.json["status"].as_str().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or_default()
    }

    /// The run's duration in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        self.json["duration_ms"].as_f64().unwrap_or(f64::NAN)
    }

    /// Every measurement named `name`.
    pub fn measurements(&self, name: &str) -> Vec<&Value> {
        self.json["measurements"]
            .as_array()
            .map(|all| all.iter().filter(|m| m["name"] == name).collect())
            .unwrap_or_default()
    }

    /// The value of the one measurement named `name`; panics (showing the
    /// report) when there is none or more than one.
    pub fn value(&self, name: &str) -> f64 {
        let found = self.measurements(name);
        assert_eq!(found.len(), 1, "one `{name}` expected in {:#}", self.json);
        found[0]["value"].as_f64().expect("a numeric value")
    }

    /// The value of the measurement `name` whose attribute `key` is `value`.
    pub fn value_where(&self, name: &str, key: &str, value: &str) -> Option<f64> {
        self.measurements(name)
            .into_iter()
            .find(|m| m["attributes"][key] == value)
            .and_then(|m| m["value"].as_f64())
    }
}

// Free functions over a report's JSON, for reports obtained otherwise.

/// Every measurement named `name`.
pub fn measurements<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["measurements"]
        .as_array()
        .unwrap_or_else(|| panic!("no measurements array in {report:#}"))
        .iter()
        .filter(|m| m["name"] == name)
        .collect()
}

/// The values of every measurement named `name`.
pub fn values(report: &Value, name: &str) -> Vec<f64> {
    measurements(report, name)
        .iter()
        .map(|m| m["value"].as_f64().expect("numeric value"))
        .collect()
}

/// The one value of measurement `name` whose attribute `key` is `value`.
pub fn value_where(report: &Value, name: &str, key: &str, value: &str) -> f64 {
    let found: Vec<f64> = measurements(report, name)
        .iter()
        .filter(|m| m["attributes"][key] == value)
        .map(|m| m["value"].as_f64().expect("numeric value"))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name}{{{key}={value:?}}} expected in {report:#}"
    );
    found[0]
}

/// The one value of measurement `name`.
pub fn value(report: &Value, name: &str) -> f64 {
    let found = values(report, name);
    assert_eq!(found.len(), 1, "one {name} expected in {report:#}");
    found[0]
}
