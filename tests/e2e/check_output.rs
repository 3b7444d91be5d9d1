//! `watchpost check` output formats: JSON fields, Nagios plugin output.

use watchpost_e2e::cli::watchpost_run;
use watchpost_e2e::probes;

#[test]
fn json_has_every_documented_field() {
    let outcome = watchpost_run([
        "check".as_ref(),
        probes::path("trivial").as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    let report = outcome.json();
    for field in [
        "probe",
        "status",
        "message",
        "measurements",
        "duration_ms",
        "error",
    ] {
        assert!(report.get(field).is_some(), "missing {field}: {report:#}");
    }
    assert_eq!(report["probe"], "trivial");
    let m = &report["measurements"][0];
    assert_eq!(
        (m["name"].as_str(), m["value"].as_f64(), m["unit"].as_str()),
        (Some("trivial.value"), Some(1.0), Some("1"))
    );
    assert!(m["attributes"].is_object());
    assert!(report["duration_ms"].as_f64().unwrap() > 0.0);
}

/// A line of Nagios plugin output, taken apart by the plugin guidelines'
/// grammar: `STATUS - text | 'label'=value[UOM];[warn];[crit];[min];[max] ...`.
struct NagiosLine {
    status: String,
    perfdata: Vec<(String, f64, String)>,
}

fn parse_nagios(line: &str) -> NagiosLine {
    let (text, perf) = line.split_once(" | ").unwrap_or((line, ""));
    let status = text.split(" - ").next().unwrap().to_string();
    let mut perfdata = Vec::new();
    let mut rest = perf.trim();
    while !rest.is_empty() {
        let (label, after) = if let Some(stripped) = rest.strip_prefix('\'') {
            let end = stripped.find('\'').expect("closing quote of the label");
            (&stripped[..end], &stripped[end + 1..])
        } else {
            let end = rest.find('=').expect("= after the label");
            (&rest[..end], &rest[end..])
        };
        let after = after.strip_prefix('=').expect("= after the label");
        let item_end = after.find(' ').unwrap_or(after.len());
        let fields: Vec<&str> = after[..item_end].split(';').collect();
        assert!(
            fields.len() <= 5,
            "too many ; fields in {:?}",
            &after[..item_end]
        );
        let value_and_unit = fields[0];
        let number_end = value_and_unit
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' || c == '+'))
            .unwrap_or(value_and_unit.len());
        let value: f64 = value_and_unit[..number_end]
            .parse()
            .expect("numeric perfdata value");
        let unit = value_and_unit[number_end..].to_string();
        assert!(
            ["", "s", "ms", "us", "%", "B", "KB", "MB", "TB", "c"].contains(&unit.as_str()),
            "unit {unit:?}"
        );
        perfdata.push((label.to_string(), value, unit));
        rest = after[item_end..].trim_start();
    }
    NagiosLine { status, perfdata }
}

#[test]
fn nagios_output_parses_as_plugin_output() {
    let outcome = watchpost_run([
        "check".as_ref(),
        probes::path("host-disk").as_os_str(),
        "--format".as_ref(),
        "nagios".as_ref(),
    ]);
    assert!(outcome.code <= 2, "{}", outcome.all_output());
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line of output: {:?}", outcome.stdout);
    let parsed = parse_nagios(lines[0]);
    let expected = ["OK", "WARNING", "CRITICAL"][outcome.code as usize];
    assert_eq!(parsed.status, expected);
    let root = parsed
        .perfdata
        .iter()
        .find(|(label, _, _)| label.starts_with("system.filesystem.utilization[/,"))
        .unwrap_or_else(|| panic!("no root filesystem in {:?}", parsed.perfdata));
    assert!(root.1 > 0.0 && root.1 < 1.0);
    let usage = parsed
        .perfdata
        .iter()
        .find(|(l, _, _)| l.starts_with("system.filesystem.usage"))
        .unwrap();
    assert_eq!(usage.2, "B", "bytes carry the B unit");
}

#[test]
fn nagios_output_of_a_failed_run_is_unknown_with_exit_3() {
    let outcome = watchpost_run([
        "check".as_ref(),
        probes::path("panics").as_os_str(),
        "--format".as_ref(),
        "nagios".as_ref(),
    ]);
    assert_eq!(outcome.code, 3);
    let parsed = parse_nagios(outcome.stdout.trim());
    assert_eq!(parsed.status, "UNKNOWN");
    assert!(parsed.perfdata.is_empty());
}

#[test]
fn exit_codes_follow_the_nagios_convention() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "check".to_string(),
            probes::path("host-disk").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        watchpost_run(&args).code
    };
    assert_eq!(run(&["--set", "warning=0", "--set", "critical=100"]), 1);
    assert_eq!(run(&["--set", "critical=0"]), 2);
    assert_eq!(run(&["--set", "warning=100", "--set", "critical=100"]), 0);
}
