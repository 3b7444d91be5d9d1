//! `redis-alive` on a real `redis-server` (issue 28), through `watchpost
//! check builtin:redis-alive --target primary=redis://...`: each fault
//! with the right value. Killed (`kill -9`): critical, down. Frozen
//! (`SIGSTOP`): critical by a timeout, never "refused". A busy script and
//! max clients: warning, refusing, never down.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use watchpost_e2e::pg::wait_until;
use watchpost_e2e::redis::Redis;
use watchpost_e2e::report::{Checked, check, sets};

fn alive(redis: &Redis, pairs: &[(&str, &str)]) -> Checked {
    let mut args = vec![
        "--target".to_string(),
        format!("primary={}", redis.url()),
        "--timeout".to_string(),
        "3s".to_string(),
    ];
    args.extend(sets(pairs));
    check(Path::new("builtin:redis-alive"), &args)
}

fn value(checked: &Checked, name: &str) -> Option<f64> {
    checked.measurements(name).first()?["value"].as_f64()
}

#[test]
fn up_with_its_role_and_the_wrong_role_is_critical() {
    let primary = Redis::start();
    let replica = Redis::replica_of(&primary);
    let checked = alive(&primary, &[]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert!(
        checked.message().contains("as a primary"),
        "{}",
        checked.message()
    );
    assert!(
        checked.message().contains("redis 7"),
        "{}",
        checked.message()
    );
    assert_eq!(value(&checked, "redis.up"), Some(1.0));
    assert_eq!(value(&checked, "redis.accepting_connections"), Some(1.0));
    assert_eq!(value(&checked, "redis.role.primary"), Some(1.0));
    assert!(value(&checked, "redis.connect.duration").unwrap() > 0.0);
    assert!(value(&checked, "redis.clients.connected").unwrap() >= 1.0);

    let checked = alive(&replica, &[("role", "replica")]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert_eq!(value(&checked, "redis.role.primary"), Some(0.0));
    let checked = alive(&replica, &[("role", "primary")]);
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert!(
        checked.message().contains("requires a primary"),
        "{}",
        checked.message()
    );
}

#[test]
fn killed_is_critical_and_down() {
    let mut redis = Redis::start();
    redis.kill9();
    let checked = alive(&redis, &[]);
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert!(
        checked.message().contains("is down"),
        "{}",
        checked.message()
    );
    assert_eq!(value(&checked, "redis.up"), Some(0.0));
}

#[test]
fn frozen_is_a_timeout_not_a_refusal() {
    let redis = Redis::start();
    redis.pause(true);
    let checked = alive(&redis, &[]);
    redis.pause(false);
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert!(
        checked.message().contains("did not answer in time"),
        "{}",
        checked.message()
    );
    assert!(
        !checked.message().contains("refus"),
        "{}",
        checked.message()
    );
    assert!(checked.duration_ms() < 3500.0, "{}", checked.duration_ms());
    // Thawed, it is up again.
    let checked = alive(&redis, &[]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
}

#[test]
fn a_busy_script_is_refusing_not_down() {
    let redis = Redis::with_args(&["--busy-reply-threshold", "100"]);
    let mut script = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.port().to_string()])
        .args(["EVAL", "while true do end", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-cli");
    wait_until(Duration::from_secs(10), "the server to answer BUSY", || {
        redis
            .try_cli(&["PING"])
            .is_some_and(|r| r.starts_with("BUSY"))
    });
    let checked = alive(&redis, &[]);
    let _ = redis.try_cli(&["SCRIPT", "KILL"]);
    let _ = script.kill();
    let _ = script.wait();
    assert_eq!(checked.status(), "warning", "{}", checked.message());
    assert!(
        checked.message().contains("refusing"),
        "{}",
        checked.message()
    );
    assert!(checked.message().contains("BUSY"), "{}", checked.message());
    assert_eq!(value(&checked, "redis.up"), Some(1.0));
    assert_eq!(value(&checked, "redis.accepting_connections"), Some(0.0));
}

#[test]
fn max_clients_is_refusing_not_down() {
    let redis = Redis::with_args(&["--maxclients", "2"]);
    let address = format!("127.0.0.1:{}", redis.port());
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&address).expect("connect"))
        .collect();
    wait_until(Duration::from_secs(10), "the clients to be counted", || {
        redis
            .try_cli(&["PING"])
            .is_none_or(|r| r.contains("max number"))
    });
    let checked = alive(&redis, &[]);
    drop(held);
    assert_eq!(checked.status(), "warning", "{}", checked.message());
    assert!(
        checked.message().contains("max number of clients"),
        "{}",
        checked.message()
    );
    assert_eq!(value(&checked, "redis.up"), Some(1.0));
}
