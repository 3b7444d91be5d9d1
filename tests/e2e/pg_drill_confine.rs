//! A restored copy cannot lead the drill out of its scratch directory
//! through what its restore left in it (issue 25's review): a `command`
//! drill restores a real base backup and plants, in turn, an `include`
//! of a file outside (not read, the file untouched) with a library off
//! the allowlist (not loaded; the copy starts without logical replication
//! workers), a link to a directory outside and a tablespace link whose
//! `..` follows another link (each refused before the copy starts), and
//! the copy's `pg_control` hard-linked to a file outside (copied first:
//! the file outside is never written).

use crate::backup_kit::{base_backup, postgres_dir};
use crate::pg_drill::{assert_cleaned, drill_config, run_drill};
use std::path::Path;
use watchpost_e2e::pg::PgPair;

/// A `command` drill that copies `backup` into the copy (recovering from
/// its own WAL: a `restore_command` that finds nothing), then runs `plant`
/// (shell, in the copy's data directory).
fn planting(root: &Path, backup: &Path, plant: &str, checks: &str) -> std::path::PathBuf {
    let script = format!(
        "set -e; cp -a {}/. \"$WATCHPOST_DRILL_DATA\"; cd \"$WATCHPOST_DRILL_DATA\"; \
         echo \"restore_command = 'false'\" >> postgresql.auto.conf; {plant}",
        backup.display()
    );
    let command = serde_json::to_string(&["sh", "-c", &script]).unwrap();
    drill_config(
        root,
        &format!(
            "command = {command}\nexpected_size = \"200MiB\"\nrun_as_owner_of = \"{}\"\ntimeout = \"120s\"\n{checks}",
            backup.display()
        ),
    )
}

#[test]
fn links_hard_links_and_includes_cannot_lead_a_drill_outside() {
    let root = tempfile::tempdir().unwrap();
    let backups = postgres_dir(root.path(), "backups");
    let live = postgres_dir(root.path(), "live");
    let conf = live.join("conf.d");
    std::fs::create_dir_all(&conf).unwrap();
    // Lexically `data/secret.conf`; through the link, `live/secret.conf`.
    let secret = live.join("secret.conf");
    std::fs::write(&secret, "work_mem = '77MB'\n").unwrap();
    postgres_dir(root.path(), "live");
    let before = std::fs::metadata(&secret).unwrap().modified().unwrap();
    let pair = PgPair::with_settings(&[("shared_preload_libraries", "pg_stat_statements")]);
    base_backup(&pair.primary, &backups.join("b1"));
    let backup = backups.join("b1");

    // An include of a file outside: not read. A library off the
    // allowlist (not even installed: loading it would fail the start): not
    // loaded.
    let config = planting(
        root.path(),
        &backup,
        &format!(
            "echo \"include '{}'\" >> postgresql.conf; \
             echo \"shared_preload_libraries = 'pg_stat_statements,pg_cron'\" >> postgresql.auto.conf",
            secret.display()
        ),
        "checks = [{ query = \"SELECT setting::int FROM pg_settings WHERE name = 'work_mem'\", max = 4096 }, \
         { query = \"SELECT setting::int FROM pg_settings WHERE name = 'max_logical_replication_workers'\", max = 0 }, \
         { query = \"SELECT count(*) FROM pg_settings WHERE name = 'shared_preload_libraries' AND setting = 'pg_stat_statements'\", min = 1 }]\n",
    );
    let ok = run_drill(&config, &[]);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert!(
        ok.message().contains("secret.conf") && ok.message().contains("not read"),
        "{}",
        ok.message()
    );
    assert!(
        ok.message().contains("pg_cron not loaded"),
        "{}",
        ok.message()
    );
    assert_cleaned(root.path());

    // A link to a directory outside: refused before the copy starts.
    let config = planting(
        root.path(),
        &backup,
        &format!("ln -s {} conf.d", conf.display()),
        "",
    );
    let refused = run_drill(&config, &[]);
    assert_eq!(refused.status(), "critical", "{:#}", refused.json);
    assert!(
        refused.message().contains("conf.d") && refused.message().contains("outside"),
        "{}",
        refused.message()
    );
    assert_cleaned(root.path());

    // The copy's pg_control (written at every start, checkpoint and
    // promotion) hard-linked to a file outside: writing one would write
    // both, so the drill copies it first and the file outside stays as it
    // was.
    let control = live.join("pg_control");
    let config = planting(
        root.path(),
        &backup,
        &format!(
            "cp global/pg_control {0}; ln -f {0} global/pg_control",
            control.display()
        ),
        "",
    );
    let ok = run_drill(&config, &[]);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert!(
        ok.message()
            .contains("1 file(s) hard-linked to files outside the copy were copied first"),
        "{}",
        ok.message()
    );
    assert_cleaned(root.path());
    assert_eq!(
        std::fs::read(&control).unwrap(),
        std::fs::read(backup.join("global/pg_control")).unwrap(),
        "the copy's server wrote through the hard link"
    );

    // `..` after a link: lexically inside the copy, really the live tree.
    let config = planting(
        root.path(),
        &backup,
        "ln -s pg_wal conf.d; ln -s ../conf.d/../.. pg_tblspc/99999",
        "",
    );
    let refused = run_drill(&config, &[]);
    assert_eq!(refused.status(), "critical", "{:#}", refused.json);
    assert!(
        refused.message().contains("pg_tblspc/99999")
            && refused.message().contains("passes through the link"),
        "{}",
        refused.message()
    );
    assert_cleaned(root.path());
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "work_mem = '77MB'\n"
    );
    assert_eq!(
        std::fs::metadata(&secret).unwrap().modified().unwrap(),
        before
    );
}
