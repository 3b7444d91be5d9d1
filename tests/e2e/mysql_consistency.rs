//! `mysql-consistency` on a real MariaDB primary and GTID replica: equal
//! tables are ok; a row changed on the replica without logging it
//! (`sql_log_bin = 0`) is critical, naming the table and the key range
//! holding it; a table without a primary key is named as skipped; a
//! lagging replica pauses the comparison (`warning`, no difference
//! counted).

use watchpost_e2e::mariadb::MariadbPair;
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn consistency(pair: &MariadbPair, settings: &[(&str, &str)]) -> Checked {
    let mut args = pair.target_args();
    args.extend(sets(settings));
    // The run's deadline well past `time_budget` (no new chunk after it):
    // on a loaded machine the default 10 s deadline cut the run short of
    // an 8 s budget and the report was `unknown` (CI, 2026-12-06).
    args.extend(["--timeout".to_string(), "40s".to_string()]);
    check(&probes::path("mysql-consistency"), &args)
}

/// The numbers in a key range message `keys past (A) up to (B)`.
fn range_of(message: &str) -> (i64, i64) {
    let number = |after: &str| -> i64 {
        let start = message
            .find(after)
            .unwrap_or_else(|| panic!("no `{after}` in {message}"))
            + after.len();
        message[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("no number after `{after}` in {message}"))
    };
    (number("keys past ("), number("up to ("))
}

#[test]
fn mysql_consistency_names_the_table_and_key_range_of_an_unlogged_change() {
    let pair = MariadbPair::start();
    pair.primary.execute(
        "CREATE TABLE app.accounts (id int PRIMARY KEY, owner varchar(40), balance decimal(12,2), \
           note text NULL); \
         INSERT INTO app.accounts SELECT seq, CONCAT('owner', seq), seq * 1.5, \
           IF(seq % 7 = 0, NULL, 'n') FROM app.seq_1_to_5000; \
         CREATE TABLE app.pairs (a int, b varchar(10), v int, PRIMARY KEY (a, b)); \
         INSERT INTO app.pairs SELECT seq % 10, CONCAT('k', seq), seq FROM app.seq_1_to_300;",
    );
    pair.sync();
    let settings = [("rows_per_chunk", "500"), ("time_budget", "8s")];
    let equal = consistency(&pair, &settings);
    assert_eq!((equal.code, equal.status()), (0, "ok"), "{:#}", equal.json);
    assert_eq!(
        equal.value_where(
            "mysql.consistency.compared_rows",
            "table",
            "`app`.`accounts`"
        ),
        Some(5000.0)
    );
    assert_eq!(
        equal.value_where("mysql.consistency.complete", "table", "`app`.`pairs`"),
        Some(1.0)
    );

    // A change on the replica that never reaches the binlog.
    pair.replica
        .execute("SET SESSION sql_log_bin = 0; UPDATE app.accounts SET note = 'n' WHERE id = 3500");
    let changed = consistency(&pair, &settings);
    assert_eq!(
        (changed.code, changed.status()),
        (2, "critical"),
        "{:#}",
        changed.json
    );
    assert_eq!(
        changed.value_where(
            "mysql.consistency.mismatched_chunks",
            "table",
            "`app`.`accounts`"
        ),
        Some(1.0)
    );
    let message = changed.message();
    assert!(message.contains("`app`.`accounts`"), "{message}");
    assert!(!message.contains("`app`.`pairs`"), "{message}");
    let (past, up_to) = range_of(message);
    assert!(past < 3500 && 3500 <= up_to, "{message}");
    assert!(up_to - past <= 500, "{message}");

    // A table without a primary key is named, never silently left out.
    pair.primary
        .execute("CREATE TABLE app.loose (v int); INSERT INTO app.loose VALUES (1)");
    pair.sync();
    let loose = consistency(&pair, &[("tables", "app.loose, app.pairs")]);
    assert_eq!(loose.status(), "warning", "{:#}", loose.json);
    assert!(
        loose.message().contains("`app`.`loose` not compared"),
        "{}",
        loose.message()
    );
    assert_eq!(loose.value("mysql.consistency.skipped_tables"), 1.0);
}

/// The replica lags (its SQL thread stopped) behind a change on the
/// primary: compared now, the chunk holding it would differ. The run
/// waits for the replica to apply the primary's position, not past its
/// budget, and says it paused there (`warning`), with no difference
/// counted; once the replica applies again the same run is ok.
#[test]
fn mysql_consistency_pauses_while_the_replica_lags_and_counts_no_difference() {
    let pair = MariadbPair::start();
    pair.primary.execute(
        "CREATE TABLE app.accounts (id int PRIMARY KEY, note varchar(40)); \
         INSERT INTO app.accounts SELECT seq, 'n' FROM app.seq_1_to_2000",
    );
    pair.sync();
    pair.replica.execute("STOP SLAVE SQL_THREAD");
    pair.primary
        .execute("UPDATE app.accounts SET note = 'changed' WHERE id = 1500");
    let settings = [("rows_per_chunk", "500"), ("time_budget", "2s")];
    let paused = consistency(&pair, &settings);
    assert_eq!(
        (paused.code, paused.status()),
        (1, "warning"),
        "{:#}",
        paused.json
    );
    let message = paused.message();
    assert!(message.contains("comparison paused"), "{message}");
    assert!(message.contains("`app`.`accounts`"), "{message}");
    assert!(!message.contains("differs"), "{message}");
    assert_ne!(
        paused.value_where(
            "mysql.consistency.mismatched_chunks",
            "table",
            "`app`.`accounts`"
        ),
        Some(1.0),
        "{:#}",
        paused.json
    );

    pair.replica.execute("START SLAVE SQL_THREAD");
    pair.sync();
    let caught_up = consistency(&pair, &settings);
    assert_eq!(
        (caught_up.code, caught_up.status()),
        (0, "ok"),
        "{:#}",
        caught_up.json
    );
    assert_eq!(
        caught_up.value_where(
            "mysql.consistency.compared_rows",
            "table",
            "`app`.`accounts`"
        ),
        Some(2000.0)
    );
}
