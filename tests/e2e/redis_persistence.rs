//! `redis-persistence` on real `redis-server` instances (issue 28): a
//! `BGSAVE` failing on a directory the server cannot write is critical and
//! names the directory; the same server, writable again and saved, is ok
//! with its save schedule; AOF on is reported with its writes ok; a server
//! with no persistence at all says so and is ok, or a warning when the
//! config says `required`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use watchpost_e2e::pg::wait_until;
use watchpost_e2e::redis::Redis;
use watchpost_e2e::report::{Checked, check, sets};

fn persistence(redis: &Redis, pairs: &[(&str, &str)]) -> Checked {
    let mut args = vec!["--target".to_string(), format!("primary={}", redis.url())];
    args.extend(sets(pairs));
    check(Path::new("builtin:redis-persistence"), &args)
}

/// Start a `BGSAVE` and wait until it ended (the server forks before it
/// answers, so "in progress" is set by then); its status (`ok` or `err`).
fn bgsave(redis: &Redis) -> String {
    redis.cli(&["BGSAVE"]);
    wait_until(Duration::from_secs(30), "the BGSAVE to end", || {
        redis
            .info("persistence", "rdb_bgsave_in_progress")
            .as_deref()
            == Some("0")
    });
    redis
        .info("persistence", "rdb_last_bgsave_status")
        .unwrap_or_default()
}

fn chmod(dir: &Path, mode: u32) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_bgsave_failing_on_an_unwritable_directory_is_critical_and_named() {
    let redis = Redis::unprivileged(&[]);
    redis.cli(&["CONFIG", "SET", "save", "3600 1"]);
    redis.cli(&["SET", "order:1", "paid"]);
    chmod(redis.dir(), 0o555);
    assert_eq!(bgsave(&redis), "err", "{}", redis.log_text());
    let checked = persistence(&redis, &[]);
    chmod(redis.dir(), 0o755);
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    let dir = redis.dir().display().to_string();
    assert!(
        checked.message().contains("BGSAVE failed") && checked.message().contains(&dir),
        "{dir} not named: {}",
        checked.message()
    );
    assert!(
        checked.message().contains("MISCONF"),
        "{}",
        checked.message()
    );
    assert_eq!(checked.value("redis.rdb.last_bgsave.ok"), 0.0);
    assert_eq!(checked.value("redis.rdb.enabled"), 1.0);
    assert!(checked.value("redis.rdb.changes_since_last_save") >= 1.0);

    // Writable again: the next save succeeds and all is well.
    assert_eq!(bgsave(&redis), "ok", "{}", redis.log_text());
    let checked = persistence(&redis, &[]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert!(
        checked.message().contains("RDB snapshots (save 3600 1)"),
        "{}",
        checked.message()
    );
    assert_eq!(checked.value("redis.rdb.last_bgsave.ok"), 1.0);
    assert_eq!(checked.value("redis.rdb.changes_since_last_save"), 0.0);
    assert!(checked.value("redis.latest_fork") > 0.0);
    assert!(checked.value("redis.rdb.last_save.age") < 3600.0);
}

#[test]
fn aof_on_is_reported_with_its_writes() {
    let redis = Redis::with_args(&["--appendonly", "yes"]);
    redis.cli(&["SET", "k", "v"]);
    let checked = persistence(&redis, &[]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert!(checked.message().contains("AOF"), "{}", checked.message());
    assert_eq!(checked.value("redis.aof.enabled"), 1.0);
    assert_eq!(checked.value("redis.aof.last_write.ok"), 1.0);
    assert_eq!(checked.value("redis.rdb.enabled"), 0.0);
}

#[test]
fn no_persistence_is_stated_not_unknown() {
    // The harness's servers run with `save ""` and `appendonly no`.
    let redis = Redis::start();
    let checked = persistence(&redis, &[]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert!(
        checked.message().contains("no persistence configured"),
        "{}",
        checked.message()
    );
    assert_eq!(checked.value("redis.rdb.enabled"), 0.0);
    assert_eq!(checked.value("redis.aof.enabled"), 0.0);
    let checked = persistence(&redis, &[("required", "true")]);
    assert_eq!(checked.status(), "warning", "{}", checked.message());
    assert!(
        checked.message().contains("required"),
        "{}",
        checked.message()
    );
}
