//! A restore drill acts on nothing but its copy (issue 25's review, items
//! 4, 5 and 7): an aborted `command` drill leaves no grandchild of its
//! program running; a copy of a subscriber, promoted, never connects to its
//! live publisher (the publisher's slot is not used, no apply worker runs
//! in the copy); a pgBackRest drill whose `pgbackrest.conf` maps the
//! tablespace, links, delta and recovery options to live paths restores
//! only into its scratch directory (the live tablespace unchanged).

use crate::pg_drill::{assert_cleaned, drill_config, run_drill};
use watchpost_e2e::backup::{
    PgBackRest, archived_pair, assert_unchanged, base_backup, fingerprint, postgres_dir,
    switch_and_wait_archived,
};
use watchpost_e2e::pg::{PgPair, wait_until};

/// Whether process `pid` still runs the program whose command line
/// contains `marker` (a recycled pid runs something else).
fn running(pid: &str, marker: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie has exited; init reaps it.
    let zombie = state
        .rsplit(')')
        .next()
        .is_some_and(|rest| rest.trim_start().starts_with('Z'));
    cmdline.contains(marker) && !zombie
}

#[test]
fn an_aborted_command_drill_leaves_no_grandchild_running() {
    let root = tempfile::tempdir().unwrap();
    let backups = postgres_dir(root.path(), "backups");
    let pids = postgres_dir(root.path(), "pids");
    let pidfile = pids.join("grandchild");
    // The program forks a grandchild (a subshell's sleep) and then waits;
    // the drill's time limit aborts it.
    let script = format!(
        "sh -c 'sleep 3137 & echo $! > {}; wait' & sleep 60",
        pidfile.display()
    );
    let command = serde_json::to_string(&["sh", "-c", &script]).unwrap();
    let config = drill_config(
        root.path(),
        &format!(
            "command = {command}\nexpected_size = \"1MiB\"\nrun_as_owner_of = \"{}\"\n",
            backups.display()
        ),
    );
    let cut = run_drill(&config, &["--timeout", "3s"]);
    assert_eq!(cut.status(), "unknown", "{:#}", cut.json);
    assert_cleaned(root.path());
    let pid = std::fs::read_to_string(&pidfile)
        .expect("the grandchild started")
        .trim()
        .to_string();
    wait_until(
        std::time::Duration::from_secs(10),
        "the grandchild to be gone",
        || !running(&pid, "3137"),
    );
}

#[test]
fn a_promoted_copy_of_a_subscriber_never_uses_its_publishers_slot() {
    let root = tempfile::tempdir().unwrap();
    let archive = postgres_dir(root.path(), "archive");
    let backups = postgres_dir(root.path(), "backups");
    let publisher = PgPair::with_settings(&[("wal_level", "logical")]);
    publisher.primary.execute(
        "CREATE TABLE feed (id int PRIMARY KEY);
         INSERT INTO feed VALUES (1);
         CREATE PUBLICATION feed_pub FOR TABLE feed;",
    );
    let mut subscriber = archived_pair(&archive);
    subscriber.standby.stop();
    let socket = publisher.primary.data_dir().parent().unwrap();
    subscriber
        .primary
        .execute("CREATE TABLE feed (id int PRIMARY KEY)");
    subscriber.primary.execute(&format!(
        "CREATE SUBSCRIPTION feed_sub CONNECTION 'host={} port={} user=postgres dbname=postgres' \
         PUBLICATION feed_pub",
        socket.display(),
        publisher.primary.port()
    ));
    wait_until(
        std::time::Duration::from_secs(60),
        "the subscription to copy the table",
        || subscriber.primary.value("SELECT count(*) FROM feed") == "1",
    );
    base_backup(&subscriber.primary, &backups.join("b1"));
    switch_and_wait_archived(&subscriber.primary);
    // The live subscriber goes away: whatever uses the slot now is the copy.
    subscriber.primary.stop();
    wait_until(
        std::time::Duration::from_secs(30),
        "the slot to be released",
        || {
            publisher
                .primary
                .value("SELECT active FROM pg_replication_slots WHERE slot_name = 'feed_sub'")
                == "f"
        },
    );
    // Changes the copy would fetch and confirm, were it to connect.
    publisher
        .primary
        .execute("INSERT INTO feed SELECT generate_series(2, 100)");
    let slot = "SELECT confirmed_flush_lsn || ' ' || active FROM pg_replication_slots \
                WHERE slot_name = 'feed_sub'";
    let before = publisher.primary.value(slot);

    let config = drill_config(
        root.path(),
        &format!(
            "backup = \"{}\"\narchive = \"{}\"\ntimeout = \"180s\"\n\
             checks = [{{ query = \"SELECT count(*) FROM feed\", min = 1, max = 1 }}, \
             {{ query = \"SELECT count(*) FROM pg_stat_subscription, pg_sleep(6) WHERE pid IS NOT NULL\", max = 0 }}, \
             {{ query = \"SELECT count(*) FROM pg_subscription WHERE subname = 'feed_sub'\", min = 1 }}]\n",
            backups.display(),
            archive.display()
        ),
    );
    let ok = run_drill(&config, &[]);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert_cleaned(root.path());
    assert_eq!(
        publisher.primary.value(slot),
        before,
        "the copy used the publisher's slot"
    );
    assert_eq!(
        publisher
            .primary
            .value("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'feed_sub'"),
        "0"
    );
}

