//! `redis-backup` on RDB copies written by a real `redis-server` (issue
//! 28): a fresh copy is valid (header, end, CRC-64) with its age and
//! size; a copy with a flipped byte or cut short is invalid and named; an
//! old newest copy is critical by age; an empty directory has no copy.

use std::path::Path;
use std::process::Command;
use watchpost_e2e::redis::Redis;
use watchpost_e2e::report::{Checked, check, sets};

fn backup(repo: &Path, pairs: &[(&str, &str)]) -> Checked {
    let mut args = vec!["--dir".to_string(), format!("repo={}", repo.display())];
    args.extend(sets(pairs));
    check(Path::new("builtin:redis-backup"), &args)
}

/// A real RDB file: keys of several types, saved with `SAVE`.
fn dump() -> Vec<u8> {
    let redis = Redis::start();
    redis.cli(&["SET", "order:17", "paid"]);
    redis.cli(&["HSET", "user:1", "name", "ada"]);
    redis.cli(&["RPUSH", "queue", "a", "b", "c"]);
    for i in 0..200 {
        redis.cli(&["SET", &format!("item:{i}"), &"v".repeat(50)]);
    }
    redis.cli(&["SAVE"]);
    std::fs::read(redis.dir().join("dump.rdb")).expect("read dump.rdb")
}

/// Set a file's modification time `hours` back.
fn age(path: &Path, hours: u32) {
    let status = Command::new("touch")
        .args(["-d", &format!("{hours} hours ago")])
        .arg(path)
        .status()
        .expect("run touch");
    assert!(status.success());
}

#[test]
fn fresh_copies_are_valid_and_broken_ones_named() {
    let data = dump();
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("dump-1.rdb"), &data).unwrap();
    let checked = backup(repo.path(), &[]);
    assert_eq!(checked.status(), "ok", "{}", checked.message());
    assert_eq!(checked.value("redis.backup.valid"), 1.0);
    assert_eq!(checked.value("redis.backup.count"), 1.0);
    assert_eq!(checked.value("redis.backup.size"), data.len() as f64);
    assert!(checked.value("redis.backup.age") < 3600.0);

    // A flipped byte in the middle of an older copy, all checked.
    let mut flipped = data.clone();
    flipped[data.len() / 2] ^= 0x20;
    std::fs::create_dir(repo.path().join("daily")).unwrap();
    let corrupted = repo.path().join("daily/dump-0.rdb");
    std::fs::write(&corrupted, &flipped).unwrap();
    age(&corrupted, 24);
    let checked = backup(repo.path(), &[]);
    assert_eq!(
        checked.status(),
        "ok",
        "only the newest: {}",
        checked.message()
    );
    let checked = backup(repo.path(), &[("verify", "all")]);
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert!(
        checked
            .message()
            .contains("daily/dump-0.rdb is invalid: checksum mismatch"),
        "{}",
        checked.message()
    );
    assert_eq!(checked.value("redis.backup.invalid"), 1.0);
    assert_eq!(checked.value("redis.backup.valid"), 1.0);

    // The newest copy cut short (a copy interrupted).
    std::fs::write(repo.path().join("dump-2.rdb"), &data[..data.len() - 20]).unwrap();
    let checked = backup(repo.path(), &[]);
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert!(
        // Cut short: no EOF opcode where it belongs (or, if the byte
        // there happens to be 0xFF, a checksum that does not match).
        checked.message().contains("dump-2.rdb is invalid: "),
        "{}",
        checked.message()
    );
    assert_eq!(checked.value("redis.backup.valid"), 0.0);
}

#[test]
fn an_old_newest_copy_and_no_copy_at_all_are_critical() {
    let data = dump();
    let repo = tempfile::tempdir().unwrap();
    let copy = repo.path().join("dump.rdb");
    std::fs::write(&copy, &data).unwrap();
    age(&copy, 60);
    let checked = backup(repo.path(), &[]);
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert!(checked.value("redis.backup.age") > 59.0 * 3600.0);
    assert!(
        checked.message().contains("dump.rdb was written 60"),
        "{}",
        checked.message()
    );
    assert_eq!(checked.value("redis.backup.valid"), 1.0);

    let empty = tempfile::tempdir().unwrap();
    let checked = backup(empty.path(), &[]);
    assert_eq!(checked.status(), "critical", "{}", checked.message());
    assert!(
        checked.message().contains("no RDB copy"),
        "{}",
        checked.message()
    );
    assert_eq!(checked.value("redis.backup.count"), 0.0);
}
