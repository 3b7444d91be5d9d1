//! `mysql-integrity` on a real MariaDB: intact tables are ok; a byte
//! flipped in an `.ibd` page (staged on the stopped server) makes
//! `CHECK TABLE` fail and the probe critical, naming the table.

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
