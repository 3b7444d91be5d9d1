//! `redis-replication` on real `redis-server` primaries and replicas
//! (issue 28): a link down past the limit is critical, a replica frozen
//! while the primary writes shows its lag in bytes, and two servers that
//! both claim to be primary are a split brain (count 2, critical); a
//! full-resync loop (tiny replica output buffer, a burst) counts each
//! full resync and refused partial one; a frozen primary is a timeout,
//! never "refused".

use std::path::Path;
use std::time::Duration;
use watchpost_e2e::redis::Redis;
use watchpost_e2e::report::{Checked, check, sets};

fn replication(targets: &[(&str, &Redis)], pairs: &[(&str, &str)]) -> Checked {
    let mut args = Vec::new();
    for (name, redis) in targets {
        args.push("--target".to_string());
        args.push(format!("{name}={}", redis.url()));
    }
    args.extend(sets(pairs));
    check(Path::new("builtin:redis-replication"), &args)
}

fn value(checked: &Checked, name: &str) -> Option<f64> {
    checked.measurements(name).first()?["value"].as_f64()
}

#[test]
fn a_healthy_pair_and_a_link_down_past_the_limit() {
    let mut primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    let checked = replication(&[("primary", &primary), ("replica", &replica)], &[]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert_eq!(value(&checked, "redis.slaves.connected"), Some(1.0));
    assert_eq!(value(&checked, "redis.replication.primaries"), Some(1.0));
    let checked = replication(&[("primary", &replica)], &[("link_down_critical", "1")]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert_eq!(value(&checked, "redis.replication.link.up"), Some(1.0));

    primary.kill9();
    std::thread::sleep(Duration::from_millis(2500));
    let checked = replication(&[("primary", &replica)], &[("link_down_critical", "1")]);
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert!(
        checked.message().contains("is down for"),
        "{}",
        checked.message()
    );
    assert_eq!(value(&checked, "redis.replication.link.up"), Some(0.0));
    assert!(value(&checked, "redis.replication.link.down_duration").unwrap() > 1.0);
}

#[test]
fn a_frozen_replica_shows_its_lag_in_bytes() {
    let primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    replica.pause(true);
    let value_text = "x".repeat(10_000);
    for i in 0..100 {
        primary.cli(&["SET", &format!("k{i}"), &value_text]);
    }
    let checked = replication(
        &[("primary", &primary)],
        &[
            ("lag_bytes_warning", "100000"),
            ("lag_bytes_critical", "500000"),
        ],
    );
    replica.pause(false);
    let lag = value(&checked, "redis.replication.replica.lag").unwrap();
    assert!(lag >= 1_000_000.0, "{lag}: {}", checked.message());
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert!(
        checked.message().contains("bytes behind"),
        "{}",
        checked.message()
    );
}

#[test]
fn two_primaries_are_a_split_brain() {
    let one = Redis::start();
    let two = Redis::start();
    let checked = replication(&[("primary", &one), ("other", &two)], &[]);
    assert_eq!(value(&checked, "redis.replication.primaries"), Some(2.0));
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert!(
        checked.message().contains("split brain"),
        "{}",
        checked.message()
    );
}

/// A full-resync loop: a replica output buffer of 256 kB (hard) and a
/// 16 kB backlog on the primary; each round the replica is frozen while
/// an 8 MB value is written, so the primary drops it for overcoming its
/// output buffer limit and, the backlog too small, its partial resync is
/// refused and a full one follows. The counters read on the primary grow
/// by one full resync and one partial-sync error per round.
#[test]
fn a_full_resync_loop_counts_each_resync() {
    const ROUNDS: usize = 3;
    let primary = Redis::with_args(&[
        "--client-output-buffer-limit",
        "replica 256kb 128kb 1",
        "--repl-backlog-size",
        "16kb",
    ]);
    let replica = Redis::replica_of(&primary);
    let before = replication(&[("primary", &primary)], &[]);
    assert_eq!(before.status(), "ok", "{}", before.message());
    let full = value(&before, "redis.sync.full").expect("redis.sync.full measured");
    let refused =
        value(&before, "redis.sync.partial.errors").expect("redis.sync.partial.errors measured");

    let big = std::env::temp_dir().join(format!("watchpost-big-{}", std::process::id()));
    std::fs::write(&big, vec![b'x'; 8_000_000]).expect("write the big value");
    for round in 0..ROUNDS {
        let wanted = full as u64 + round as u64 + 1;
        replica.pause(true);
        let status = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &primary.port().to_string(), "-x"])
            .args(["SET", &format!("big{round}")])
            .stdin(std::fs::File::open(&big).expect("open the big value"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run redis-cli");
        replica.pause(false);
        assert!(status.success(), "SET of the big value failed");
        watchpost_e2e::pg::wait_until(
            Duration::from_secs(60),
            &format!("full resync number {wanted}"),
            || {
                primary
                    .info("stats", "sync_full")
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|n| n >= wanted)
            },
        );
        replica.wait_linked();
    }
    let _ = std::fs::remove_file(&big);
    let after = replication(&[("primary", &primary)], &[]);
    assert_eq!(
        value(&after, "redis.sync.full"),
        Some(full + ROUNDS as f64),
        "{}",
        after.message()
    );
    assert_eq!(
        value(&after, "redis.sync.partial.errors"),
        Some(refused + ROUNDS as f64),
        "{}",
        after.message()
    );
    assert!(
        primary
            .log_text()
            .contains("overcoming of output buffer limits"),
        "the primary never dropped its replica for its output buffer"
    );
}

/// A frozen primary (`SIGSTOP`: the kernel still accepts connections,
/// nothing answers) is a timeout, never "refused": asked directly the
/// run is critical by a timeout; asked from its replica's side, the
/// replica's link is still up and the primary is named as not counted,
/// by a timeout.
#[test]
fn a_frozen_primary_is_a_timeout_not_a_refusal() {
    let primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    primary.pause(true);
    let mut args = vec![
        "--target".to_string(),
        format!("primary={}", primary.url()),
        "--timeout".to_string(),
        "2s".to_string(),
    ];
    let direct = check(Path::new("builtin:redis-replication"), &args);
    args = vec![
        "--target".to_string(),
        format!("replica={}", replica.url()),
        "--target".to_string(),
        format!("old={}", primary.url()),
        "--timeout".to_string(),
        "2s".to_string(),
    ];
    args.extend(sets(&[("target", "replica")]));
    let side = check(Path::new("builtin:redis-replication"), &args);
    primary.pause(false);
    assert_eq!(direct.status(), "critical", "{}", direct.message());
    assert!(direct.message().contains("timeout"), "{}", direct.message());
    assert!(!direct.message().contains("refus"), "{}", direct.message());
    assert_eq!(value(&side, "redis.replication.link.up"), Some(1.0));
    assert_eq!(value(&side, "redis.replication.primaries"), Some(0.0));
    assert!(
        side.message().contains("not counted") && side.message().contains("old (timeout"),
        "{}",
        side.message()
    );
    assert!(!side.message().contains("refus"), "{}", side.message());
}
