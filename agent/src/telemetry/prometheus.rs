//! The Prometheus text exposition (format 0.0.4) served on /metrics.
//!
//! Written by hand rather than with a client library because the metric
//! families are not known in advance (probes name their measurements), and
//! because the text format (unlike OpenMetrics, which the Rust client
//! emits) is what `promtool check metrics` and every scraper accept.
//!
//! Naming: a measurement `system.filesystem.usage` in `By` becomes the
//! gauge `system_filesystem_usage_bytes`; units `s` and `%` add `_seconds`
//! and `_percent`. A gauge whose name would end in `_count`, `_sum`,
//! `_bucket` or `_total` gets `_value` appended, so that no tool takes it
//! for part of a histogram or a counter. Labels: `probe`, `node`, then the
//! measurement's attributes.

use super::counters::{ERROR_KINDS, ProbeCounters};
use super::histogram::HistogramSnapshot;
use super::snapshot::AgentSnapshot;
use crate::report::{Report, Status};
use crate::runtime::MeasurementInfo;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What /metrics shows about one probe.
pub struct ProbeSample<'a> {
    pub name: &'a str,
    pub current: Status,
    pub hard: Status,
    pub flapping: bool,
    pub report: Option<&'a Report>,
    pub counters: &'a ProbeCounters,
    /// Descriptions of the probe's measurements, for HELP lines.
    pub described: &'a [MeasurementInfo],
}

/// Resident memory and CPU time of the agent process ([`own_usage`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnUsage {
    /// Resident memory, bytes.
    pub resident_bytes: Option<u64>,
    /// CPU time (user and system), seconds.
    pub cpu_seconds: Option<f64>,
}

/// The gauge name of a measurement.
pub fn gauge_name(measurement: &str, unit: &str) -> String {
    let mut name = crate::util::prometheus_name(measurement);
    let suffix = match unit {
        "By" => "_bytes",
        "s" => "_seconds",
        "%" => "_percent",
        _ => "",
    };
    if !name.ends_with(suffix) {
        name.push_str(suffix);
    }
    if ["_count", "_sum", "_bucket", "_total"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        name.push_str("_value");
    }
    name
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn labels(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{value}")
    }
}

/// One family: its type, help and samples (label set, value).
struct Family {
    kind: &'static str,
    help: String,
    samples: Vec<(Vec<(String, String)>, f64)>,
}

#[derive(Default)]
struct Families(BTreeMap<String, Family>);

impl Families {
    fn add(
        &mut self,
        name: &str,
        kind: &'static str,
        help: &str,
        labels: Vec<(String, String)>,
        value: f64,
    ) {
        let family = self.0.entry(name.to_string()).or_insert_with(|| Family {
            kind,
            help: help.to_string(),
            samples: Vec::new(),
        });
        // One series per label set; a family keeps the type it first had.
        if family.kind == kind && !family.samples.iter().any(|(l, _)| *l == labels) {
            family.samples.push((labels, value));
        }
    }

    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        base: Vec<(String, String)>,
        h: &HistogramSnapshot,
    ) {
        for (bound, count) in &h.buckets {
            let mut l = base.clone();
            l.push(("le".into(), number(*bound)));
            self.add_raw(name, &format!("{name}_bucket"), help, l, *count as f64);
        }
        let mut l = base.clone();
        l.push(("le".into(), "+Inf".into()));
        self.add_raw(name, &format!("{name}_bucket"), help, l, h.count as f64);
        self.add_raw(
            name,
            &format!("{name}_sum"),
            help,
            base.clone(),
            h.sum_seconds,
        );
        self.add_raw(name, &format!("{name}_count"), help, base, h.count as f64);
    }

    /// A histogram sample: the family is `family`, the sample name differs.
    fn add_raw(
        &mut self,
        family: &str,
        sample: &str,
        help: &str,
        mut labels: Vec<(String, String)>,
        value: f64,
    ) {
        labels.insert(0, ("__name__".into(), sample.to_string()));
        let f = self.0.entry(family.to_string()).or_insert_with(|| Family {
            kind: "histogram",
            help: help.to_string(),
            samples: Vec::new(),
        });
        f.samples.push((labels, value));
    }

    fn render(self) -> String {
        let mut out = String::new();
        for (name, family) in self.0 {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
            for (mut l, value) in family.samples {
                let sample = match l.first() {
                    Some((k, v)) if k == "__name__" => {
                        let v = v.clone();
                        l.remove(0);
                        v
                    }
                    _ => name.clone(),
                };
                let _ = writeln!(out, "{sample}{} {}", labels(&l), number(value));
            }
        }
        out
    }
}

