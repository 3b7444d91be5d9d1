//! Restore drills of backups with a tablespace never write outside their
//! scratch directory (issue 25): a table and its index in a tablespace,
//! the primary running and updating them after the backup; a drill of a
//! tar backup (whose `tablespace_map` names the live tablespace), of a
//! plain backup made with `-T` (whose link names the backup's own copy)
//! and of a pgBackRest backup each restore and verify the updated data,
//! while the live table and every file of the backup stay as they were
//! (checksums and mtimes; the live tablespace's files too, the primary
//! idle after a checkpoint).

use crate::pg_drill::{assert_cleaned, drill_config, run_drill};
use std::path::{Path, PathBuf};
use watchpost_e2e::backup::{
    archived_pair, assert_unchanged, base_backup_with, fingerprint, postgres_dir,
    switch_and_wait_archived,
};
use watchpost_e2e::pg::{Cluster, PgPair};

/// Row count and a checksum of the contents of `orders`.
fn contents(primary: &Cluster) -> String {
    primary.value(
        "SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM orders",
    )
}

/// A primary archiving into `root/archive` (its standby stopped: it would
/// share the tablespace's directory on this host) with `orders` and its
/// index in the tablespace `live_ts` at `root/live_ts`.
fn primary_with_tablespace(root: &Path) -> (PgPair, PathBuf, PathBuf) {
    let archive = postgres_dir(root, "archive");
    let live_ts = postgres_dir(root, "live_ts");
    let mut pair = archived_pair(&archive);
    pair.standby.stop();
    pair.primary.execute(&format!(
        "CREATE TABLESPACE live_ts LOCATION '{}'",
        live_ts.display()
    ));
    pair.primary.execute(
        "CREATE TABLE orders (id int PRIMARY KEY USING INDEX TABLESPACE live_ts, v text)
           WITH (autovacuum_enabled = false) TABLESPACE live_ts;
         INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 1000) g;",
    );
    (pair, archive, live_ts)
}

/// After the backups: 590 committed updates and 410 new rows (the
/// instance of the issue), archived; then the live files settle.
fn write_after_backup(primary: &Cluster) {
    primary.execute("UPDATE orders SET v = 'updated' WHERE id <= 590");
    primary.execute("INSERT INTO orders SELECT g, 'new' FROM generate_series(1001, 1410) g");
    switch_and_wait_archived(primary);
    primary.execute("VACUUM orders");
    primary.execute("CHECKPOINT");
}

/// The drill's checks: the updates and the new rows replayed into the
/// tablespace.
const CHECKS: &str = "checks = [{ query = \"SELECT count(*) FROM orders WHERE v = 'updated'\", min = 590, max = 590 }, \
                      { query = \"SELECT count(*) FROM orders\", min = 1410, max = 1410 }]\n";

#[test]
fn drills_of_tar_and_plain_backups_with_a_tablespace_leave_production_and_the_backups_alone() {
    let root = tempfile::tempdir().unwrap();
    let (mut pair, archive, live_ts) = primary_with_tablespace(root.path());
    let tar_backups = postgres_dir(root.path(), "tar");
    let plain_backups = postgres_dir(root.path(), "plain");
    let plain_ts = postgres_dir(root.path(), "plain_ts");
    base_backup_with(&pair.primary, &tar_backups.join("b1"), &["-Ft".into()]);
    base_backup_with(
        &pair.primary,
        &plain_backups.join("b1"),
        &[format!("-T{}={}", live_ts.display(), plain_ts.display())],
    );
    write_after_backup(&pair.primary);
    let live_before = contents(&pair.primary);
    assert!(live_before.starts_with("1410 "), "{live_before}");
    let live_files = fingerprint(&[&live_ts]);
    let backups = fingerprint(&[&tar_backups, &plain_backups, &plain_ts]);

    for (format, dir) in [("tar", &tar_backups), ("plain", &plain_backups)] {
        let config = drill_config(
            root.path(),
            &format!(
                "backup = \"{}\"\narchive = \"{}\"\ntimeout = \"180s\"\n{CHECKS}",
                dir.display(),
                archive.display()
            ),
        );
        let ok = run_drill(&config, &[]);
        assert_eq!(ok.status(), "ok", "{format}: {:#}", ok.json);
        assert!(
            ok.message()
                .contains("1 tablespace(s) restored into the copy"),
            "{format}: {}",
            ok.message()
        );
        assert_eq!(ok.value("postgresql.restore.verified"), 1.0);
        assert_cleaned(root.path());
        assert_eq!(
            contents(&pair.primary),
            live_before,
            "{format}: the live table changed"
        );
        assert_unchanged(
            &format!("{format}: the live tablespace"),
            &live_files,
            &fingerprint(&[&live_ts]),
        );
        assert_unchanged(
            &format!("{format}: the backups"),
            &backups,
            &fingerprint(&[&tar_backups, &plain_backups, &plain_ts]),
        );
    }
    // What the issue saw only after a restart of the primary.
    pair.primary.stop();
    pair.primary.start();
    assert_eq!(contents(&pair.primary), live_before);
    assert_eq!(
        pair.primary
            .value("SELECT count(*) FROM orders WHERE v = 'updated'"),
        "590"
    );
}

#[test]
fn a_drill_of_a_pgbackrest_backup_with_a_tablespace_leaves_production_and_the_repository_alone() {
    let root = tempfile::tempdir().unwrap();
    let (pair, _archive, live_ts) = primary_with_tablespace(root.path());
    let (repo, conf) = crate::pg_backup::pgbackrest_stanza(&pair, root.path());
    write_after_backup(&pair.primary);
    let live_before = contents(&pair.primary);
    let live_files = fingerprint(&[&live_ts]);
    let stored = fingerprint(&[&repo]);
    let config = drill_config(
        root.path(),
        &format!(
            "pgbackrest = \"main\"\npgbackrest_config = \"{}\"\nrun_as_owner_of = \"{}\"\ntimeout = \"180s\"\n{CHECKS}",
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
    assert_eq!(contents(&pair.primary), live_before);
    assert_unchanged(
        "the live tablespace",
        &live_files,
        &fingerprint(&[&live_ts]),
    );
    assert_unchanged("the repository", &stored, &fingerprint(&[&repo]));
}
