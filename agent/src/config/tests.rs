//! One test per kind of config error: each asserts the line and column
//! and that the message names the key and what to write.

use super::*;
use std::path::Path;

mod cluster;
mod drill_engine;
mod mysql_failover;
mod redis;
mod redis_failover;

fn errors(text: &str) -> Vec<Diagnostic> {
    errors_in(text, Path::new("/nonexistent"))
}

fn errors_in(text: &str, base: &Path) -> Vec<Diagnostic> {
    match parse_str("w.toml", text, base) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(e) => e.0,
    }
}

/// The single error, checked for place and message parts.
fn one(text: &str, line: usize, column: usize, parts: &[&str]) {
    let found = errors(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let d = &found[0];
    assert_eq!((d.line, d.column), (line, column), "{d}");
    for part in parts {
        assert!(d.message.contains(part), "{part:?} not in {d}");
    }
}

const PROBE: &str = "[[probe]]\nname = \"disk\"\nwasm = \"builtin:host-disk\"\n";

#[test]
fn the_embedded_default_is_valid() {
    let config = embedded_default();
    assert_eq!(config.probes.len(), 3);
    assert_eq!(config.agent.listen.to_string(), "127.0.0.1:9464");
}

#[test]
fn unknown_keys_are_named_with_a_suggestion() {
    one(
        &format!("{PROBE}tiemout = \"5s\"\n"),
        4,
        1,
        &["unknown key `tiemout`", "did you mean `timeout`?"],
    );
    one(
        "[agnet]\nnode = \"x\"\n",
        1,
        2,
        &["top level: unknown key `agnet`", "did you mean `agent`?"],
    );
}

#[test]
fn wrong_types_name_the_key_and_the_expected_type() {
    one(
        &format!("{PROBE}every = 5\n"),
        4,
        9,
        &["`every` is an integer, expected a string"],
    );
    one(
        &format!("{PROBE}targets = \"primary\"\n"),
        4,
        11,
        &["`targets` is a string, expected an array of strings"],
    );
}

#[test]
fn bad_durations_say_how_to_write_one() {
    one(
        &format!("{PROBE}timeout = \"5 secs\"\n"),
        4,
        11,
        &["`timeout` = \"5 secs\" is not a duration", "\"500ms\""],
    );
}

#[test]
fn bad_sizes_say_how_to_write_one() {
    one(
        &format!("{PROBE}memory = \"32 megs\"\n"),
        4,
        10,
        &["`memory` = \"32 megs\" is not a size", "\"32MiB\""],
    );
}

#[test]
fn bad_threshold_ranges_say_what_is_wrong() {
    let text =
        format!("{PROBE}[probe.thresholds.\"system.filesystem.utilization\"]\nwarning = \"2:1\"\n");
    one(
        &text,
        5,
        11,
        &[
            "`warning` = \"2:1\" is not a valid range",
            "start 2 is above the end 1",
            "\"~:10\"",
        ],
    );
}

/// Issue 25: bounds compare once converted (`1:12%` is 0.01..0.12, `1h:30m` is refused).
#[test]
fn ranges_are_checked_after_their_units_convert() {
    let rule = |key: &str, range: &str| {
        format!("{PROBE}[probe.thresholds.\"postgresql.a.duration\"]\n{key} = \"{range}\"\n")
    };
    let ratio = rule("warning", "1:12%").replace("a.duration", "connections.used_ratio");
    let config = parse_str("w.toml", &ratio, Path::new("/nonexistent")).expect("valid");
    let warning = config.probes[0].thresholds[0].warning.clone().unwrap();
    assert_eq!((warning.start, warning.end), (0.01, 0.12));
    assert!(!warning.alerts(0.05) && warning.alerts(0.5));
    let hours = rule("warning", "1h:30m");
    one(&hours, 5, 11, &["start 3600 is above the end 1800"]);
    let percent = rule("critical", "15%:12").replace("a.duration", "x.utilization");
    one(&percent, 5, 12, &["start 0.15 is above the end 0.12"]);
}

#[test]
fn units_in_threshold_ranges_convert_or_are_refused_at_their_place() {
    let text = format!(
        "{PROBE}[probe.thresholds.\"postgresql.replication.lag_bytes\"]\nwarning = \"~:16MiB\"\n\
         [probe.thresholds.\"system.filesystem.utilization\"]\ncritical = \"~:60%\"\n"
    );
    let config = parse_str("w.toml", &text, Path::new("/nonexistent")).expect("valid");
    let rules = &config.probes[0].thresholds;
    assert_eq!(rules[0].warning.as_ref().unwrap().end, 16_777_216.0);
    assert!(rules[1].critical.as_ref().unwrap().alerts(0.70));
    one(
        &format!(
            "{PROBE}[probe.thresholds.\"system.filesystem.utilization\"]\nwarning = \"~:16MiB\"\n"
        ),
        5,
        11,
        &["a size but the measurement is in `1`", "percentage (60%)"],
    );
    one(
        &format!("{PROBE}[probe.thresholds.\"my.thing\"]\ncritical = \"~:3 parsecs\"\n"),
        5,
        12,
        &["unknown unit \"parsecs\"", "MiB"],
    );
}

#[test]
fn duplicate_probe_names_point_at_the_first_use() {
    one(
        &format!("{PROBE}\n{PROBE}"),
        6,
        8,
        &["the name \"disk\" is already used by the probe at line 2"],
    );
}

#[test]
fn undefined_targets_are_named_with_the_defined_ones() {
    let text = format!(
        "[targets.primary]\ndsn = \"host=127.0.0.1\"\n\n{PROBE}targets = [\"primary\", \"standby\"]\n"
    );
    one(
        &text,
        7,
        23,
        &[
            "target `standby` is not defined",
            "[targets.standby]",
            "defined: primary",
        ],
    );
}

#[test]
fn a_missing_wasm_file_is_named() {
    one(
        "[[probe]]\nname = \"x\"\nwasm = \"probes/nope.wasm\"\n",
        3,
        8,
        &[
            "/nonexistent/probes/nope.wasm not found",
            "config file's directory",
        ],
    );
}

#[test]
fn a_sha256_pin_that_does_not_match_shows_the_actual_hash() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.wasm"), b"not really wasm").unwrap();
    let text = format!(
        "[[probe]]\nname = \"x\"\nwasm = \"p.wasm\"\nsha256 = \"{}\"\n",
        "ab".repeat(32)
    );
    let found = errors_in(&text, dir.path());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!((found[0].line, found[0].column), (4, 10));
    let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"not really wasm"));
    assert!(
        found[0]
            .message
            .contains(&format!("the file's sha256 is {actual}")),
        "{}",
        found[0]
    );
}