/// Attribute keys as label names, never clashing with `probe` or `node`
/// ([`crate::runtime::output::label_name`]); a key that would repeat a
/// label already there is left out (reports with such keys are refused
/// before they get here; a repeated label would fail the whole scrape).
fn attribute_labels(attributes: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(attributes.len());
    for (k, v) in attributes {
        let key = crate::runtime::output::label_name(k);
        if !out.iter().any(|(seen, _)| *seen == key) {
            out.push((key, v.clone()));
        }
    }
    out
}

/// Render the whole exposition: the agent's figures, its process's
/// usage, and every probe's.
pub fn render(agent: &AgentSnapshot, usage: OwnUsage, probes: &[ProbeSample]) -> String {
    let mut f = Families::default();
    let node = || ("node".to_string(), agent.node.to_string());
    for p in probes {
        let base = vec![("probe".to_string(), p.name.to_string()), node()];
        f.add(
            "watchpost_probe_status",
            "gauge",
            "Status of the probe's latest run: 0 ok, 1 warning, 2 critical, 3 unknown",
            base.clone(),
            p.current.as_gauge(),
        );
        f.add(
            "watchpost_probe_hard_status",
            "gauge",
            "Confirmed (hard) status of the probe: 0 ok, 1 warning, 2 critical, 3 unknown",
            base.clone(),
            p.hard.as_gauge(),
        );
        f.add(
            "watchpost_probe_flapping",
            "gauge",
            "1 while the probe is flapping",
            base.clone(),
            if p.flapping { 1.0 } else { 0.0 },
        );
        f.add(
            "watchpost_probe_runs_total",
            "counter",
            "Runs of the probe",
            base.clone(),
            p.counters.runs() as f64,
        );
        f.add(
            "watchpost_probe_skipped_ticks_total",
            "counter",
            "Scheduled runs skipped because the previous run was still going",
            base.clone(),
            p.counters.skipped_ticks() as f64,
        );
        for kind in ERROR_KINDS {
            let mut l = base.clone();
            l.push(("kind".into(), kind.as_str().into()));
            f.add("watchpost_probe_errors_total", "counter", "Runs that ended as unknown, by error kind (timeout, memory, trap, denied, invalid-output, probe, load, agent)", l, p.counters.errors(kind) as f64);
        }
        f.histogram(
            "watchpost_probe_run_duration_seconds",
            "Duration of probe runs (instantiate and check)",
            base.clone(),
            &p.counters.durations.snapshot(),
        );
        f.histogram(
            "watchpost_schedule_lateness_seconds",
            "How late runs started against their planned time",
            base.clone(),
            &p.counters.lateness.snapshot(),
        );
        let Some(report) = p.report else { continue };
        for m in &report.measurements {
            // Histogram samples (one value per operation) are exported
            // over OTLP; as gauges they would repeat a series.
            if crate::telemetry::otlp::instruments::is_histogram_sample(&m.name) {
                continue;
            }
            let name = gauge_name(&m.name, &m.unit);
            let help = p
                .described
                .iter()
                .find(|d| d.name == m.name)
                .map(|d| d.description.clone())
                .unwrap_or_else(|| format!("Measurement {} reported by probes", m.name));
            let mut l = base.clone();
            l.extend(attribute_labels(&m.attributes));
            f.add(&name, "gauge", &help, l, m.value);
        }
    }
    f.add(
        "watchpost_build_info",
        "gauge",
        "Always 1; the version is a label",
        vec![node(), ("version".into(), env!("CARGO_PKG_VERSION").into())],
        1.0,
    );
    for (result, counter) in [
        ("ok", agent.reloads.succeeded),
        ("failed", agent.reloads.failed),
    ] {
        f.add(
            "watchpost_config_reloads_total",
            "counter",
            "Config reloads, by result",
            vec![node(), ("result".into(), result.into())],
            counter as f64,
        );
    }
    for (remediation, decision, count) in &agent.remediation_decisions {
        f.add(
            "watchpost_remediation_decisions_total",
            "counter",
            "Remediation decisions and outcomes (fired, skipped, succeeded, failed, interrupted, ...)",
            vec![
                node(),
                ("remediation".into(), remediation.clone()),
                ("decision".into(), decision.to_string()),
            ],
            *count as f64,
        );
    }
    if let Some(cluster) = &agent.cluster {
        let labels = || vec![node(), ("scope".to_string(), cluster.scope.clone())];
        f.add(
            "watchpost_cluster_is_leader",
            "gauge",
            "1 while this node holds the cluster's leader key",
            labels(),
            f64::from(u8::from(cluster.is_leader)),
        );
        f.add(
            "watchpost_cluster_members",
            "gauge",
            "Members with a live key in the cluster, as this node last read them",
            labels(),
            cluster.members as f64,
        );
        if let Some(timeline) = cluster.timeline {
            f.add(
                "watchpost_cluster_timeline",
                "gauge",
                "The local server's timeline",
                labels(),
                timeline as f64,
            );
        }
    }
    if let Some(rss) = usage.resident_bytes {
        f.add(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the agent process",
            vec![node()],
            rss as f64,
        );
    }
    for (signal, dropped) in &agent.telemetry_dropped {
        f.add(
            "watchpost_telemetry_dropped_total",
            "counter",
            "OTLP data points and log records lost to failed exports, by signal",
            vec![node(), ("signal".into(), signal.to_string())],
            *dropped as f64,
        );
    }
    if let Some(cpu) = usage.cpu_seconds {
        f.add(
            "process_cpu_seconds_total",
            "counter",
            "CPU time of the agent process",
            vec![node()],
            cpu,
        );
    }
    f.render()
}

