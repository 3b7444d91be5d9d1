//! The tests' MariaDB servers keep to their own directories. A starting
//! `mariadbd` deletes every `#sql*` file in its `tmpdir` (MariaDB's
//! `mysql_rm_tmp_tables`): on the shared `/tmp` those are the temporary
//! tables of every other server there, the host's own service and the
//! other tests' servers included (a CI run failed on one:
//! "Error on delete of '/tmp/#sql-temptable-….MAI'").

use watchpost_e2e::mariadb::Mariadb;

#[test]
fn a_starting_test_server_leaves_the_temporary_tables_in_tmp_alone() {
    let tmp = std::env::temp_dir();
    let table = tmp.join(format!(
        "#sql-temptable-watchpost-canary-{}.MAI",
        std::process::id()
    ));
    std::fs::write(&table, b"another server's temporary table").unwrap();
    let db = Mariadb::start();
    db.execute("SELECT 1");
    let survived = table.exists();
    let _ = std::fs::remove_file(&table);
    assert!(
        survived,
        "starting a test mariadbd deleted {} in the shared temporary directory",
        table.display()
    );
}
