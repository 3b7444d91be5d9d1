//! `pg-backup` on repositories as they really are (issue 25): pgBackRest
//! full, differential and incremental backups whose files live in the
//! backup they reference, bundled and block-incremental, in two
//! repositories at once; an encrypted repository, read without its
//! passphrase; and a WAL archive across a promotion, where the new
//! timeline's segments are what recovery reads.

use std::path::{Path, PathBuf};
use std::time::Duration;
use watchpost_e2e::backup::{
    PgBackRest, archived_pair, backup_probe, base_backup, postgres_dir, switch_and_wait_archived,
};
use watchpost_e2e::pg::{PgPair, wait_until};

/// pgBackRest with two repositories for `pair`'s primary: `repo1` plain,
/// `repo2` bundled and block-incremental. Returns both paths and the
/// stanza.
fn two_repositories(pair: &PgPair, root: &Path) -> (PathBuf, PathBuf, PgBackRest) {
    let repo1 = postgres_dir(root, "repo1");
    let repo2 = postgres_dir(root, "repo2");
    let stanza = PgBackRest::stanza(
        pair,
        root,
        &format!(
            "repo1-path={}\nrepo1-retention-full=9\n\
             repo2-path={}\nrepo2-retention-full=9\nrepo2-bundle=y\nrepo2-block=y\nbeta=y",
            repo1.display(),
            repo2.display()
        ),
    );
    (repo1, repo2, stanza)
}

/// The stanza's backup whose label ends with `kind` (`F`, `D`, `I`).
fn label(repo: &Path, kind: char) -> String {
    std::fs::read_dir(repo.join("backup/main"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(kind) && n.len() > 15)
        .unwrap_or_else(|| panic!("no {kind} backup in {}", repo.display()))
}

#[test]
fn pgbackrest_full_differential_incremental_bundled_or_not_are_complete() {
    let root = tempfile::tempdir().unwrap();
    let archive = postgres_dir(root.path(), "archive");
    let pair = archived_pair(&archive);
    pair.primary.execute(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g",
    );
    let (repo1, repo2, pgbackrest) = two_repositories(&pair, root.path());
    for (kind, change) in [
        ("full", "SELECT 1"),
        ("diff", "UPDATE t SET v = v || 'd' WHERE id < 500"),
        ("incr", "UPDATE t SET v = v || 'i' WHERE id < 500"),
    ] {
        pair.primary.execute(change);
        for repo in ["1", "2"] {
            pgbackrest.run(&["--repo", repo, "backup", &format!("--type={kind}")]);
        }
    }
    let dirs = [("repo1", repo1.as_path()), ("repo2", repo2.as_path())];
    let both = [("repo", "repo1, repo2")];
    let ok = backup_probe(&dirs, &both);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    for repo in ["repo1", "repo2"] {
        assert_eq!(
            ok.value_where("postgresql.backup.complete", "repository", repo),
            Some(1.0),
            "{repo}: {:#}",
            ok.json
        );
        assert_eq!(
            ok.value_where("postgresql.backup.count", "repository", repo),
            Some(3.0)
        );
        assert_eq!(
            ok.value_where("postgresql.backup.wal_missing_segments", "repository", repo),
            Some(0.0)
        );
    }
    let full1 = label(&repo1, 'F');
    assert!(
        ok.message()
            .contains(&format!("files also read from {full1}"))
            && ok.message().contains("files in bundles"),
        "{}",
        ok.message()
    );

    // A file the incremental backup references, deleted from the full one.
    let stored = repo1
        .join("backup/main")
        .join(&full1)
        .join("pg_data/PG_VERSION.gz");
    std::fs::remove_file(&stored).unwrap_or_else(|e| panic!("{}: {e}", stored.display()));
    // The full backup's bundle in repo2, cut short.
    let bundle = repo2
        .join("backup/main")
        .join(label(&repo2, 'F'))
        .join("bundle/1");
    let length = std::fs::metadata(&bundle).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&bundle)
        .unwrap()
        .set_len(length / 2)
        .unwrap();
    let broken = backup_probe(&dirs, &both);
    assert_eq!(broken.status(), "critical", "{:#}", broken.json);
    assert!(
        broken.message().contains(&format!(
            "repo1: pgbackrest backup {}: 1 file(s) do not match backup.manifest: \
             pg_data/PG_VERSION is missing (in {full1})",
            label(&repo1, 'I')
        )),
        "{}",
        broken.message()
    );
    assert!(
        broken.message().contains("repo2: pgbackrest backup")
            && broken.message().contains("is missing: its bundle"),
        "{}",
        broken.message()
    );
    for repo in ["repo1", "repo2"] {
        assert_eq!(
            broken.value_where("postgresql.backup.complete", "repository", repo),
            Some(0.0)
        );
    }
}

/// The archive's segment files and history files.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A copy of `archive` in `root/name` without the files `leave_out`.
fn copy_without(archive: &Path, root: &Path, name: &str, leave_out: &[&str]) -> PathBuf {
    let copy = postgres_dir(root, name);
    for file in names(archive) {
        if !leave_out.contains(&file.as_str()) {
            std::fs::copy(archive.join(&file), copy.join(&file)).unwrap();
        }
    }
    copy
}

