//! `mysql-backup` on real `mariadb-backup` copies of a real MariaDB: an
//! empty directory is critical; a fresh copy is ok with its size, its
//! binary log position (the server's GTID at the copy) and not prepared;
//! prepared after `--prepare`, also under the new file names; a newer
//! copy with wrong LSNs in its checkpoints file is critical, naming the
//! file; one without a checkpoints file (still running, or it failed) a
//! warning; an old copy is past its age limit.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};
use watchpost_e2e::mariadb::{Mariadb, program, try_run};
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn backup(repo: &Path, settings: &[(&str, &str)]) -> Checked {
    let mut args = vec!["--dir".to_string(), format!("repo={}", repo.display())];
    args.extend(sets(settings));
    check(&probes::path("mysql-backup"), &args)
}

/// `mariadb-backup ARGS`; panics with its output when it fails.
fn mariadb_backup(args: &[String]) {
    // Not the host's option files, and a tmpdir of its own (never /tmp:
    // see `watchpost_e2e::mariadb`'s servers).
    let tmp = tempfile::tempdir().expect("a tmpdir for mariadb-backup");
    let mut command = Command::new(program("mariadb-backup"));
    command
        .arg("--no-defaults")
        .arg(format!("--tmpdir={}", tmp.path().display()))
        .args(args);
    if let Err(out) = try_run(command) {
        panic!("mariadb-backup {args:?} failed: {out}");
    }
}

/// A full copy of `db` into `dir`.
fn take(db: &Mariadb, dir: &Path) {
    mariadb_backup(&[
        "--backup".into(),
        format!("--target-dir={}", dir.display()),
        format!("--socket={}", db.socket().display()),
        "--user=root".into(),
    ]);
}

/// Set `path`'s modification time to `ago` before now.
fn age(path: &Path, ago: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

#[test]
fn mysql_backup_reads_real_copies_and_names_what_is_wrong() {
    let db = Mariadb::start();
    db.execute(
        "CREATE TABLE app.t (id int PRIMARY KEY, v text); \
         INSERT INTO app.t SELECT seq, repeat('x', 100) FROM app.seq_1_to_2000",
    );
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("copies");
    std::fs::create_dir(&repo).unwrap();

    let empty = backup(&repo, &[]);
    assert_eq!(
        (empty.code, empty.status()),
        (2, "critical"),
        "{:#}",
        empty.json
    );
    assert!(
        empty.message().contains("no mariadb-backup copy"),
        "{}",
        empty.message()
    );

    let gtid = db.value("SELECT @@gtid_binlog_pos");
    let first = repo.join("full-1");
    take(&db, &first);
    let fresh = backup(&repo, &[]);
    assert_eq!(fresh.status(), "ok", "{:#}", fresh.json);
    assert_eq!(fresh.value("mysql.backup.count"), 1.0);
    assert_eq!(fresh.value("mysql.backup.complete"), 1.0);
    assert_eq!(fresh.value("mysql.backup.prepared"), 0.0);
    assert!(fresh.value("mysql.backup.age") < 600.0, "{:#}", fresh.json);
    let size = fresh.value("mysql.backup.size");
    let ibdata = std::fs::metadata(first.join("ibdata1")).unwrap().len() as f64;
    assert!(size > ibdata, "{size} / ibdata1 {ibdata}");
    assert!(
        fresh.message().contains(&format!("(GTID {gtid})"))
            && fresh.message().contains("not prepared"),
        "{} / {gtid}",
        fresh.message()
    );

    mariadb_backup(&[
        "--prepare".into(),
        format!("--target-dir={}", first.display()),
    ]);
    // MariaDB 11's names for the same files.
    for (old, new) in [
        ("xtrabackup_checkpoints", "mariadb_backup_checkpoints"),
        ("xtrabackup_info", "mariadb_backup_info"),
        ("xtrabackup_binlog_info", "mariadb_backup_binlog_info"),
    ] {
        std::fs::rename(first.join(old), first.join(new)).unwrap();
    }
    let prepared = backup(&repo, &[("require_prepared", "true")]);
    assert_eq!(prepared.status(), "ok", "{:#}", prepared.json);
    assert_eq!(prepared.value("mysql.backup.prepared"), 1.0);
    age(
        &first.join("mariadb_backup_checkpoints"),
        Duration::from_secs(2 * 86_400),
    );

    // A newer copy whose checkpoints file says it ends before it starts.
    let second = repo.join("full-2");
    take(&db, &second);
    let checkpoints = second.join("xtrabackup_checkpoints");
    let text = std::fs::read_to_string(&checkpoints).unwrap();
    let to_lsn = text
        .lines()
        .find_map(|l| l.strip_prefix("to_lsn = "))
        .unwrap()
        .to_string();
    std::fs::write(
        &checkpoints,
        text.replace(
            "from_lsn = 0",
            &format!("from_lsn = {}", to_lsn.parse::<u64>().unwrap() + 1),
        ),
    )
    .unwrap();
    let wrong = backup(&repo, &[]);
    assert_eq!(
        (wrong.code, wrong.status()),
        (2, "critical"),
        "{:#}",
        wrong.json
    );
    assert_eq!(wrong.value("mysql.backup.complete"), 0.0);
    assert_eq!(wrong.value("mysql.backup.count"), 2.0);
    assert!(
        wrong.message().contains("full-2")
            && wrong.message().contains("xtrabackup_checkpoints")
            && wrong.message().contains(&format!("to_lsn {to_lsn}")),
        "{}",
        wrong.message()
    );
    // The age is the newest complete copy's: two days, past 26 h.
    let old = wrong.value("mysql.backup.age");
    assert!(
        (2.0 * 86_400.0 - 60.0..2.0 * 86_400.0 + 600.0).contains(&old),
        "{old}"
    );

    // Without a checkpoints file it did not finish (or still runs).
    std::fs::remove_file(&checkpoints).unwrap();
    let unfinished = backup(
        &repo,
        &[("age_warning", "864000"), ("age_critical", "8640000")],
    );
    assert_eq!(
        (unfinished.code, unfinished.status()),
        (1, "warning"),
        "{:#}",
        unfinished.json
    );
    assert!(
        unfinished.message().contains("full-2") && unfinished.message().contains("did not finish"),
        "{}",
        unfinished.message()
    );
    // The old copy alone, with the default limits: 48 h is past the
    // warning's 26 h and within the critical 50 h.
    std::fs::remove_dir_all(&second).unwrap();
    let aged = backup(&repo, &[]);
    assert_eq!(
        (aged.code, aged.status()),
        (1, "warning"),
        "{:#}",
        aged.json
    );
    assert!(aged.message().contains("full-1"), "{}", aged.message());
}
