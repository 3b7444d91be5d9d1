//! The `redis` capability on a real `redis-server` (issue 28), through the
//! `redisrun` test probe and `watchpost check --target NAME=redis://...`:
//! hostile commands (FLUSHALL, CONFIG SET, SHUTDOWN, EVAL, MODULE LOAD,
//! ...) are refused by the agent before they reach the server (the
//! server's own `INFO commandstats` and data prove it), a reply larger
//! than the probe's memory is cut off, and a SCAN of a million keys stays
//! within the run's deadline.

use watchpost_e2e::probes;
use watchpost_e2e::redis::Redis;
use watchpost_e2e::report::{Checked, check, sets};

/// `redisrun` against `redis` as target `primary` with `pairs` set.
fn run(redis: &Redis, pairs: &[(&str, &str)], extra: &[&str]) -> Checked {
    let mut args = vec!["--target".to_string(), format!("primary={}", redis.url())];
    args.extend(sets(pairs));
    args.extend(extra.iter().map(|s| s.to_string()));
    check(&probes::path("redisrun"), &args)
}

#[test]
fn hostile_commands_are_refused_before_they_reach_the_server() {
    let redis = Redis::start();
    redis.cli(&["SET", "precious", "data"]);
    let maxmemory = redis.cli(&["CONFIG", "GET", "maxmemory"]);
    let hostile = [
        ("FLUSHALL", "flushall"),
        ("FLUSHDB", "flushdb"),
        ("CONFIG|SET|maxmemory|1mb", "config|set"),
        ("SHUTDOWN|NOSAVE", "shutdown"),
        ("EVAL|redis.call('FLUSHALL')|0", "eval"),
        ("MODULE|LOAD|/tmp/evil.so", "module|load"),
        ("MULTI", "multi"),
        ("SUBSCRIBE|news", "subscribe"),
        ("CLIENT|KILL|TYPE|normal", "client|kill"),
        ("DEL|precious", "del"),
        ("KEYS|*", "keys"),
        ("DEBUG|SLEEP|5", "debug"),
    ];
    for (cmd, stat) in hostile {
        let checked = run(&redis, &[("cmd", cmd)], &[]);
        assert!(
            checked.message().starts_with("error not-allowed:"),
            "{cmd}: {}",
            checked.message()
        );
        assert!(
            checked.message().contains("not sent"),
            "{}",
            checked.message()
        );
        assert_eq!(redis.calls(stat), 0, "{cmd} reached the server");
    }
    assert_eq!(redis.cli(&["GET", "precious"]), "data");
    assert_eq!(redis.cli(&["CONFIG", "GET", "maxmemory"]), maxmemory);
    // The allowed ones do reach it.
    let checked = run(&redis, &[("cmd", "GET|precious")], &[]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert!(checked.message().contains("Bulk"), "{}", checked.message());
    assert_eq!(redis.calls("get"), 2);
}

#[test]
fn a_scan_of_a_million_keys_stays_within_the_run() {
    let redis = Redis::with_debug();
    redis.cli(&["DEBUG", "POPULATE", "1000000"]);
    assert_eq!(redis.cli(&["DBSIZE"]), "1000000");
    // A COUNT past the agent's bound is refused, not sent.
    let checked = run(&redis, &[("cmd", "SCAN|0|COUNT|1000000")], &[]);
    assert!(
        checked.message().contains("COUNT must be"),
        "{}",
        checked.message()
    );
    assert_eq!(redis.calls("scan"), 0);
    // A walk with a small timeout ends at the deadline, as a report of
    // how far it got, never past the run's time.
    let checked = run(
        &redis,
        &[("scan", "true"), ("count", "100")],
        &["--timeout", "1s"],
    );
    assert!(checked.duration_ms() < 1500.0, "{}", checked.duration_ms());
    assert!(
        checked.message().starts_with("error timeout:"),
        "{}",
        checked.message()
    );
    let keys = checked.measurements("redis.scan.keys")[0]["value"]
        .as_f64()
        .unwrap();
    assert!(keys > 0.0 && keys < 1_000_000.0, "{keys}");
    // With time enough it sees every key.
    let checked = run(
        &redis,
        &[("scan", "true"), ("count", "10000")],
        &["--timeout", "60s"],
    );
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    let keys = checked.measurements("redis.scan.keys")[0]["value"]
        .as_f64()
        .unwrap();
    assert!(keys >= 1_000_000.0, "{keys}");
}

#[test]
fn a_reply_larger_than_the_probe_may_hold_is_cut_off() {
    let redis = Redis::start();
    // 40 MB in one value: more than the 16 MiB any reply may be.
    redis.cli(&["SETRANGE", "big", "40000000", "x"]);
    let checked = run(&redis, &[("cmd", "GET|big")], &[]);
    assert!(
        checked.message().starts_with("error too-large:"),
        "{}",
        checked.message()
    );
    // The connection was replaced: the next call works.
    let checked = run(&redis, &[("cmd", "STRLEN|big")], &[]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert!(
        checked.message().contains("40000001"),
        "{}",
        checked.message()
    );
}

#[test]
fn a_bad_target_url_is_a_usage_error_naming_it() {
    let outcome = watchpost_e2e::cli::watchpost_run(&[
        "check".to_string(),
        probes::path("redisrun").display().to_string(),
        "--target".to_string(),
        "primary=redis://u:secret@[bad".to_string(),
    ]);
    assert_ne!(outcome.code, 0);
    assert!(outcome.stderr.contains("Redis URL"), "{}", outcome.stderr);
    assert!(!outcome.stderr.contains("secret"), "{}", outcome.stderr);
}

#[test]
fn the_example_config_is_valid() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let password = dir.path().join("redis-password");
    std::fs::write(&password, "secret\n").expect("write the password");
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600))
        .expect("chmod the password");
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/redis-node.toml"),
    )
    .expect("read the example");
    let config = dir.path().join("redis-node.toml");
    std::fs::write(
        &config,
        example.replace(
            "/etc/watchpost/redis-password",
            &password.display().to_string(),
        ),
    )
    .expect("write the config");
    let outcome = watchpost_e2e::cli::watchpost_run(&[
        "validate".to_string(),
        "-c".to_string(),
        config.display().to_string(),
    ]);
    assert_eq!(outcome.code, 0, "{}\n{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome.stdout.contains("valid (6 probes, 2 targets"),
        "{}",
        outcome.stdout
    );
}
