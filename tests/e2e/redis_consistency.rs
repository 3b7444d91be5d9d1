//! `redis-consistency` on real `redis-server` primaries and replicas
//! (issue 28): a replica in step is ok over the whole keyspace; one made
//! to diverge through `replica-read-only no` is critical and the keys are
//! named with how they differ; keys written all through the check are
//! never reported (the "seen unchanged" rule); servers without
//! `enable-debug-command` are `unknown` naming it; and a SCAN of a million
//! keys stays within the run's budget, reporting partial progress rather
//! than a timeout.

use std::path::Path;
use std::process::{Command, Stdio};
use watchpost_e2e::redis::Redis;
use watchpost_e2e::report::{Checked, check, sets};

const DEBUG: &[&str] = &["--enable-debug-command", "local"];

fn consistency(primary: &Redis, replica: &Redis, pairs: &[(&str, &str)]) -> Checked {
    let mut args = vec![
        "--target".to_string(),
        format!("primary={}", primary.url()),
        "--target".to_string(),
        format!("replica={}", replica.url()),
        "--timeout".to_string(),
        "10s".to_string(),
    ];
    args.extend(sets(pairs));
    check(Path::new("builtin:redis-consistency"), &args)
}

/// A primary with some keys of every common type, and a writable replica
/// in step with it.
fn pair() -> (Redis, Redis) {
    let primary = Redis::with_args(DEBUG);
    // DEBUG POPULATE is not replicated: before the replica's full sync.
    primary.cli(&["DEBUG", "POPULATE", "2000", "item", "20"]);
    let replica = Redis::replica_with(
        &primary,
        &[
            "--enable-debug-command",
            "local",
            "--replica-read-only",
            "no",
        ],
    );
    primary.cli(&["SET", "order:17", "paid"]);
    primary.cli(&["HSET", "user:1", "name", "ada", "plan", "pro"]);
    primary.cli(&["RPUSH", "queue", "a", "b", "c"]);
    primary.cli(&["ZADD", "scores", "1", "x", "2", "y"]);
    replica.wait_caught_up(&primary);
    (primary, replica)
}

#[test]
fn a_replica_in_step_is_ok_and_divergence_names_the_keys() {
    let (primary, replica) = pair();
    let checked = consistency(&primary, &replica, &[]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert_eq!(checked.value("redis.consistency.mismatched_keys"), 0.0);
    assert_eq!(checked.value("redis.consistency.complete"), 1.0);
    assert_eq!(checked.value("redis.consistency.coverage"), 1.0);
    assert!(checked.value("redis.consistency.compared_keys") >= 2004.0);

    // Written on the replica behind the primary's back.
    replica.cli(&["SET", "order:17", "refunded"]);
    replica.cli(&["HSET", "user:1", "plan", "free"]);
    replica.cli(&["DEL", "queue"]);
    let checked = consistency(&primary, &replica, &[]);
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert_eq!(checked.value("redis.consistency.mismatched_keys"), 3.0);
    let message = checked.message();
    for named in [
        "`order:17` (a different value)",
        "`user:1` (a different value)",
        "`queue` (missing on the replica)",
    ] {
        assert!(message.contains(named), "{named} not in: {message}");
    }
    assert!(!message.contains("item:"), "{message}");
}

#[test]
fn keys_written_throughout_are_never_reported() {
    let (primary, replica) = pair();
    // A writer on the primary for the whole check: INCR on a few keys as
    // fast as redis-cli sends them.
    let port = primary.port().to_string();
    let mut writer = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-r",
            "-1",
            "INCR",
            "counter",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a writer");
    let mut writer2 = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port, "-r", "-1", "INCR", "item:7"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a writer");
    let runs: Vec<Checked> = (0..3)
        .map(|_| consistency(&primary, &replica, &[]))
        .collect();
    let _ = writer.kill();
    let _ = writer.wait();
    let _ = writer2.kill();
    let _ = writer2.wait();
    for checked in runs {
        assert_eq!(checked.status(), "ok", "{}", checked.message());
        assert_eq!(checked.value("redis.consistency.mismatched_keys"), 0.0);
    }
}

#[test]
fn without_enable_debug_command_it_is_unknown_naming_it() {
    let primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    let checked = consistency(&primary, &replica, &[]);
    assert_eq!(checked.status(), "unknown", "{}", checked.message());
    assert!(
        checked.message().contains("enable-debug-command"),
        "{}",
        checked.message()
    );
}

#[test]
fn a_million_keys_are_walked_within_the_budget_in_part() {
    let primary = Redis::with_args(DEBUG);
    primary.cli(&["DEBUG", "POPULATE", "1000000", "key", "10"]);
    let replica = Redis::replica_with(&primary, DEBUG);
    replica.wait_caught_up(&primary);
    assert_eq!(replica.cli(&["DBSIZE"]), "1000000");
    let checked = consistency(
        &primary,
        &replica,
        &[("time_budget", "500ms"), ("batch", "100")],
    );
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert!(checked.json["error"].is_null(), "{:#}", checked.json);
    assert_eq!(checked.value("redis.consistency.complete"), 0.0);
    let compared = checked.value("redis.consistency.compared_keys");
    assert!(compared > 0.0 && compared < 1_000_000.0, "{compared}");
    let coverage = checked.value("redis.consistency.coverage");
    assert!(coverage > 0.0 && coverage < 1.0, "{coverage}");
    assert!(
        checked
            .message()
            .contains("% of the keyspace from a random position"),
        "{}",
        checked.message()
    );
    assert_eq!(checked.value("redis.consistency.mismatched_keys"), 0.0);
}
