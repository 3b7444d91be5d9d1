//! Reading the JSON report of `watchpost check --format json`.

use serde_json::Value;

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