#[test]
fn an_unknown_builtin_lists_the_real_ones() {
    one(
        "[[probe]]\nname = \"x\"\nwasm = \"builtin:host-dsik\"\n",
        3,
        8,
        &["no built-in probe \"host-dsik\"", "host-disk"],
    );
}

#[test]
fn missing_required_keys_show_an_example() {
    one(
        "[[probe]]\nname = \"x\"\n",
        1,
        1,
        &["`wasm` is missing", "wasm = \"builtin:host-disk\""],
    );
}

#[test]
fn a_public_listen_address_needs_a_token() {
    one(
        "[agent]\nlisten = \"0.0.0.0:9464\"\n",
        1,
        1,
        &["reachable from other hosts", "api_token_env"],
    );
}

#[test]
fn remediations_must_name_existing_probes() {
    let text = format!(
        "{PROBE}\n[[remediation]]\nname = \"r\"\non = {{ probe = \"dsik\" }}\naction = {{ exec = [\"true\"] }}\n"
    );
    one(
        &text,
        7,
        16,
        &[
            "`probe` names probe \"dsik\", which is not defined",
            "probes: disk",
        ],
    );
}

#[test]
fn actions_need_exactly_one_kind() {
    let text = format!(
        "{PROBE}\n[[remediation]]\nname = \"r\"\non = {{ probe = \"disk\" }}\naction = {{ exec = [\"true\"], webhook = \"http://x\" }}\n"
    );
    one(
        &text,
        8,
        10,
        &[
            "give exactly one of `exec`, `restart`, `failover`, `webhook`, `terminate`, `cancel`, `resume_replay` or `reinit`",
            "found exec, webhook",
        ],
    );
}

#[test]
fn invalid_toml_is_located() {
    one("[[probe]\nname = 1\n", 1, 9, &["invalid TOML"]);
}

#[test]
fn every_error_is_reported_at_once() {
    let text = "[agent]\nlisten = \"nowhere\"\n\n[[probe]]\nname = \"a\"\nwasm = \"builtin:host-disk\"\nevery = \"soon\"\nmemroy = \"1MiB\"\n\n[[probe]]\nname = \"a\"\nwasm = \"builtin:nope\"\n";
    let found = errors(text);
    let lines: Vec<usize> = found.iter().map(|d| d.line).collect();
    assert_eq!(lines, vec![2, 7, 8, 11, 12], "{found:#?}");
    let rendered = ConfigErrors(found).to_string();
    assert!(rendered.starts_with("w.toml:2:10: "), "{rendered}");
}