#[test]
fn wal_continuity_follows_the_timelines_of_a_promotion() {
    let root = tempfile::tempdir().unwrap();
    let archive = postgres_dir(root.path(), "archive");
    let backups = postgres_dir(root.path(), "backups");
    let mut pair = archived_pair(&archive);
    pair.primary.execute("CREATE TABLE t (id int)");
    base_backup(&pair.primary, &backups.join("b1"));
    switch_and_wait_archived(&pair.primary);
    pair.wait_for_replay();
    // The standby becomes the primary of timeline 2 and writes on; the old
    // primary, not fenced, writes on timeline 1: both archive segments of
    // the same numbers.
    pair.standby.promote();
    for _ in 0..3 {
        pair.standby
            .execute("INSERT INTO t VALUES (2); SELECT pg_switch_wal()");
        switch_and_wait_archived(&pair.primary);
    }
    let on_timeline_2 = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .filter(|n| n.len() == 24 && n.starts_with("00000002"))
            .cloned()
            .collect()
    };
    wait_until(Duration::from_secs(60), "timeline 2 archived", || {
        on_timeline_2(&names(&archive)).len() >= 3
    });
    let all = names(&archive);
    assert!(all.contains(&"00000002.history".to_string()), "{all:?}");
    let dirs = |archive: &Path| -> Vec<(&str, PathBuf)> {
        vec![
            ("repo", backups.clone()),
            ("archive", archive.to_path_buf()),
        ]
    };
    let probe = |archive: &Path| {
        let d = dirs(archive);
        let refs: Vec<(&str, &Path)> = d.iter().map(|(n, p)| (*n, p.as_path())).collect();
        backup_probe(&refs, &[])
    };
    let whole = probe(&archive);
    assert_eq!(whole.status(), "ok", "{:#}", whole.json);
    assert!(
        whole.message().contains("across timelines 1 → 2"),
        "{}",
        whole.message()
    );

    // Timeline 2's second segment is gone; timeline 1 has one of the same
    // number (the old primary's).
    let tl2 = on_timeline_2(&all);
    let gone = &tl2[1];
    let twin = format!("00000001{}", &gone[8..]);
    assert!(all.contains(&twin), "{twin} not in {all:?}");
    let gappy = copy_without(&archive, root.path(), "gappy", &[gone]);
    let gap = probe(&gappy);
    assert_eq!(gap.status(), "critical", "{:#}", gap.json);
    assert!(
        gap.message()
            .contains(&format!("1 segment(s) missing, the first {gone}")),
        "{}",
        gap.message()
    );
    assert_eq!(gap.value("postgresql.backup.wal_missing_segments"), 1.0);

    // The history file is gone: recovery could not know where timeline 2
    // began.
    let no_history = copy_without(&archive, root.path(), "nohistory", &["00000002.history"]);
    let lost = probe(&no_history);
    assert_eq!(lost.status(), "critical", "{:#}", lost.json);
    assert!(
        lost.message()
            .contains("00000002.history is missing from the archive"),
        "{}",
        lost.message()
    );
}

/// An encrypted repository (`repo1-cipher-type=aes-256-cbc`), which the
/// probe reads without the passphrase: what it checks is the newest
/// backup's presence (its directory, and a manifest that is ciphertext)
/// and its age from the label; it says that files, size and WAL are not
/// checked; a manifest deleted is reported; the passphrase never appears.
#[test]
fn an_encrypted_pgbackrest_repository_is_checked_as_far_as_it_can_be_without_the_passphrase() {
    const PASS: &str = "drill-secret-passphrase-7f3a";
    let root = tempfile::tempdir().unwrap();
    let archive = postgres_dir(root.path(), "archive");
    let pair = archived_pair(&archive);
    pair.primary.execute(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g",
    );
    let repo = postgres_dir(root.path(), "repo");
    let stanza = PgBackRest::stanza(
        &pair,
        root.path(),
        &format!(
            "repo1-path={}\nrepo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass={PASS}",
            repo.display()
        ),
    );
    stanza.run(&["backup", "--type=full"]);
    // Real pgBackRest encrypted it: backup.info is ciphertext.
    let info = std::fs::read(repo.join("backup/main/backup.info")).unwrap();
    assert!(
        info.starts_with(b"Salted__"),
        "backup.info is not encrypted"
    );
    let dirs = [("repo", repo.as_path())];
    let ok = backup_probe(&dirs, &[]);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert!(
        ok.message().contains("the repository is encrypted")
            && ok.message().contains("not its files, size or WAL"),
        "{}",
        ok.message()
    );
    assert!(ok.value("postgresql.backup.age") < 600.0);
    assert_eq!(ok.value("postgresql.backup.count"), 1.0);
    assert_eq!(ok.value("postgresql.backup.complete"), 1.0);
    assert!(!ok.json.to_string().contains(PASS));

    // The newest backup's manifest (and its copy) deleted: incomplete.
    let full = label(&repo, 'F');
    for name in ["backup.manifest", "backup.manifest.copy"] {
        let path = repo.join("backup/main").join(&full).join(name);
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let broken = backup_probe(&dirs, &[]);
    assert_eq!(broken.status(), "critical", "{:#}", broken.json);
    assert!(
        broken.message().contains("backup.manifest cannot be read"),
        "{}",
        broken.message()
    );
    assert_eq!(broken.value("postgresql.backup.complete"), 0.0);
}
