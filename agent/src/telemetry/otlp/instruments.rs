//! The OTLP metrics: every measurement as a gauge (or, for the semantic
//! convention's histograms, as a histogram sample), the probe status, run
//! durations, and the agent's own counters read at each collection.
//!
//! Names: a measurement keeps its dotted name and unit; attributes are the
//! measurement's own plus `probe` and `target`. The agent's own metrics are
//! `watchpost.*`: `watchpost.probe.status` (0 ok, 1 warning, 2 critical,
//! 3 unknown; the latest run) and `watchpost.probe.hard_status`,
//! `watchpost.probe.run.duration` (s, histogram), and the counters
//! `watchpost.probe.runs`, `watchpost.probe.errors` {error.type},
//! `watchpost.probe.skipped_ticks`, `watchpost.remediation.decisions`
//! {remediation, decision}, `watchpost.config.reloads` {result} and
//! `watchpost.telemetry.dropped` {signal}, and
//! `watchpost.measurements.dropped` {probe}: measurements not exported
//! because their probe already has [`MAX_NAMES_PER_PROBE`] distinct
//! measurement names (a probe inventing names every run would otherwise
//! grow the instruments without bound).

use super::guard::Outage;
use crate::events::RunEvent;
use crate::telemetry::CounterSource;
use crate::telemetry::counters::ERROR_KINDS;
use crate::telemetry::histogram::RUN_BUCKETS;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Gauge, Histogram, Meter};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};

/// Distinct (name, unit) pairs exported for one probe; more are dropped
/// and counted.
pub const MAX_NAMES_PER_PROBE: usize = 256;

/// Measurements that are samples of a semantic-convention histogram rather
/// than gauges: each reported value is one observation. The buckets are
/// the convention's.
pub const HISTOGRAMS: [(&str, &[f64]); 1] = [(
    "db.client.operation.duration",
    &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0],
)];

/// Whether measurement `name` is a histogram sample (see [`HISTOGRAMS`]).
pub fn is_histogram_sample(name: &str) -> bool {
    HISTOGRAMS.iter().any(|(n, _)| *n == name)
}

/// Records runs into the meter's instruments.
pub struct Recorder {
    meter: Meter,
    gauges: HashMap<(String, String), Gauge<f64>>,
    histograms: HashMap<String, Histogram<f64>>,
    status: Gauge<u64>,
    hard_status: Gauge<u64>,
    run_duration: Histogram<f64>,
    /// (name, unit) pairs seen, by probe.
    names: HashMap<String, HashSet<(String, String)>>,
    /// Measurements dropped over the cap, by probe.
    dropped: Arc<Mutex<BTreeMap<String, u64>>>,
}

/// The `target` attribute of a probe: what it checks.
pub fn target_of(spec: &crate::config::ProbeSpec) -> String {
    if let Some(target) = spec.config.get("target") {
        return target.clone();
    }
    match spec.targets.as_slice() {
        [one] => one.clone(),
        [] => "host".to_string(),
        many => many.join(","),
    }
}

impl Recorder {
    pub fn new(meter: Meter) -> Recorder {
        let status = meter
            .u64_gauge("watchpost.probe.status")
            .with_unit("1")
            .with_description("Status of the latest run: 0 ok, 1 warning, 2 critical, 3 unknown")
            .build();
        let hard_status = meter
            .u64_gauge("watchpost.probe.hard_status")
            .with_unit("1")
            .with_description("Confirmed (hard) status: 0 ok, 1 warning, 2 critical, 3 unknown")
            .build();
        let run_duration = meter
            .f64_histogram("watchpost.probe.run.duration")
            .with_unit("s")
            .with_description("Duration of probe runs (instantiate and check)")
            .with_boundaries(RUN_BUCKETS.to_vec())
            .build();
        let dropped = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
        let counts = dropped.clone();
        meter
            .u64_observable_counter("watchpost.measurements.dropped")
            .with_unit("{measurement}")
            .with_description(
                "Measurements not exported: their probe already had 256 distinct measurement names",
            )
            .with_callback(move |observer| {
                let counts = counts.lock();
                for (probe, n) in counts.iter() {
                    observer.observe(*n, &[KeyValue::new("probe", probe.clone())]);
                }
            })
            .build();
        Recorder {
            meter,
            gauges: HashMap::new(),
            histograms: HashMap::new(),
            status,
            hard_status,
            run_duration,
            names: HashMap::new(),
            dropped,
        }
    }

    /// Whether `probe` may export `name`/`unit`: a pair it exported
    /// before, or a new one within [`MAX_NAMES_PER_PROBE`] (else counted).
    fn admit(&mut self, probe: &str, name: &str, unit: &str) -> bool {
        let seen = self.names.entry(probe.to_string()).or_default();
        let key = (name.to_string(), unit.to_string());
        if seen.contains(&key) {
            return true;
        }
        if seen.len() < MAX_NAMES_PER_PROBE {
            seen.insert(key);
            return true;
        }
        *self.dropped.lock().entry(probe.to_string()).or_default() += 1;
        false
    }

    /// Measurements dropped over the cap so far, for `probe`.
    pub fn dropped(&self, probe: &str) -> u64 {
        self.dropped.lock().get(probe).copied().unwrap_or(0)
    }

