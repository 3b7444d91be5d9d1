//! OTLP export to a real receiver (gRPC and http/protobuf): names, units,
//! value types, attributes and the resource are exact; a measurement's
//! value is the one in the probe's report; state changes and remediation
//! decisions arrive as log records; a dead collector costs the probes
//! nothing and export resumes when it comes back.

use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use watchpost_e2e::agent::{Agent, PATIENCE, wait_for, wasm};
use watchpost_e2e::otlp::{Receiver, Wire, attributes, text};
use watchpost_e2e::pg::PgPair;

const NODE: &str = "db-test-1";

/// An [agent] table for node [`NODE`], then `otlp` and `rest`.
fn config(otlp: &str, rest: &str) -> String {
    format!(
        "[agent]\nnode = \"{NODE}\"\nstate_dir = \"{{STATE}}\"\nlisten = \"{{LISTEN}}\"\n\n[telemetry.otlp]\n{otlp}\n\n{rest}"
    )
}

fn flip(name: &str, every: &str, settings: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nwasm = \"{}\"\nevery = \"{every}\"\nconfig = {{ {settings} }}\n{extra}\n",
        wasm("flip")
    )
}

/// The latest value of `metric` for the data point whose attributes
/// include `want`.
fn point(metric: &Metric, want: &[(&str, &str)]) -> Option<(BTreeMap<String, String>, f64)> {
    let matches = |attrs: &BTreeMap<String, String>| {
        want.iter()
            .all(|(k, v)| attrs.get(*k).map(String::as_str) == Some(*v))
    };
    let number = |v: &Option<number_data_point::Value>| match v {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => f64::NAN,
    };
    match metric.data.as_ref()? {
        metric::Data::Gauge(g) => g.data_points.iter().find_map(|p| {
            let attrs = attributes(&p.attributes);
            matches(&attrs).then(|| (attrs, number(&p.value)))
        }),
        metric::Data::Sum(s) => s.data_points.iter().find_map(|p| {
            let attrs = attributes(&p.attributes);
            matches(&attrs).then(|| (attrs, number(&p.value)))
        }),
        metric::Data::Histogram(h) => h.data_points.iter().find_map(|p| {
            let attrs = attributes(&p.attributes);
            matches(&attrs).then_some((attrs, p.count as f64))
        }),
        _ => None,
    }
}

/// Wait until the receiver has `name` with a point matching `want`.
fn wait_metric(
    receiver: &Receiver,
    name: &str,
    want: &[(&str, &str)],
) -> (BTreeMap<String, String>, Metric) {
    wait_for(&format!("metric {name} {want:?}"), PATIENCE, || {
        receiver
            .metric(name)
            .filter(|(_, m)| point(m, want).is_some())
    })
}

fn last_report(agent: &Agent, probe: &str) -> Value {
    wait_for(&format!("a report of {probe}"), PATIENCE, || {
        agent
            .probe(probe)
            .map(|p| p["last_report"].clone())
            .filter(|r| !r.is_null())
    })
}