#[test]
fn a_full_config_parses() {
    let text = r#"
[agent]
node = "db-1"
state_dir = "/var/lib/watchpost"
listen = "127.0.0.1:9464"
concurrency = 4

[targets.primary]
dsn = "host=127.0.0.1 port=5432 user=watchpost dbname=app"
data_dir = "/var/lib/postgresql/15/main"

[targets.standby]
dsn = "host=10.0.0.2 port=5432 user=watchpost dbname=app"

[[probe]]
name = "alive"
wasm = "builtin:host-cpu"
every = "5s"
timeout = "2s"
memory = "32MiB"
targets = ["primary", "standby"]
config = { min_standbys = 1, verbose = true }
for = 3
recover = 2
  [probe.thresholds."postgresql.replication.lag_bytes"]
  warning = "~:1048576"
  critical = "~:16777216"
  for = 3
  recover = 2

[[remediation]]
name = "restart-postgres"
on = { probe = "alive", status = "critical" }
action = { exec = ["pg_ctlcluster", "15", "main", "start"] }
cooldown = "5m"
limit = { count = 3, per = "1h" }
verify = { probe = "alive", within = "30s" }
dry_run = false

[[remediation]]
name = "failover"
on = { probe = "alive" }
action = { failover = "standby", primary = "primary", fence = "pg_ctl", max_lag_bytes = 1048576, post = [{ webhook = "http://127.0.0.1:9/hook" }] }

[telemetry.otlp]
endpoint = "http://127.0.0.1:4317"
protocol = "grpc"
interval = "10s"
"#;
    let config = parse_str("full.toml", text, Path::new("/")).unwrap_or_else(|e| panic!("{e}"));
    let probe = &config.probes[0];
    assert_eq!(probe.config["min_standbys"], "1");
    assert_eq!(
        probe.confirm,
        Confirm {
            failures: 3,
            recoveries: 2
        }
    );
    assert_eq!(probe.thresholds[0].confirm.failures, 3);
    assert_eq!(config.remediations.len(), 2);
    match &config.remediations[1].action {
        Action::Failover(f) => {
            assert_eq!(
                f.fence,
                Fence::PgCtl {
                    program: "pg_ctl".into(),
                    data_dir: "/var/lib/postgresql/15/main".into()
                }
            );
            assert_eq!(f.post.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn otlp_endpoints_and_headers_are_checked_at_load() {
    one(
        "[telemetry.otlp]\nendpoint = \"127.0.0.1:4317\"\n",
        2,
        12,
        &["`endpoint`", "http://127.0.0.1:4317"],
    );
    one(
        "[telemetry.otlp]\nendpoint = \"https://collector:4317\"\ncertificate = \"/nonexistent/ca.pem\"\n",
        3,
        15,
        &["/nonexistent/ca.pem", "cannot read"],
    );
    one(
        "[telemetry.otlp]\nheaders = { \"bad header\" = \"x\" }\n",
        2,
        28,
        &["\"bad header\"", "not a valid header name"],
    );
}

/// The remediation around `body` (an `on` and an `action` are required).
fn remediation(body: &str) -> String {
    format!(
        "{PROBE}\n[[remediation]]\nname = \"r\"\non = {{ probe = \"disk\" }}\n\
         action = {{ exec = [\"true\"] }}\n{body}"
    )
}

#[test]
fn durations_out_of_range_are_refused_at_their_place() {
    // The issue's vectors: each would panic or busy-loop at run time.
    one(
        &format!("{PROBE}every = \"0.001ms\"\n"),
        4,
        9,
        &[
            "[[probe]] \"disk\": `every` = \"0.001ms\" is out of range: write a duration from 10ms to 30d",
        ],
    );
    one(
        &format!("{PROBE}timeout = \"200000000000000d\"\n"),
        4,
        11,
        &["`timeout` = \"200000000000000d\" is out of range: write a duration from 10ms to 30d"],
    );
    one(
        &remediation("cooldown = \"200000000000000d\"\n"),
        9,
        12,
        &["`cooldown` = \"200000000000000d\" is out of range: write a duration from 0s to 365d"],
    );
    one(
        &remediation("limit = { count = 1, per = \"0s\" }\n"),
        9,
        28,
        &["`per` = \"0s\" is out of range: write a duration from 10ms to 365d"],
    );
    one(
        &remediation("verify = { probe = \"disk\", within = \"31d\" }\n"),
        9,
        37,
        &["`within` = \"31d\"", "from 10ms to 30d"],
    );
    one(
        "[telemetry.otlp]\ninterval = \"5ms\"\n",
        2,
        12,
        &["`interval` = \"5ms\" is out of range"],
    );
}

#[test]
fn action_durations_are_bounded_too() {
    let failover = |key: &str, value: &str| {
        format!(
            "[targets.a]\ndsn = \"host=a\"\n[targets.b]\ndsn = \"host=b\"\n{PROBE}\n\
             [[remediation]]\nname = \"r\"\non = {{ probe = \"disk\" }}\n\
             action = {{ failover = \"b\", primary = \"a\", fence = \"none\", {key} = \"{value}\" }}\n"
        )
    };
    let found = errors(&failover("block_for", "366d"));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0]
            .message
            .contains("`block_for` = \"366d\" is out of range: write a duration from 0s to 365d"),
        "{}",
        found[0]
    );
    assert_eq!(found[0].line, 12);
    let found = errors(&failover("write_within", "1ms"));
    assert!(
        found[0]
            .message
            .contains("`write_within` = \"1ms\" is out of range"),
        "{}",
        found[0]
    );
    one(
        &format!(
            "{PROBE}\n[[remediation]]\nname = \"r\"\non = {{ probe = \"disk\" }}\n\
             action = {{ webhook = \"http://x\", timeout = \"40d\" }}\n"
        ),
        8,
        44,
        &["`timeout` = \"40d\" is out of range: write a duration from 10ms to 30d"],
    );
}

#[test]
fn durations_at_the_edges_of_their_range_are_accepted() {
    let text = format!(
        "{PROBE}every = \"10ms\"\ntimeout = \"30d\"\n\
         \n[[remediation]]\nname = \"r\"\non = {{ probe = \"disk\" }}\n\
         action = {{ exec = [\"true\"], timeout = \"10ms\" }}\ncooldown = \"0s\"\n\
         limit = {{ count = 1, per = \"365d\" }}\n"
    );
    let config = parse_str("w.toml", &text, Path::new("/")).unwrap();
    let probe = &config.probes[0];
    assert_eq!(probe.every, std::time::Duration::from_millis(10));
    assert_eq!(probe.timeout, std::time::Duration::from_secs(30 * 86_400));
    let r = &config.remediations[0];
    assert_eq!(r.cooldown, std::time::Duration::ZERO);
    assert_eq!(
        r.limit.unwrap().per,
        std::time::Duration::from_secs(365 * 86_400)
    );
    let text = format!(
        "{PROBE}\n[[remediation]]\nname = \"r\"\non = {{ probe = \"disk\" }}\naction = {{ exec = [\"true\"] }}\ncooldown = \"365d\"\n"
    );
    assert!(parse_str("w.toml", &text, Path::new("/")).is_ok());
}

#[test]
fn sizes_out_of_range_are_refused_at_their_place() {
    one(
        &format!("{PROBE}memory = \"2GiB\"\n"),
        4,
        10,
        &["`memory` = \"2GiB\" is out of range: write a size from 64KiB to 1GiB"],
    );
    one(
        &format!("{PROBE}memory = \"1KiB\"\n"),
        4,
        10,
        &["`memory` = \"1KiB\" is out of range"],
    );
    one(
        "[agent]\ncache_size = \"99999999999999999999GiB\"\n",
        2,
        14,
        &[
            "`cache_size` = \"99999999999999999999GiB\" is out of range: write a size from 1B to 1TiB",
        ],
    );
    let text = format!("{PROBE}memory = \"1GiB\"\n");
    assert_eq!(
        parse_str("w.toml", &text, Path::new("/")).unwrap().probes[0].memory,
        1 << 30
    );
}

#[test]
fn mysql_targets_take_a_url_and_refuse_what_only_postgresql_has() {
    let text = "[targets.db]\nkind = \"mysql\"\ndsn = \"mysql://watchpost@127.0.0.1:3306/app\"\n";
    let config = parse_str("w.toml", text, Path::new("/nonexistent")).expect("a mysql target");
    assert_eq!(config.targets["db"].kind, TargetKind::Mysql);
    one(
        "[targets.db]\nkind = \"mysql\"\ndsn = \"host=127.0.0.1\"\n",
        3,
        7,
        &["[targets.db]: `dsn` is not usable", "mysql://"],
    );
    one(
        "[targets.db]\nkind = \"mysql\"\ndsn = \"mysql://w@db/\"\nadmin_dsn = \"host=db\"\n",
        4,
        13,
        &["`admin_dsn` is not usable", "mysql://"],
    );
    one(
        "[targets.db]\nkind = \"oracle\"\ndsn = \"host=db\"\n",
        2,
        8,
        &["`kind` = \"oracle\" is not supported", "\"mysql\""],
    );
}
