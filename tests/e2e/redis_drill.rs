//! The Redis restore drill (`method = "redis-rdb"`) on RDB and AOF files
//! written by a real `redis-server`: a good RDB loads on a private socket
//! with its `DBSIZE` and keys (ok), and is left unchanged; a flipped byte
//! fails the drill naming `redis-check-rdb`'s complaint; a truncated AOF
//! fails naming `redis-check-aof`'s; a missing key is named; nothing is
//! left behind.

use crate::engine_drill_kit::{engine_drill_config, fingerprint, give, owned_dir};
use crate::pg_drill::{assert_cleaned, run_drill};
use std::path::{Path, PathBuf};
use watchpost_e2e::redis::Redis;

/// A server with an AOF, filled with 203 keys and saved; the RDB copied
/// to `backups/dump-1.rdb` and the AOF directory to `backups/aof`.
fn backups(root: &Path) -> PathBuf {
    let backups = owned_dir(root, "backups", "redis");
    let redis = Redis::with_args(&["--appendonly", "yes"]);
    redis.cli(&["SET", "order:17", "paid"]);
    redis.cli(&["HSET", "user:1", "name", "ada"]);
    redis.cli(&["RPUSH", "queue", "a", "b", "c"]);
    for i in 0..200 {
        redis.cli(&["SET", &format!("item:{i}"), &"v".repeat(50)]);
    }
    redis.cli(&["SAVE"]);
    std::fs::copy(redis.dir().join("dump.rdb"), backups.join("dump-1.rdb")).unwrap();
    let aof = backups.join("aof");
    std::fs::create_dir(&aof).unwrap();
    for entry in std::fs::read_dir(redis.dir().join("appendonlydir"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(entry.path(), aof.join(entry.file_name())).unwrap();
    }
    give(&backups, "redis");
    backups
}

fn config(root: &Path, body: &str) -> PathBuf {
    engine_drill_config(root, &format!("method = \"redis-rdb\"\n{body}"))
}

#[test]
fn a_good_rdb_loads_with_its_keys_and_a_flipped_byte_is_named() {
    let root = tempfile::tempdir().unwrap();
    let backups = backups(root.path());
    let before = fingerprint(&backups);
    let good = config(
        root.path(),
        &format!(
            "backup = \"{}\"\nkeys = [\"order:17\", \"queue\"]\n\
             checks = [{{ query = \"DBSIZE\", min = 203, max = 203 }}, {{ query = \"LLEN queue\", min = 3 }}]\n",
            backups.display()
        ),
    );
    let ok = run_drill(&good, &[]);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert_eq!(ok.value("redis.restore.verified"), 1.0);
    assert!(
        ok.message().contains("203 keys in db 0") && ok.message().contains("2 keys present"),
        "{}",
        ok.message()
    );
    eprintln!(
        "redis restore drill (RDB): {:.1} KiB in {:.3} s; checks {:.3} s",
        ok.value("redis.restore.size") / 1024.0,
        ok.value("redis.restore.duration"),
        ok.value("redis.restore.verify_duration")
    );
    assert_eq!(
        before,
        fingerprint(&backups),
        "the drill changed the backup"
    );
    assert_cleaned(root.path());

    // A key the copy does not have.
    let missing = config(
        root.path(),
        &format!(
            "backup = \"{}\"\nkeys = [\"order:18\"]\n",
            backups.display()
        ),
    );
    let checked = run_drill(&missing, &[]);
    assert_eq!(checked.status(), "critical", "{:#}", checked.json);
    assert!(
        checked
            .message()
            .contains("keys missing from the copy: order:18"),
        "{}",
        checked.message()
    );

    // A flipped byte in the middle of a newer copy.
    let mut bytes = std::fs::read(backups.join("dump-1.rdb")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let flipped = backups.join("dump-2.rdb");
    std::fs::write(&flipped, &bytes).unwrap();
    give(&flipped, "redis");
    let bad = run_drill(&good, &[]);
    assert_eq!(bad.status(), "critical", "{:#}", bad.json);
    assert_eq!(bad.value("redis.restore.verified"), 0.0);
    assert!(
        bad.message()
            .contains("dump-2.rdb is invalid (redis-check-rdb): [offset"),
        "{}",
        bad.message()
    );
    assert_cleaned(root.path());
}

#[test]
fn an_aof_loads_and_a_truncated_one_fails_the_drill() {
    let root = tempfile::tempdir().unwrap();
    let backups = backups(root.path());
    let aof = backups.join("aof");
    let config = config(
        root.path(),
        &format!(
            "backup = \"{}\"\naof = \"{}\"\nchecks = [{{ query = \"DBSIZE\", min = 203 }}]\n",
            backups.display(),
            aof.display()
        ),
    );
    let ok = run_drill(&config, &[]);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert!(
        ok.message().contains("203 keys in db 0"),
        "{}",
        ok.message()
    );
    eprintln!(
        "redis restore drill (AOF): {:.1} KiB in {:.3} s",
        ok.value("redis.restore.size") / 1024.0,
        ok.value("redis.restore.duration")
    );

    // The incremental AOF cut in the middle of a command.
    let incr = std::fs::read_dir(&aof)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .expect("an incremental AOF file");
    let len = std::fs::metadata(&incr).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&incr)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let cut = run_drill(&config, &[]);
    assert_eq!(cut.status(), "critical", "{:#}", cut.json);
    assert!(
        cut.message().contains("is invalid (redis-check-aof)")
            && cut.message().contains("is not valid"),
        "{}",
        cut.message()
    );
    assert_cleaned(root.path());
}