#[test]
fn grpc_export_carries_measurements_statuses_counters_and_the_resource() {
    let receiver = Receiver::start();
    let otlp = format!(
        "endpoint = \"{}\"\nprotocol = \"grpc\"\ninterval = \"300ms\"\nheaders = {{ authorization = \"Bearer ${{WATCHPOST_TEST_TOKEN}}\" }}",
        receiver.grpc_endpoint()
    );
    let probes = format!(
        "[[probe]]\nname = \"disk\"\nwasm = \"builtin:host-disk\"\nevery = \"1h\"\n\n{}",
        flip("warn", "200ms", "status = \"warning\"", "")
    );
    let agent = Agent::start_with_env(
        &config(&otlp, &probes),
        &[("WATCHPOST_TEST_TOKEN", "s3cret")],
    );

    // The resource: who is exporting.
    let (resource, runs) = wait_metric(&receiver, "watchpost.probe.runs", &[("probe", "warn")]);
    let instance = std::fs::read_to_string(agent.state_dir().join("instance-id")).unwrap();
    let expected = [
        ("service.name", "watchpost"),
        ("service.version", env!("CARGO_PKG_VERSION")),
        ("service.instance.id", instance.trim()),
        ("watchpost.node", NODE),
    ];
    for (key, value) in expected {
        assert_eq!(
            resource.get(key).map(String::as_str),
            Some(value),
            "{key} in {resource:?}"
        );
    }
    assert!(!resource["host.name"].is_empty(), "{resource:?}");

    // The counters are cumulative monotonic sums.
    let Some(metric::Data::Sum(sum)) = &runs.data else {
        panic!("runs is not a sum: {runs:?}")
    };
    assert!(
        sum.is_monotonic && sum.aggregation_temporality == 2,
        "{sum:?}"
    );
    // It grows: three runs of `warn` (every 200 ms) are exported.
    wait_for("three runs of warn exported", PATIENCE, || {
        let (_, m) = receiver.metric("watchpost.probe.runs")?;
        point(&m, &[("probe", "warn")]).filter(|(_, v)| *v >= 3.0)
    });

    // The status gauge: 1 = warning, an integer, with probe and target.
    let (_, status) = wait_metric(&receiver, "watchpost.probe.status", &[("probe", "warn")]);
    assert_eq!(status.unit, "1");
    let Some(metric::Data::Gauge(gauge)) = &status.data else {
        panic!("status is not a gauge: {status:?}")
    };
    let p = gauge
        .data_points
        .iter()
        .find(|p| attributes(&p.attributes)["probe"] == "warn")
        .unwrap();
    assert_eq!(p.value, Some(number_data_point::Value::AsInt(1)));
    assert_eq!(
        attributes(&p.attributes),
        BTreeMap::from([
            ("probe".into(), "warn".into()),
            ("target".into(), "host".into())
        ])
    );

    // Run durations: a histogram in seconds.
    let (_, durations) = wait_metric(
        &receiver,
        "watchpost.probe.run.duration",
        &[("probe", "warn")],
    );
    assert_eq!(durations.unit, "s");
    assert!(
        matches!(durations.data, Some(metric::Data::Histogram(_))),
        "{durations:?}"
    );

    // A measurement: the report's value, unit and attributes, plus probe
    // and target; the probe ran once (every 1h), so the values must match.
    let report = last_report(&agent, "disk");
    let (_, exported) = wait_metric(
        &receiver,
        "system.filesystem.utilization",
        &[("probe", "disk")],
    );
    let measurements: Vec<&Value> = report["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "system.filesystem.utilization")
        .collect();
    assert!(!measurements.is_empty(), "{report:#}");
    for m in measurements {
        assert_eq!(exported.unit, m["unit"].as_str().unwrap());
        let mut want: Vec<(String, String)> = m["attributes"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        want.push(("probe".into(), "disk".into()));
        want.push(("target".into(), "host".into()));
        let want_ref: Vec<(&str, &str)> =
            want.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (attrs, value) = point(&exported, &want_ref)
            .unwrap_or_else(|| panic!("no point {want:?} in {exported:?}"));
        assert_eq!(
            attrs.len(),
            want.len(),
            "exactly the report's attributes plus probe and target: {attrs:?}"
        );
        // The export and the API's read may come from successive runs, and
        // a filesystem's use moves while other suites write: within 1 %.
        let reported = m["value"].as_f64().unwrap();
        assert!(
            (value - reported).abs() <= 0.01 * reported.abs().max(1.0),
            "{attrs:?}: exported {value}, reported {reported}"
        );
        assert!(matches!(exported.data, Some(metric::Data::Gauge(_))));
    }
    // The description comes from the probe's describe().
    assert!(!exported.description.is_empty());

    // The header, with its value from the environment.
    let auth = receiver.with(|r| r.authorizations.clone());
    assert!(
        auth.iter().all(|a| a.as_deref() == Some("Bearer s3cret")),
        "{auth:?}"
    );
    assert!(receiver.with(|r| r.metrics.iter().all(|(w, _)| *w == Wire::Grpc)));
}

#[test]
fn http_export_carries_state_changes_and_remediation_decisions_as_log_records() {
    let receiver = Receiver::start();
    let otlp = format!(
        "endpoint = \"{}\"\nprotocol = \"http/protobuf\"\ninterval = \"300ms\"",
        receiver.http_endpoint()
    );
    let rest = format!(
        "{}[[remediation]]\nname = \"note\"\non = {{ probe = \"down\", status = \"critical\" }}\naction = {{ exec = [\"true\"] }}\ncooldown = \"1h\"\n",
        flip("down", "100ms", "status = \"critical\"", "for = 2")
    );
    let agent = Agent::start(&config(&otlp, &rest));
    let succeeded = wait_for("the exec to succeed", PATIENCE, || {
        agent.audit_of("note", "succeeded").into_iter().next()
    });
    let fired = agent.audit_of("note", "fired").remove(0);

    let records = wait_for("the remediation's log records", PATIENCE, || {
        let records = receiver.log_records();
        let decisions: Vec<_> = records
            .iter()
            .filter(|(_, r)| r.event_name == "watchpost.remediation")
            .cloned()
            .collect();
        (decisions.len() >= 2).then_some(records)
    });
    // The hard transition ok -> critical, as an event.
    let (resource, change) = records
        .iter()
        .find(|(_, r)| r.event_name == "watchpost.state.change")
        .unwrap_or_else(|| panic!("no state change in {records:#?}"));
    let attrs = attributes(&change.attributes);
    for (key, value) in [
        ("probe", "down"),
        ("from", "ok"),
        ("to", "critical"),
        ("state_type", "hard"),
        ("node", NODE),
        ("target", "host"),
    ] {
        assert_eq!(
            attrs.get(key).map(String::as_str),
            Some(value),
            "{key} in {attrs:?}"
        );
    }
    assert_eq!(change.severity_text, "ERROR");
    assert!(
        text(change.body.as_ref().unwrap()).contains("down is critical"),
        "{change:?}"
    );
    assert_eq!(resource["service.name"], "watchpost");
    assert_eq!(resource["watchpost.node"], NODE);

    // Each decision carries the audit record's fields.
    for audit in [&fired, &succeeded] {
        let decision = audit["decision"].as_str().unwrap();
        let (_, record) = records
            .iter()
            .find(|(_, r)| {
                r.event_name == "watchpost.remediation"
                    && attributes(&r.attributes)
                        .get("decision")
                        .map(String::as_str)
                        == Some(decision)
            })
            .unwrap_or_else(|| panic!("no {decision} record in {records:#?}"));
        let attrs = attributes(&record.attributes);
        for key in [
            "id",
            "remediation",
            "probe",
            "decision",
            "action",
            "status",
            "node",
        ] {
            assert_eq!(
                attrs.get(key).map(String::as_str),
                audit[key].as_str(),
                "{key}: {attrs:?} vs {audit:#}"
            );
        }
        let Some(any_value::Value::StringValue(body)) =
            record.body.as_ref().and_then(|b| b.value.clone())
        else {
            panic!("no body in {record:?}")
        };
        assert_eq!(body, audit["message"].as_str().unwrap());
        assert!(record.time_unix_nano > 0);
    }
    assert!(receiver.with(|r| r.logs.iter().all(|(w, _)| *w == Wire::Http)));
    // Metrics went over HTTP too.
    wait_metric(&receiver, "watchpost.probe.status", &[("probe", "down")]);
}

/// The agent's own counter on /metrics.
fn dropped(agent: &Agent, signal: &str) -> f64 {
    let (_, text) = agent.get("/metrics").unwrap();
    let prefix =
        format!("watchpost_telemetry_dropped_total{{node=\"{NODE}\",signal=\"{signal}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
        .parse()
        .unwrap()
}

fn runs(agent: &Agent) -> u64 {
    agent.probe("tick").unwrap()["counters"]["runs"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_dead_collector_does_not_slow_the_probes_and_export_resumes() {
    let mut receiver = Receiver::start();
    let otlp = format!(
        "endpoint = \"{}\"\ninterval = \"200ms\"\ntimeout = \"1s\"",
        receiver.grpc_endpoint()
    );
    let agent = Agent::start(&config(
        &otlp,
        &flip("tick", "100ms", "status = \"ok\"", ""),
    ));
    wait_metric(&receiver, "watchpost.probe.runs", &[("probe", "tick")]);
    assert_eq!(dropped(&agent, "metrics"), 0.0);

    receiver.stop();
    let before = runs(&agent);
    std::thread::sleep(Duration::from_secs(3));
    // The schedule went on: about 30 runs in 3 s (lenient: shared machines).
    let during = runs(&agent) - before;
    assert!(
        during >= 10,
        "only {during} runs while the collector was down"
    );
    wait_for("dropped metrics to be counted", PATIENCE, || {
        (dropped(&agent, "metrics") > 0.0).then_some(())
    });
    let log = agent.log();
    let outage_lines = log
        .lines()
        .filter(|l| l.contains("OTLP export of metrics") && l.contains("failed"))
        .count();
    assert_eq!(
        outage_lines, 1,
        "one line per outage, not one per export:\n{log}"
    );

    let (metrics_before, _) = receiver.counts();
    receiver.resume();
    wait_for("export to resume", PATIENCE, || {
        (receiver.counts().0 > metrics_before).then_some(())
    });
    wait_for("the recovery to be logged", PATIENCE, || {
        agent.log().contains("works again").then_some(())
    });
    let (_, latest) = receiver.metric("watchpost.probe.runs").unwrap();
    let (_, exported_runs) = point(&latest, &[("probe", "tick")]).unwrap();
    assert!(
        exported_runs as u64 > before,
        "cumulative counts carry on: {exported_runs}"
    );
}

#[test]
fn the_canary_latency_is_the_semantic_convention_histogram() {
    let pair = PgPair::start();
    let receiver = Receiver::start();
    let otlp = format!(
        "endpoint = \"{}\"\ninterval = \"300ms\"",
        receiver.grpc_endpoint()
    );
    let rest = format!(
        "[targets.primary]\ndsn = \"{}\"\n\n[[probe]]\nname = \"perf\"\nwasm = \"builtin:pg-performance\"\nevery = \"1h\"\ntargets = [\"primary\"]\n",
        pair.primary.dsn()
    );
    let agent = Agent::start(&config(&otlp, &rest));
    let report = last_report(&agent, "perf");
    let (_, metric) = wait_metric(
        &receiver,
        "db.client.operation.duration",
        &[("probe", "perf")],
    );
    assert_eq!(metric.unit, "s");
    let Some(metric::Data::Histogram(histogram)) = &metric.data else {
        panic!("not a histogram: {metric:?}")
    };
    assert_eq!(histogram.aggregation_temporality, 2, "cumulative");
    let p = &histogram.data_points[0];
    assert_eq!(
        p.explicit_bounds,
        [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0],
        "the convention's buckets"
    );
    assert_eq!(
        attributes(&p.attributes),
        BTreeMap::from([
            ("db.system.name".into(), "postgresql".into()),
            ("probe".into(), "perf".into()),
            ("target".into(), "primary".into()),
        ])
    );
    let tries: Vec<f64> = report["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "db.client.operation.duration")
        .map(|m| m["value"].as_f64().unwrap())
        .collect();
    assert_eq!(p.count, tries.len() as u64, "one observation per try");
    let sum: f64 = tries.iter().sum();
    assert!((p.sum.unwrap() - sum).abs() < 1e-9, "{:?} vs {sum}", p.sum);
    // The summary stays a gauge.
    let (_, p50) = wait_metric(
        &receiver,
        "postgresql.canary.duration",
        &[("statistic", "p50")],
    );
    assert!(matches!(p50.data, Some(metric::Data::Gauge(_))));
}