    /// Record one run of a probe checking `target`; `describe` gives a
    /// measurement's description.
    pub fn record(&mut self, run: &RunEvent, target: &str, describe: impl Fn(&str) -> String) {
        let base = [
            KeyValue::new("probe", run.probe.clone()),
            KeyValue::new("target", target.to_string()),
        ];
        let report = &run.report;
        self.status
            .record(u64::from(report.status.exit_code()), &base);
        self.hard_status
            .record(u64::from(run.hard.exit_code()), &base);
        self.run_duration
            .record(report.duration.as_secs_f64(), &base[..1]);
        for m in &report.measurements {
            if !self.admit(&run.probe, &m.name, &m.unit) {
                continue;
            }
            let mut attributes: Vec<KeyValue> = m
                .attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect();
            attributes.extend(base.iter().cloned());
            if let Some((name, bounds)) = HISTOGRAMS.iter().find(|(n, _)| *n == m.name) {
                let meter = &self.meter;
                self.histograms
                    .entry(m.name.clone())
                    .or_insert_with(|| {
                        meter
                            .f64_histogram(*name)
                            .with_unit(m.unit.clone())
                            .with_description(describe(name))
                            .with_boundaries(bounds.to_vec())
                            .build()
                    })
                    .record(m.value, &attributes);
                continue;
            }
            let meter = &self.meter;
            self.gauges
                .entry((m.name.clone(), m.unit.clone()))
                .or_insert_with(|| {
                    meter
                        .f64_gauge(m.name.clone())
                        .with_unit(m.unit.clone())
                        .with_description(describe(&m.name))
                        .build()
                })
                .record(m.value, &attributes);
        }
    }
}

/// Register the counters read from the agent at each collection.
pub fn register_counters(
    meter: &Meter,
    source: Weak<dyn CounterSource>,
    outages: Vec<Arc<Outage>>,
) {
    let probes = source.clone();
    meter
        .u64_observable_counter("watchpost.probe.runs")
        .with_unit("{run}")
        .with_description("Probe runs")
        .with_callback(move |observer| {
            let Some(source) = probes.upgrade() else {
                return;
            };
            source.each_probe(&mut |name, counters| {
                observer.observe(counters.runs(), &[KeyValue::new("probe", name.to_string())]);
            });
        })
        .build();
    let probes = source.clone();
    meter
        .u64_observable_counter("watchpost.probe.errors")
        .with_unit("{run}")
        .with_description("Runs that ended as unknown, by error kind")
        .with_callback(move |observer| {
            let Some(source) = probes.upgrade() else {
                return;
            };
            source.each_probe(&mut |name, counters| {
                for kind in ERROR_KINDS {
                    observer.observe(
                        counters.errors(kind),
                        &[
                            KeyValue::new("probe", name.to_string()),
                            KeyValue::new("error.type", kind.as_str()),
                        ],
                    );
                }
            });
        })
        .build();
    let probes = source.clone();
    meter
        .u64_observable_counter("watchpost.probe.skipped_ticks")
        .with_unit("{tick}")
        .with_description("Ticks skipped because the previous run had not finished")
        .with_callback(move |observer| {
            let Some(source) = probes.upgrade() else {
                return;
            };
            source.each_probe(&mut |name, counters| {
                observer.observe(
                    counters.skipped_ticks(),
                    &[KeyValue::new("probe", name.to_string())],
                );
            });
        })
        .build();
    let agent = source.clone();
    meter
        .u64_observable_counter("watchpost.remediation.decisions")
        .with_unit("{decision}")
        .with_description(
            "Remediation decisions and outcomes (fired, skipped, succeeded, failed, interrupted, ...)",
        )
        .with_callback(move |observer| {
            let Some(source) = agent.upgrade() else {
                return;
            };
            for (remediation, decision, count) in source.snapshot().remediation_decisions {
                observer.observe(
                    count,
                    &[
                        KeyValue::new("remediation", remediation),
                        KeyValue::new("decision", decision),
                    ],
                );
            }
        })
        .build();
    let agent = source;
    meter
        .u64_observable_counter("watchpost.config.reloads")
        .with_unit("{reload}")
        .with_description("Config reloads, by result")
        .with_callback(move |observer| {
            let Some(source) = agent.upgrade() else {
                return;
            };
            let reloads = source.snapshot().reloads;
            for (result, count) in [("ok", reloads.succeeded), ("failed", reloads.failed)] {
                observer.observe(count, &[KeyValue::new("result", result)]);
            }
        })
        .build();
    meter
        .u64_observable_counter("watchpost.telemetry.dropped")
        .with_unit("{item}")
        .with_description("Data points and log records lost to failed exports, by signal")
        .with_callback(move |observer| {
            for outage in &outages {
                observer.observe(
                    outage.dropped(),
                    &[KeyValue::new("signal", outage.signal())],
                );
            }
        })
        .build();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_inventing_names_is_capped_and_counted() {
        let meter = opentelemetry::global::meter("test");
        let mut r = Recorder::new(meter);
        for i in 0..MAX_NAMES_PER_PROBE {
            assert!(r.admit("p", &format!("fresh.{i}"), "1"));
        }
        // Known names keep going; new ones are dropped and counted.
        assert!(r.admit("p", "fresh.0", "1"));
        assert!(!r.admit("p", "fresh.new", "1"));
        assert!(!r.admit("p", "fresh.newer", "1"));
        assert_eq!(r.dropped("p"), 2);
        // Another probe has its own allowance.
        assert!(r.admit("q", "fresh.new", "1"));
        assert_eq!(r.dropped("q"), 0);
    }
}
