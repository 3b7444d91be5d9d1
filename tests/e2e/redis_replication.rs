//! `redis-replication` on real `redis-server` primaries and replicas
//! (issue 28): a link down past the limit is critical, a replica frozen
//! while the primary writes shows its lag in bytes, and two servers that
//! both claim to be primary are a split brain (count 2, critical).

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
