//! `mysql-integrity` on a real MariaDB: intact tables are ok; a byte
//! flipped in an `.ibd` page (staged on the stopped server) makes
//! `CHECK TABLE` fail and the probe critical, naming the table; with the
//! server's log directory granted, the corruption lines InnoDB wrote are
//! critical on their own, naming the table.

use std::io::{Read, Seek, SeekFrom, Write};
use watchpost_e2e::mariadb::Mariadb;
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn integrity(db: &Mariadb, settings: &[(&str, &str)]) -> Checked {
    let mut args = vec!["--target".to_string(), format!("primary={}", db.dsn())];
    args.extend(sets(settings));
    check(&probes::path("mysql-integrity"), &args)
}

/// Flip every bit of one byte in the middle of page `page` (16 KiB pages).
fn flip_byte(path: &std::path::Path, page: u64) {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let offset = page * 16_384 + 2_000;
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.read_exact(&mut byte).expect("read the byte");
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.write_all(&[byte[0] ^ 0xff]).expect("write the byte");
    file.sync_all().expect("sync");
}

#[test]
fn mysql_integrity_names_a_table_with_a_flipped_byte() {
    let mut db = Mariadb::start();
    db.execute(
        "CREATE TABLE app.intact (id int PRIMARY KEY); INSERT INTO app.intact VALUES (1), (2); \
         CREATE TABLE app.damaged (id int PRIMARY KEY, pad varchar(200)); \
         INSERT INTO app.damaged SELECT seq, REPEAT('x', 200) FROM app.seq_1_to_5000",
    );
    let budget = [("check_time", "30")];
    let clean = integrity(&db, &budget);
    assert_eq!((clean.code, clean.status()), (0, "ok"), "{:#}", clean.json);
    assert_eq!(clean.value("mysql.integrity.tables_checked"), 2.0);
    assert_eq!(clean.value("mysql.integrity.corrupt_tables"), 0.0);
    let position = clean.value("mysql.integrity.scan.position");
    assert!((0.0..1.0).contains(&position), "{position}");

    db.stop();
    flip_byte(&db.data_dir().join("app/damaged.ibd"), 4);
    db.start();
    let corrupt = integrity(&db, &budget);
    assert_eq!(
        (corrupt.code, corrupt.status()),
        (2, "critical"),
        "{:#}",
        corrupt.json
    );
    assert_eq!(corrupt.value("mysql.integrity.corrupt_tables"), 1.0);
    assert!(
        corrupt.message().contains("`app`.`damaged`"),
        "{}",
        corrupt.message()
    );
    assert!(
        !corrupt.message().contains("intact"),
        "{}",
        corrupt.message()
    );

    // Limited to the schema it names.
    let other = integrity(&db, &[("check_time", "30"), ("schemas", "mysql")]);
    assert_eq!(other.status(), "ok", "{:#}", other.json);
    assert_eq!(other.value("mysql.integrity.tables_checked"), 0.0);
}

/// The error log part on its own (`schemas = mysql`: no application table
/// is checked by `CHECK TABLE`): the server's log directory granted, an
/// old corruption line in a rotated log (outside the window) does not
/// count; after a byte is flipped in an `.ibd` page and the table read,
/// the corruption lines InnoDB writes make the run critical, naming the
/// table; without the grant the part is skipped with a note naming it.
#[test]
fn mysql_integrity_reads_corruption_lines_from_a_granted_error_log() {
    let mut db = Mariadb::start();
    db.execute(
        "CREATE TABLE app.damaged (id int PRIMARY KEY, pad varchar(200)); \
         INSERT INTO app.damaged SELECT seq, REPEAT('x', 200) FROM app.seq_1_to_5000",
    );
    let log_dir = db
        .log_path()
        .parent()
        .expect("the log's directory")
        .to_path_buf();
    std::fs::write(
        log_dir.join("mysqld.log.1"),
        "2020-01-02 03:04:05 0 [ERROR] InnoDB: Database page corruption on disk or a failed \
         read of file './app/ancient.ibd' page [page id: space=99, page number=3].\n",
    )
    .expect("write a rotated log");
    let run = |db: &Mariadb, grant: bool| {
        let mut args = vec![
            "--target".to_string(),
            format!("primary={}", db.dsn()),
            "--timeout".to_string(),
            "30s".to_string(),
        ];
        if grant {
            args.extend([
                "--dir".to_string(),
                format!("error-log={}", log_dir.display()),
            ]);
        }
        args.extend(sets(&[("schemas", "mysql")]));
        check(&probes::path("mysql-integrity"), &args)
    };
    let clean = run(&db, true);
    assert_eq!((clean.code, clean.status()), (0, "ok"), "{:#}", clean.json);
    assert_eq!(
        clean.value("mysql.integrity.error_log.corruption_lines"),
        0.0
    );
    assert!(
        clean.message().contains("no corruption in the error log"),
        "{}",
        clean.message()
    );

    db.stop();
    flip_byte(&db.data_dir().join("app/damaged.ibd"), 4);
    db.start();
    // Reading the table (as root, not through the probe) makes InnoDB
    // find the page and log it.
    let _ = db.try_execute("CHECK TABLE app.damaged");
    let corrupt = run(&db, true);
    assert_eq!(
        (corrupt.code, corrupt.status()),
        (2, "critical"),
        "{:#}\n{}",
        corrupt.json,
        db.log_tail()
    );
    assert!(
        corrupt.value("mysql.integrity.error_log.corruption_lines") >= 1.0,
        "{:#}",
        corrupt.json
    );
    let message = corrupt.message();
    assert!(message.contains("error log"), "{message}");
    assert!(message.contains("table `app`.`damaged`"), "{message}");
    assert!(message.contains("mysqld.log"), "{message}");
    assert!(!message.contains("ancient"), "{message}");
    // `CHECK TABLE` saw nothing of it: only the mysql schema was checked.
    assert_eq!(corrupt.value("mysql.integrity.corrupt_tables"), 0.0);

    let ungranted = run(&db, false);
    assert_eq!(ungranted.status(), "ok", "{:#}", ungranted.json);
    assert!(
        ungranted.message().contains("error log not read"),
        "{}",
        ungranted.message()
    );
}
