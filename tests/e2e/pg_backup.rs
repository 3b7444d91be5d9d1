//! `pg-archiving` and `pg-backup` on real servers, a real WAL archive and
//! real backups: archiving that breaks and recovers, a forgotten slot, a
//! `pg_basebackup` directory (fresh, old, truncated) and a pgBackRest
//! repository made by Debian's `pgbackrest`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use watchpost_e2e::backup::{
    PgBackRest, archived_pair, backup_probe, base_backup, postgres_dir, switch_and_wait_archived,
};
use watchpost_e2e::pg::{PgPair, wait_until};
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn archiving(pair: &PgPair, settings: &[(&str, &str)]) -> Checked {
    let mut args = pair.target_args();
    args.extend(sets(settings));
    check(&probes::path("pg-archiving"), &args)
}

fn set_mode(dir: &Path, mode: u32) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn archiving_failure_is_critical_naming_the_segment_and_clears_when_fixed() {
    let root = tempfile::tempdir().unwrap();
    let archive = postgres_dir(root.path(), "archive");
    let pair = archived_pair(&archive);
    pair.primary
        .execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    switch_and_wait_archived(&pair.primary);
    let ok = archiving(&pair, &[]);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert!(ok.value("postgresql.archiver.archived_count") >= 1.0);
    assert_eq!(ok.value("postgresql.archiver.stuck"), 0.0);

    // The archive becomes unwritable: the next segment fails.
    set_mode(&archive, 0o500);
    pair.primary.execute("INSERT INTO t VALUES (2)");
    let failing = pair
        .primary
        .value("SELECT pg_walfile_name(pg_switch_wal())");
    wait_until(Duration::from_secs(30), "an archive failure", || {
        pair.primary
            .value("SELECT failed_count FROM pg_stat_archiver")
            != "0"
    });
    let broken = archiving(&pair, &[]);
    assert_eq!(broken.status(), "critical", "{:#}", broken.json);
    assert!(broken.message().contains(&failing), "{}", broken.message());
    assert_eq!(broken.value("postgresql.archiver.stuck"), 1.0);
    assert!(broken.value("postgresql.archiver.failed_count") >= 1.0);

    // Fixed: the archiver catches up (a new segment wakes it).
    set_mode(&archive, 0o700);
    let mut recovered = false;
    for _ in 0..60 {
        // A new segment wakes the archiver, which then retries the old one.
        pair.primary
            .execute("INSERT INTO t VALUES (3); SELECT pg_switch_wal();");
        std::thread::sleep(Duration::from_secs(1));
        if pair
            .primary
            .value("SELECT last_archived_time > last_failed_time FROM pg_stat_archiver")
            == "t"
        {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "archiving did not recover");
    let fixed = archiving(&pair, &[]);
    assert_eq!(fixed.status(), "ok", "{:#}", fixed.json);

    // A slot left inactive while the primary writes 64 MB.
    pair.primary
        .execute("SELECT pg_create_physical_replication_slot('forgotten', true)");
    pair.primary.execute(
        "CREATE TABLE big AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 70000) g",
    );
    let slot = archiving(&pair, &[]);
    assert_eq!(slot.status(), "warning", "{:#}", slot.json);
    assert!(
        slot.message()
            .contains("replication slot forgotten is inactive and keeps"),
        "{}",
        slot.message()
    );
    let kept = slot
        .value_where(
            "postgresql.replication_slot.wal_retained",
            "slot",
            "forgotten",
        )
        .unwrap();
    assert!(kept >= 64.0 * 1024.0 * 1024.0, "{kept}");
}

/// Set the time of every `.ready` file in `data`'s archive status
/// directory to `ago` before now, as if the segments had waited that long.
fn age_ready_files(data: &Path, ago: Duration) {
    let when = std::time::SystemTime::now() - ago;
    for entry in std::fs::read_dir(data.join("pg_wal/archive_status")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ready") {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(when).unwrap();
        }
    }
}

