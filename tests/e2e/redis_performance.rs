//! `redis-performance` on real `redis-server` instances (issue 28): a
//! quiet server is ok with its canary, memory and clients measured; a
//! latency spike (`DEBUG SLEEP`) is judged by its size and shows in the
//! slow log; memory at `maxmemory` with an eviction policy is a warning
//! naming the evictions, and with `noeviction` (writes refused with OOM)
//! critical.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use watchpost_e2e::pg::wait_until;
use watchpost_e2e::redis::Redis;
use watchpost_e2e::report::{Checked, check, sets};

/// The canary's limits are loose here: this is not where speed is
/// measured (a loaded test machine answers PING slowly at times).
const LOOSE: &[(&str, &str)] = &[("latency_warning", "5"), ("latency_critical", "10")];

fn performance(redis: &Redis, pairs: &[(&str, &str)]) -> Checked {
    let mut args = vec!["--target".to_string(), format!("primary={}", redis.url())];
    args.extend(sets(LOOSE));
    args.extend(sets(pairs));
    check(Path::new("builtin:redis-performance"), &args)
}

#[test]
fn a_quiet_server_is_ok_and_measured() {
    let redis = Redis::start();
    let checked = performance(&redis, &[("tries", "3")]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert_eq!(
        checked.measurements("db.client.operation.duration").len(),
        3
    );
    assert!(
        checked
            .value_where("redis.canary.duration", "statistic", "p50")
            .unwrap()
            > 0.0
    );
    assert!(checked.value("redis.memory.used") > 0.0);
    assert!(checked.value("redis.clients.connected") >= 1.0);
    assert_eq!(checked.value("redis.clients.blocked"), 0.0);
    assert_eq!(checked.value("redis.keys.evicted"), 0.0);
    assert_eq!(checked.value("redis.slowlog.new"), 0.0);
    assert!(
        checked.message().contains("latency monitor is off"),
        "{}",
        checked.message()
    );
}

#[test]
fn a_latency_spike_is_judged_and_in_the_slow_log() {
    let redis = Redis::with_args(&[
        "--enable-debug-command",
        "local",
        "--latency-monitor-threshold",
        "100",
    ]);
    let checked = performance(&redis, &[]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert!(checked.measurements("redis.latency.spike").is_empty());

    redis.cli(&["DEBUG", "SLEEP", "0.5"]);
    let checked = performance(
        &redis,
        &[
            ("spike_warning", "0.2"),
            ("spike_critical", "0.4"),
            // Any new entry is a warning (limits are exclusive).
            ("slowlog_warning", "0"),
        ],
    );
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    let spike = checked
        .value_where("redis.latency.spike", "event", "command")
        .expect("a `command` spike");
    assert!(spike >= 0.5, "{spike}");
    assert!(
        checked.message().contains("`command` latency spike"),
        "{}",
        checked.message()
    );
    assert!(checked.value("redis.slowlog.new") >= 1.0);
    assert!(checked.value("redis.slowlog.last_id") >= 0.0);
    assert!(
        checked
            .message()
            .to_lowercase()
            .contains("the slowest `debug`"),
        "{}",
        checked.message()
    );
}

/// Fill `redis` far past its `maxmemory` (DEBUG POPULATE does not evict)
/// and let the next writes make room as its policy says.
fn overfill(redis: &Redis) {
    redis.cli(&["DEBUG", "POPULATE", "50000", "key", "100"]);
    for i in 0..20 {
        let _ = redis.try_cli(&["SET", &format!("more:{i}"), "x"]);
    }
}

#[test]
fn memory_pressure_with_evictions_is_a_warning_naming_them() {
    let redis = Redis::with_args(&[
        "--enable-debug-command",
        "local",
        "--maxmemory",
        "2mb",
        "--maxmemory-policy",
        "allkeys-lru",
    ]);
    overfill(&redis);
    // Pressure that goes on: a writer adding new keys all through the
    // check, so that the server stays at its limit, evicting.
    let port = redis.port().to_string();
    let mut writer = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port, "-r", "-1", "EVAL"])
        .arg("redis.call('SET', 'new:' .. math.random(1000000000), string.rep('x', 100))")
        .arg("0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a writer");
    let evicted = || {
        redis
            .info("stats", "evicted_keys")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = evicted();
    wait_until(
        Duration::from_secs(30),
        "the writer to cause evictions",
        || evicted() > before,
    );
    // One INFO snapshot per check: under a loaded machine one was taken
    // at 80 % of maxmemory between eviction bursts (2026-12-07, 3 test
    // threads on 2 cores), so up to three checks, a second apart, while
    // the writer keeps the server at its limit.
    let mut seen = Vec::new();
    let checked = loop {
        let checked = performance(&redis, &[]);
        if checked.status() == "warning" || seen.len() == 2 {
            break checked;
        }
        seen.push(checked.message().to_string());
        std::thread::sleep(Duration::from_secs(1));
    };
    let _ = writer.kill();
    let _ = writer.wait();
    assert_eq!(
        checked.status(),
        "warning",
        "{} (earlier checks: {seen:?})",
        checked.message()
    );
    assert!(checked.value("redis.keys.evicted") > before as f64);
    assert!(checked.value("redis.memory.used_ratio") > 0.9);
    assert_eq!(checked.value("redis.maxmemory"), 2.0 * 1048576.0);
    assert!(
        checked.message().contains("keys evicted") && checked.message().contains("allkeys-lru"),
        "{}",
        checked.message()
    );
}

#[test]
fn memory_full_without_eviction_is_critical() {
    let redis = Redis::with_args(&[
        "--enable-debug-command",
        "local",
        "--maxmemory",
        "2mb",
        "--maxmemory-policy",
        "noeviction",
    ]);
    overfill(&redis);
    let refused = redis.try_cli(&["SET", "one", "more"]).unwrap_or_default();
    assert!(refused.starts_with("OOM"), "{refused}");
    let checked = performance(&redis, &[]);
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert!(checked.message().contains("OOM"), "{}", checked.message());
    assert_eq!(checked.value("redis.keys.evicted"), 0.0);
    assert!(checked.value("redis.memory.used_ratio") > 1.0);
}