#[test]
fn a_pgbackrest_config_pointing_at_live_paths_does_not_lead_the_restore_there() {
    let root = tempfile::tempdir().unwrap();
    let archive = postgres_dir(root.path(), "archive");
    let live_ts = postgres_dir(root.path(), "live_ts");
    let live_wal = postgres_dir(root.path(), "live_wal");
    let mut pair = archived_pair(&archive);
    pair.standby.stop();
    pair.primary.execute(&format!(
        "CREATE TABLESPACE live_ts LOCATION '{}'",
        live_ts.display()
    ));
    pair.primary.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, v text)
           WITH (autovacuum_enabled = false) TABLESPACE live_ts;
         INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 1000) g;",
    );
    let repo = postgres_dir(root.path(), "repo");
    let stanza = PgBackRest::stanza(
        &pair,
        root.path(),
        &format!("repo1-path={}", repo.display()),
    );
    stanza.run(&["backup", "--type=full"]);
    pair.primary
        .execute("UPDATE orders SET v = 'updated' WHERE id <= 100");
    switch_and_wait_archived(&pair.primary);
    // The live files settle (no autovacuum making _fsm/_vm later).
    pair.primary.execute("VACUUM orders");
    pair.primary.execute("CHECKPOINT");
    // The operator's restore settings, all naming production.
    let hostile = root.path().join("pgbackrest/hostile.conf");
    let conf = std::fs::read_to_string(&stanza.conf).unwrap();
    std::fs::write(
        &hostile,
        format!(
            "{conf}tablespace-map=live_ts={}\nlink-all=y\nlink-map=pg_wal={}\ndelta=y\n\
             recovery-option=primary_conninfo=host={} port={}\narchive-mode=preserve\n",
            live_ts.display(),
            live_wal.display(),
            pair.primary.data_dir().parent().unwrap().display(),
            pair.primary.port()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &hostile,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let live_files = fingerprint(&[&live_ts, &live_wal]);
    let stored = fingerprint(&[&repo]);
    let live_rows = pair
        .primary
        .value("SELECT md5(string_agg(id || v, ',' ORDER BY id)) FROM orders");
    let config = drill_config(
        root.path(),
        &format!(
            "pgbackrest = \"main\"\npgbackrest_config = \"{}\"\nrun_as_owner_of = \"{}\"\ntimeout = \"180s\"\n\
             checks = [{{ query = \"SELECT count(*) FROM orders WHERE v = 'updated'\", min = 100, max = 100 }}]\n",
            hostile.display(),
            repo.display()
        ),
    );
    let ok = run_drill(&config, &[]);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert_cleaned(root.path());
    assert_unchanged(
        "the live tablespace and WAL directory",
        &live_files,
        &fingerprint(&[&live_ts, &live_wal]),
    );
    assert_unchanged("the repository", &stored, &fingerprint(&[&repo]));
    pair.primary.stop();
    pair.primary.start();
    assert_eq!(
        pair.primary
            .value("SELECT md5(string_agg(id || v, ',' ORDER BY id)) FROM orders"),
        live_rows
    );
}