/// Issue 25: `archive_command = 'sleep 3600'` fails nothing (`stuck`
/// stays 0), but the oldest segment waiting is past the default limits
/// (10 min warning, 1 h critical) and nothing was archived since: the
/// message names that segment and says the archiver makes no progress.
#[test]
fn a_hung_archive_command_is_caught_by_the_oldest_waiting_segment() {
    let mut pair =
        PgPair::with_settings(&[("archive_mode", "on"), ("archive_command", "sleep 3600")]);
    pair.primary.execute("CREATE TABLE t (id int)");
    for _ in 0..4 {
        pair.primary
            .execute("INSERT INTO t VALUES (1); SELECT pg_switch_wal()");
    }
    let waiting = "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'";
    wait_until(Duration::from_secs(30), "4 segments waiting", || {
        pair.primary.value(waiting).parse::<u32>().unwrap_or(0) >= 4
    });
    let oldest = pair.primary.value(
        "SELECT replace(name, '.ready', '') FROM pg_ls_archive_statusdir() \
         WHERE name LIKE '%.ready' ORDER BY modification, name LIMIT 1",
    );
    let fresh = archiving(&pair, &[]);
    assert_eq!(fresh.status(), "ok", "{:#}", fresh.json);
    assert!(fresh.value("postgresql.archiver.oldest_waiting_age") < 600.0);

    age_ready_files(pair.primary.data_dir(), Duration::from_secs(11 * 60));
    let late = archiving(&pair, &[]);
    assert_eq!(late.status(), "warning", "{:#}", late.json);
    assert_eq!(late.value("postgresql.archiver.stuck"), 0.0);
    let age = late.value("postgresql.archiver.oldest_waiting_age");
    assert!((660.0..700.0).contains(&age), "{age}");
    for says in [
        format!("the oldest WAL segment waiting to be archived, {oldest}, has waited"),
        "the archiver is making no progress".to_string(),
        "archived_count 0".to_string(),
    ] {
        assert!(late.message().contains(&says), "{says}: {}", late.message());
    }

    age_ready_files(pair.primary.data_dir(), Duration::from_secs(61 * 60));
    let hung = archiving(&pair, &[]);
    assert_eq!(hung.status(), "critical", "{:#}", hung.json);
    // The server's shutdown would wait for the hung command: stop it hard
    // (the signal reaches the archiver's process group, `sleep` included).
    pair.primary.kill();
}

#[test]
fn a_base_backup_is_measured_aged_and_found_truncated() {
    let root = tempfile::tempdir().unwrap();
    let archive = postgres_dir(root.path(), "archive");
    let backups = postgres_dir(root.path(), "backups");
    let pair = archived_pair(&archive);
    pair.primary.execute(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g",
    );
    let backup = backups.join("b1");
    base_backup(&pair.primary, &backup);
    switch_and_wait_archived(&pair.primary);
    switch_and_wait_archived(&pair.primary);

    let dirs = [("repo", backups.as_path()), ("archive", archive.as_path())];
    let fresh = backup_probe(&dirs, &[]);
    assert_eq!(fresh.status(), "ok", "{:#}", fresh.json);
    assert!(fresh.value("postgresql.backup.size") > 1_000_000.0);
    assert!(fresh.value("postgresql.backup.age") < 600.0);
    assert_eq!(fresh.value("postgresql.backup.complete"), 1.0);
    assert_eq!(fresh.value("postgresql.backup.wal_missing_segments"), 0.0);
    assert!(
        fresh.message().contains("WAL archived without gaps"),
        "{}",
        fresh.message()
    );

    // Older than the limit: warning.
    std::thread::sleep(Duration::from_millis(1100));
    let old = backup_probe(&dirs, &[("age_warning", "1"), ("age_critical", "86400")]);
    assert_eq!(old.status(), "warning", "{:#}", old.json);

    // A truncated file: critical, naming it.
    let version = backup.join("PG_VERSION");
    let text = std::fs::read(&version).unwrap();
    std::fs::write(&version, &text[..1]).unwrap();
    let truncated = backup_probe(&dirs, &[]);
    assert_eq!(truncated.status(), "critical", "{:#}", truncated.json);
    assert!(
        truncated.message().contains("PG_VERSION has 1 bytes"),
        "{}",
        truncated.message()
    );
    assert_eq!(truncated.value("postgresql.backup.complete"), 0.0);
    std::fs::write(&version, &text).unwrap();

    // A gap in the archive: critical.
    let start = fresh
        .message()
        .split("from ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let gap_dir = postgres_dir(root.path(), "gappy");
    let mut names: Vec<String> = std::fs::read_dir(&archive)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24 && n.as_str() >= start.as_str())
        .collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    for name in names.iter().filter(|n| **n != names[1]) {
        std::fs::copy(archive.join(name), gap_dir.join(name)).unwrap();
    }
    let gappy = backup_probe(
        &[("repo", backups.as_path()), ("archive", gap_dir.as_path())],
        &[],
    );
    assert_eq!(gappy.status(), "critical", "{:#}", gappy.json);
    assert!(
        gappy.message().contains(&format!("the first {}", names[1])),
        "{}",
        gappy.message()
    );
}