/// Resident memory and CPU time of this process, from /proc (`None`
/// where /proc cannot be read).
pub fn own_usage() -> OwnUsage {
    let page = 4096u64;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page);
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may contain spaces).
            let rest = &s[s.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        });
    OwnUsage {
        resident_bytes: rss,
        cpu_seconds: cpu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        assert_eq!(
            gauge_name("system.filesystem.usage", "By"),
            "system_filesystem_usage_bytes"
        );
        assert_eq!(
            gauge_name("system.cpu.utilization", "1"),
            "system_cpu_utilization"
        );
        assert_eq!(
            gauge_name("postgresql.connect.duration", "s"),
            "postgresql_connect_duration_seconds"
        );
        assert_eq!(gauge_name("process.count", "1"), "process_count_value");
        assert_eq!(gauge_name("9lives", ""), "_9lives");
    }

    #[test]
    fn label_values_are_escaped() {
        let l = labels(&[("path".into(), "a\"b\\c\nd".into())]);
        assert_eq!(l, r#"{path="a\"b\\c\nd"}"#);
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        let mut f = Families::default();
        let h = HistogramSnapshot {
            buckets: vec![(0.1, 1), (1.0, 2)],
            count: 3,
            sum_seconds: 2.5,
        };
        f.histogram("x_seconds", "help", vec![("probe".into(), "p".into())], &h);
        let text = f.render();
        assert!(text.contains("# TYPE x_seconds histogram"));
        assert!(text.contains("x_seconds_bucket{probe=\"p\",le=\"0.1\"} 1"));
        assert!(text.contains("x_seconds_bucket{probe=\"p\",le=\"+Inf\"} 3"));
        assert!(text.contains("x_seconds_count{probe=\"p\"} 3"));
    }
}
