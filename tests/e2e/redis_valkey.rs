//! `redis-alive` and `redis-replication` on real Valkey servers (issue
//! 28: "support it by what `INFO server` says, and test it"): Valkey 8
//! from Debian's bookworm-backports, unpacked by `cargo xtask setup` (see
//! `xtask/src/valkey.rs`). A primary and a replica are up with their
//! roles and named as Valkey; the pair replicates (one replica online, one
//! primary, the link up); a killed primary is down and its replica's link
//! down past the limit is critical.

use std::path::Path;
use watchpost_e2e::pg::wait_until;
use watchpost_e2e::redis::Redis;
use watchpost_e2e::report::{Checked, check, sets};

fn run(probe: &str, targets: &[(&str, &Redis)], pairs: &[(&str, &str)]) -> Checked {
    let mut args = Vec::new();
    for (name, server) in targets {
        args.push("--target".to_string());
        args.push(format!("{name}={}", server.url()));
    }
    args.extend(["--timeout".to_string(), "3s".to_string()]);
    args.extend(sets(pairs));
    check(Path::new(&format!("builtin:{probe}")), &args)
}

fn value(checked: &Checked, name: &str) -> Option<f64> {
    checked.measurements(name).first()?["value"].as_f64()
}

#[test]
fn valkey_pair_is_alive_replicating_and_its_faults_named() {
    let mut primary = Redis::valkey(&[]);
    let replica = Redis::valkey_replica_of(&primary);
    let version = primary
        .info("server", "valkey_version")
        .expect("a Valkey server says valkey_version in INFO server");

    let up = run("redis-alive", &[("primary", &primary)], &[]);
    assert_eq!(up.status(), "ok", "{}", up.message());
    assert!(
        up.message().contains(&format!("valkey {version}")),
        "{} / {version}",
        up.message()
    );
    assert!(up.message().contains("as a primary"), "{}", up.message());
    assert_eq!(value(&up, "redis.up"), Some(1.0));
    assert_eq!(value(&up, "redis.role.primary"), Some(1.0));
    let up = run(
        "redis-alive",
        &[("primary", &replica)],
        &[("role", "replica")],
    );
    assert_eq!(up.status(), "ok", "{}", up.message());
    assert_eq!(value(&up, "redis.role.primary"), Some(0.0));

    let linked = run(
        "redis-replication",
        &[("primary", &primary), ("replica", &replica)],
        &[],
    );
    assert_eq!(linked.status(), "ok", "{}", linked.message());
    assert_eq!(value(&linked, "redis.slaves.connected"), Some(1.0));
    assert_eq!(value(&linked, "redis.replication.primaries"), Some(1.0));
    let from_replica = run(
        "redis-replication",
        &[("primary", &replica)],
        &[("link_down_critical", "1")],
    );
    assert_eq!(from_replica.status(), "ok", "{}", from_replica.message());
    assert_eq!(value(&from_replica, "redis.replication.link.up"), Some(1.0));

    primary.kill9();
    let down = run("redis-alive", &[("primary", &primary)], &[]);
    assert_eq!(down.status(), "critical", "{}", down.message());
    assert!(down.message().contains("is down"), "{}", down.message());
    assert_eq!(value(&down, "redis.up"), Some(0.0));
    // The replica's link is down past the 1 s limit: critical, its
    // duration measured.
    wait_until(
        std::time::Duration::from_secs(30),
        "the replica's link down past 1 s",
        || {
            replica
                .info("replication", "master_link_down_since_seconds")
                .and_then(|s| s.parse::<f64>().ok())
                .is_some_and(|s| s > 1.0)
        },
    );
    let cut = run(
        "redis-replication",
        &[("primary", &replica)],
        &[("link_down_critical", "1")],
    );
    assert_eq!(cut.status(), "critical", "{}", cut.message());
    assert!(cut.message().contains("is down for"), "{}", cut.message());
    assert_eq!(value(&cut, "redis.replication.link.up"), Some(0.0));
}