/// A pgBackRest stanza `main` for `pair`'s primary, with its repository
/// in `root/repo` and one full backup; returns the repository and the
/// config file. WAL goes there too.
pub fn pgbackrest_stanza(pair: &PgPair, root: &Path) -> (PathBuf, PathBuf) {
    let repo = postgres_dir(root, "repo");
    let stanza = PgBackRest::stanza(pair, root, &format!("repo1-path={}", repo.display()));
    stanza.run(&["backup", "--type=full"]);
    (repo, stanza.conf)
}

#[test]
fn a_pgbackrest_repository_is_measured_and_a_truncated_file_reported() {
    let root = tempfile::tempdir().unwrap();
    let archive = postgres_dir(root.path(), "archive");
    let pair = archived_pair(&archive);
    pair.primary.execute(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g",
    );
    let (repo, _conf) = pgbackrest_stanza(&pair, root.path());
    let dirs = [("repo", repo.as_path())];
    let ok = backup_probe(&dirs, &[]);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert!(
        ok.message().contains("pgbackrest backup"),
        "{}",
        ok.message()
    );
    assert!(ok.value("postgresql.backup.size") > 1_000_000.0);
    assert_eq!(ok.value("postgresql.backup.wal_missing_segments"), 0.0);

    // Truncate one stored file of the backup.
    let stanza = repo.join("backup/main");
    let label = std::fs::read_dir(&stanza)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with('F'))
        .expect("a full backup");
    let stored = std::fs::read_dir(stanza.join(&label).join("pg_data"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("PG_VERSION")
        })
        .expect("PG_VERSION in the backup");
    let bytes = std::fs::read(&stored).unwrap();
    std::fs::write(&stored, &bytes[..bytes.len() / 2]).unwrap();
    let truncated = backup_probe(&dirs, &[]);
    assert_eq!(truncated.status(), "critical", "{:#}", truncated.json);
    assert!(
        truncated.message().contains("pg_data/PG_VERSION"),
        "{}",
        truncated.message()
    );
}

/// `examples/postgres-backup.toml` is valid once its directories exist.
#[test]
fn the_backup_example_is_valid() {
    let root = tempfile::tempdir().unwrap();
    let example = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/postgres-backup.toml");
    let mut text = std::fs::read_to_string(&example).unwrap();
    for dir in [
        "/srv/backups/base",
        "/srv/wal-archive",
        "/var/lib/watchpost",
    ] {
        let local = root.path().join(dir.trim_start_matches('/'));
        std::fs::create_dir_all(&local).unwrap();
        text = text.replace(&format!("\"{dir}\""), &format!("\"{}\"", local.display()));
    }
    let config = root.path().join("backup.toml");
    std::fs::write(&config, text).unwrap();
    let outcome =
        watchpost_e2e::cli::watchpost_run(["validate", "-c", &config.display().to_string()]);
    watchpost_e2e::cli::assert_no_panic(&outcome);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
}
