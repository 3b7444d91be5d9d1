//! The MariaDB restore drill (`method = "mariadb-backup"`) on real
//! `mariadb-backup` copies of a real MariaDB: a good copy is prepared,
//! started on a private socket and verified (`CHECK TABLE` on every
//! table, the configured query's value), and the backup's files are
//! unchanged after it (checksums and modification times); a copy with a
//! truncated `.ibd` and one without `ibdata1` fail and say why; nothing
//! is left behind.

use crate::engine_drill_kit::{engine_drill_config, fingerprint, give, owned_dir};
use crate::pg_drill::{assert_cleaned, run_drill};
use std::path::Path;
use std::process::Command;
use watchpost_e2e::mariadb::{Mariadb, program, try_run};

/// A full, unprepared copy of `db` into `dir`, given to `mysql`.
fn take(db: &Mariadb, dir: &Path) {
    // Not the host's option files, and a tmpdir of its own.
    let tmp = tempfile::tempdir().expect("a tmpdir for mariadb-backup");
    let mut command = Command::new(program("mariadb-backup"));
    command.args([
        "--no-defaults".to_string(),
        format!("--tmpdir={}", tmp.path().display()),
        "--backup".to_string(),
        format!("--target-dir={}", dir.display()),
        format!("--socket={}", db.socket().display()),
        "--user=root".into(),
    ]);
    if let Err(out) = try_run(command) {
        panic!("mariadb-backup --backup failed: {out}");
    }
    give(dir, "mysql");
}

fn config(root: &Path, backups: &Path, rows: u32) -> std::path::PathBuf {
    engine_drill_config(
        root,
        &format!(
            "method = \"mariadb-backup\"\nbackup = \"{}\"\n\
             checks = [{{ query = \"SELECT count(*) FROM orders\", database = \"app\", min = {rows}, max = {rows} }}]\n",
            backups.display()
        ),
    )
}

#[test]
fn a_mariadb_backup_restores_and_verifies_and_is_left_unchanged() {
    let db = Mariadb::start();
    db.execute(
        "CREATE TABLE app.orders (id int PRIMARY KEY, v text) ENGINE=InnoDB; \
         INSERT INTO app.orders SELECT seq, repeat('x', 200) FROM app.seq_1_to_20000; \
         CREATE TABLE app.notes (id int PRIMARY KEY, v text) ENGINE=Aria; \
         INSERT INTO app.notes VALUES (1, 'a')",
    );
    let root = tempfile::tempdir().unwrap();
    let backups = owned_dir(root.path(), "backups", "mysql");
    take(&db, &backups.join("full-1"));
    let before = fingerprint(&backups);
    let drill = config(root.path(), &backups, 20000);
    // /tmp holds a production server's temporary table, owned by `mysql`
    // (/tmp is sticky: only its owner may delete it). The drill's
    // mariadb-backup and mariadbd run as the backup's owner, `mysql`, with
    // a clean environment, so on /tmp unless told otherwise; a starting
    // mariadbd deletes every `#sql*` file in its tmpdir. They use the
    // scratch directory's own.
    let production_table = Path::new("/tmp").join(format!(
        "#sql-temptable-watchpost-drill-canary-{}.MAI",
        std::process::id()
    ));
    std::fs::write(&production_table, b"a production server's temporary table").unwrap();
    give(&production_table, "mysql");
    let ok = run_drill(&drill, &[]);
    let survived = production_table.exists();
    let _ = std::fs::remove_file(&production_table);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert!(
        survived,
        "the drill's server deleted a temporary table in /tmp"
    );
    assert_eq!(ok.value("mysql.restore.verified"), 1.0);
    let message = ok.message();
    assert!(
        message.contains("CHECK TABLE on") && message.contains("on app = 20000"),
        "{message}"
    );
    let (rto, size) = (
        ok.value("mysql.restore.duration"),
        ok.value("mysql.restore.size"),
    );
    eprintln!(
        "mariadb restore drill: {:.1} MiB copied, prepared and started in {rto:.2} s; checks {:.2} s",
        size / 1048576.0,
        ok.value("mysql.restore.verify_duration")
    );
    assert_eq!(
        before,
        fingerprint(&backups),
        "the drill changed the backup"
    );
    assert_cleaned(root.path());

    // The query's bounds hold: a count the copy does not have fails.
    let wrong = config(root.path(), &backups, 20001);
    let bad = run_drill(&wrong, &[]);
    assert_eq!(bad.status(), "critical", "{:#}", bad.json);
    assert!(
        bad.message().contains("20000 is outside 20001..20001"),
        "{}",
        bad.message()
    );
    assert_cleaned(root.path());
}

#[test]
fn a_broken_mariadb_backup_fails_the_drill_and_says_why() {
    let db = Mariadb::start();
    db.execute(
        "CREATE TABLE app.orders (id int PRIMARY KEY, v text) ENGINE=InnoDB; \
         INSERT INTO app.orders SELECT seq, repeat('x', 200) FROM app.seq_1_to_20000",
    );
    let root = tempfile::tempdir().unwrap();
    let backups = owned_dir(root.path(), "backups", "mysql");
    let copy = backups.join("full-1");
    let drill = config(root.path(), &backups, 20000);

    // The system tablespace missing (a copy interrupted, a disk that
    // lost it): `--prepare` refuses it. (A data file cut in half is not
    // reliably a broken backup: `--prepare` may rebuild its pages from
    // the redo log the copy carries.)
    take(&db, &copy);
    std::fs::remove_file(copy.join("ibdata1")).unwrap();
    let gone = run_drill(&drill, &[]);
    assert_eq!(gone.status(), "critical", "{:#}", gone.json);
    eprintln!("no ibdata1: {}", gone.message());
    assert!(
        gone.message().contains("restore drill failed") && gone.message().contains("ibdata1"),
        "{}",
        gone.message()
    );
    assert_cleaned(root.path());
}
