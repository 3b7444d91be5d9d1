//! Restore drills on real backups: a `pg_basebackup` + WAL archive
//! restored while the primary keeps writing (ok, RTO and RPO measured,
//! nothing left behind), a backup with a flipped byte (critical, naming the
//! check), a disk too small (refused), an interrupted drill (cleaned up),
//! and a pgBackRest restore.

use crate::backup_kit::{
    BIN, archived_pair, base_backup, flip_first_page, postgres_dir, switch_and_wait_archived,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use watchpost_e2e::cli::{assert_no_panic, watchpost_run};
use watchpost_e2e::report::Checked;

/// Write a config with one drill (`body`) and state in `root/state`.
pub fn drill_config(root: &Path, body: &str) -> PathBuf {
    let state = postgres_dir(root, "state");
    let config = root.join("drill.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = \"{}\"\n\n[[drill]]\nname = \"restore\"\nbin_dir = \"{BIN}\"\n{body}",
            state.display()
        ),
    )
    .unwrap();
    config
}

pub fn run_drill(config: &Path, extra: &[&str]) -> Checked {
    let mut args = vec![
        "check".to_string(),
        "restore".into(),
        "-c".into(),
        config.display().to_string(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let outcome = watchpost_run(&args);
    assert_no_panic(&outcome);
    Checked {
        code: outcome.code,
        json: outcome.json(),
    }
}

/// Nothing of any drill is left: no scratch directory, so no server.
pub fn assert_cleaned(root: &Path) {
    let drills = root.join("state/drills");
    let left: Vec<_> = std::fs::read_dir(&drills)
        .map(|e| e.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_base_backup_with_its_archive_restores_verifies_and_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let archive = postgres_dir(root.path(), "archive");
    let backups = postgres_dir(root.path(), "backups");
    let pair = archived_pair(&archive);
    pair.primary.execute(
        "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g;
         ALTER TABLE orders ADD PRIMARY KEY (id);
         CREATE TABLE frozen (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
         INSERT INTO frozen SELECT g, md5(g::text) FROM generate_series(1, 1000) g;",
    );
    pair.primary.execute("VACUUM FREEZE frozen");
    pair.primary.execute("CHECKPOINT");
    base_backup(&pair.primary, &backups.join("b1"));
    // Writes continue during the drill.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut client = pair.primary.connect();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                client
                    .batch_execute("INSERT INTO orders SELECT max(id) + 1, 'later' FROM orders")
                    .unwrap();
                n += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    switch_and_wait_archived(&pair.primary);
    let config = drill_config(
        root.path(),
        &format!(
            "backup = \"{}\"\narchive = \"{}\"\ntimeout = \"180s\"\nchecks = [{{ query = \"SELECT count(*) FROM orders\", min = 100001 }}]\n",
            backups.display(),
            archive.display()
        ),
    );
    let ok = run_drill(&config, &[]);
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 0);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    let rto = ok.value("postgresql.restore.duration");
    let rpo = ok.value("postgresql.restore.data_age");
    let size = ok.value("postgresql.restore.size");
    assert!(rto > 0.0 && rto < 180.0, "{rto}");
    assert!((0.0..600.0).contains(&rpo), "{rpo}");
    assert_eq!(ok.value("postgresql.restore.verified"), 1.0);
    assert!(ok.message().contains("pg_checksums"), "{}", ok.message());
    eprintln!(
        "restore drill: {:.1} MiB in {rto:.2} s (RTO), data {rpo:.1} s old; {:.1} s per GiB",
        size / 1048576.0,
        rto / (size / 1073741824.0)
    );
    assert_cleaned(root.path());

    // A flipped byte in a data file of the backup: critical, naming the check.
    let relation = pair.primary.value("SELECT pg_relation_filepath('frozen')");
    flip_first_page(&backups.join("b1").join(relation));
    let bad = run_drill(&config, &[]);
    assert_eq!(bad.status(), "critical", "{:#}", bad.json);
    assert!(
        bad.message().contains("verification failed") && bad.message().contains("pg_checksums"),
        "{}",
        bad.message()
    );
    assert_eq!(bad.value("postgresql.restore.verified"), 0.0);
    assert_cleaned(root.path());

    // Not enough space: refused before anything is copied.
    let tight = drill_config(
        root.path(),
        &format!(
            "backup = \"{}\"\narchive = \"{}\"\nreserve = \"1000TiB\"\n",
            backups.display(),
            archive.display()
        ),
    );
    let refused = run_drill(&tight, &[]);
    assert_eq!(refused.status(), "critical", "{:#}", refused.json);
    assert!(
        refused
            .message()
            .contains("restore drill refused: it needs"),
        "{}",
        refused.message()
    );
    assert_cleaned(root.path());
}

#[test]
fn an_interrupted_drill_leaves_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    let backups = postgres_dir(root.path(), "backups");
    let config = drill_config(
        root.path(),
        &format!(
            "command = [\"sleep\", \"60\"]\nexpected_size = \"1MiB\"\nrun_as_owner_of = \"{}\"\n",
            backups.display()
        ),
    );
    let cut = run_drill(&config, &["--timeout", "1s"]);
    assert_eq!(cut.status(), "unknown", "{:#}", cut.json);
    assert_eq!(cut.json["error"]["kind"], "timeout", "{:#}", cut.json);
    assert_cleaned(root.path());
}

#[test]
fn a_pgbackrest_backup_restores_and_verifies() {
    let root = tempfile::tempdir().unwrap();
    let archive = postgres_dir(root.path(), "archive");
    let pair = archived_pair(&archive);
    pair.primary.execute(
        "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g",
    );
    let (repo, conf) = crate::pg_backup::pgbackrest_stanza(&pair, root.path());
    pair.primary
        .execute("INSERT INTO orders VALUES (0, 'after the backup')");
    switch_and_wait_archived(&pair.primary);
    let config = drill_config(
        root.path(),
        &format!(
            "pgbackrest = \"main\"\npgbackrest_config = \"{}\"\nrun_as_owner_of = \"{}\"\ntimeout = \"180s\"\n\
             checks = [{{ query = \"SELECT count(*) FROM orders WHERE id = 0\", min = 1, max = 1 }}]\n",
            conf.display(),
            repo.display()
        ),
    );
    let ok = run_drill(&config, &[]);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert!(
        ok.message().contains("pgBackRest stanza main"),
        "{}",
        ok.message()
    );
    assert_cleaned(root.path());
}
