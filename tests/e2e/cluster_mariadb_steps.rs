//! The MariaDB cluster backend's steps on a real `mariadbd` (issue 27,
//! item 4's review): a promotion writes its term while still read-only,
//! so a term that cannot be written leaves the server read-only; the
//! fence's `read_only = 1` does not wait on a long write (it kills the
//! sessions holding the lock) and is read back; the accounts that write
//! through `read_only` are found.

use std::collections::BTreeMap;
use std::time::Duration;
use watchpost::cluster::mariadb::{accounts, replicate};
use watchpost::remediate::mysql_failover::server::Server as Session;
use watchpost::sql::{SqlTargets, TargetSpec};
use watchpost_e2e::mariadb::Mariadb;

/// An admin session to `db` as `user` (no password; the DSN's database
/// is `app`).
fn session(runtime: &tokio::runtime::Runtime, db: &Mariadb, user: &str) -> Session {
    let dsn = db.dsn_as(user);
    let spec = TargetSpec {
        admin_dsn: Some(dsn.clone()),
        ..TargetSpec::new(dsn)
    };
    let targets = SqlTargets::new(&BTreeMap::from([("db".to_string(), spec)])).expect("the target");
    let session = runtime
        .block_on(targets.mysql_admin_session("db", Duration::from_secs(10)))
        .expect("an admin session");
    Session {
        target: "db".into(),
        session,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a tokio runtime")
}

/// The table the promotion writes its term into, made by hand (as an
/// earlier term would have).
const TERM_TABLE: &str = "CREATE DATABASE IF NOT EXISTS watchpost;
    CREATE TABLE watchpost.cluster_term (id TINYINT UNSIGNED PRIMARY KEY,
      term BIGINT UNSIGNED NOT NULL, member VARCHAR(255) NOT NULL,
      at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE = InnoDB;
    INSERT INTO watchpost.cluster_term (id, term, member) VALUES (1, 4, 'before');";

#[test]
fn a_promotion_whose_term_cannot_be_written_leaves_the_server_read_only() {
    let db = Mariadb::with_settings(&["read_only=ON"]);
    db.execute(TERM_TABLE);
    db.execute(
        "CREATE TRIGGER watchpost.refuse BEFORE UPDATE ON watchpost.cluster_term \
         FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no new term'",
    );
    let rt = runtime();
    let mut s = session(&rt, &db, "root");
    let refused = rt
        .block_on(replicate::promote(&mut s, Duration::from_secs(1), "m1"))
        .expect_err("a term that cannot be written stops the promotion");
    assert!(refused.contains("term row"), "{refused}");
    // Never writable on the old term.
    assert_eq!(db.value("SELECT @@GLOBAL.read_only"), "1");
    assert_eq!(db.value("SELECT term FROM watchpost.cluster_term"), "4");
    // The term can be written: promoted, one past the term it held.
    db.execute("DROP TRIGGER watchpost.refuse");
    let term = rt
        .block_on(replicate::promote(&mut s, Duration::from_secs(1), "m1"))
        .expect("promoted");
    assert_eq!(term, 5);
    assert_eq!(db.value("SELECT @@GLOBAL.read_only"), "0");
    assert_eq!(
        db.value("SELECT CONCAT(term, ' ', member) FROM watchpost.cluster_term"),
        "5 m1"
    );
}

#[test]
fn a_promotion_writes_its_term_while_read_only_with_read_only_admin() {
    let db = Mariadb::with_settings(&["read_only=ON"]);
    // The setup's admin grants without READ_ONLY ADMIN: it cannot write
    // the term while the server is read-only.
    db.execute(
        "CREATE USER 'adm'@'%';
         GRANT REPLICATION SLAVE ADMIN, CONNECTION ADMIN, SLAVE MONITOR, BINLOG MONITOR,
               PROCESS ON *.* TO 'adm'@'%';
         GRANT ALL ON watchpost.* TO 'adm'@'%';
         GRANT SELECT ON app.* TO 'adm'@'%';",
    );
    let rt = runtime();
    let mut s = session(&rt, &db, "adm");
    let refused = rt
        .block_on(replicate::promote(&mut s, Duration::from_secs(1), "m1"))
        .expect_err("the term cannot be written while read-only");
    assert!(refused.contains("READ_ONLY ADMIN"), "{refused}");
    assert_eq!(db.value("SELECT @@GLOBAL.read_only"), "1");
    db.execute("GRANT READ_ONLY ADMIN ON *.* TO 'adm'@'%'");
    let mut s = session(&rt, &db, "adm");
    let term = rt
        .block_on(replicate::promote(&mut s, Duration::from_secs(1), "m1"))
        .expect("promoted");
    assert_eq!(term, 2);
    assert_eq!(db.value("SELECT @@GLOBAL.read_only"), "0");
}

#[test]
fn the_fence_kills_a_long_write_that_holds_read_only_back() {
    let db = Mariadb::start();
    db.execute(
        "CREATE TABLE app.t (id INT PRIMARY KEY, v INT) ENGINE = InnoDB;
         INSERT INTO app.t VALUES (1, 0);",
    );
    // A write that runs for a minute: `SET GLOBAL read_only = 1` waits
    // for it (lock_wait_timeout is a day by default).
    let writer = {
        let port = db.port();
        std::thread::spawn(move || {
            let mut client = std::process::Command::new(watchpost_e2e::mariadb::program("mariadb"));
            client
                .args([
                    "--no-defaults",
                    "-h127.0.0.1",
                    &format!("-P{port}"),
                    "-uroot",
                ])
                .args(["-e", "UPDATE app.t SET v = 1 + SLEEP(60) WHERE id = 1"]);
            watchpost_e2e::mariadb::try_run(client)
        })
    };
    db.wait_for_value(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE info LIKE 'UPDATE app.t%'",
        "1",
        Duration::from_secs(20),
    );
    let rt = runtime();
    let mut s = session(&rt, &db, "root");
    let killed = rt.block_on(s.fence()).expect("fenced");
    assert!(!killed.is_empty());
    assert_eq!(db.value("SELECT @@GLOBAL.read_only"), "1");
    // The write was killed, not waited for.
    let outcome = writer.join().expect("the writer thread");
    assert!(outcome.is_err(), "the long write finished: {outcome:?}");
    assert_eq!(db.value("SELECT v FROM app.t"), "0");
}

#[test]
fn accounts_that_write_through_read_only_are_found() {
    let db = Mariadb::start();
    db.execute(
        "CREATE USER 'dba'@'%'; GRANT READ_ONLY ADMIN ON *.* TO 'dba'@'%';
         CREATE USER 'old_super'@'%'; GRANT SUPER, CREATE ON *.* TO 'old_super'@'%';",
    );
    // SUPER alone no longer writes through read_only on 10.11.
    db.execute("SET GLOBAL read_only = 1");
    let mut client = std::process::Command::new(watchpost_e2e::mariadb::program("mariadb"));
    client
        .args(["--no-defaults", "-h127.0.0.1", &format!("-P{}", db.port())])
        .args(["-uold_super", "-e", "CREATE DATABASE x"]);
    let refused = watchpost_e2e::mariadb::try_run(client).expect_err("read-only");
    assert!(refused.contains("1290"), "{refused}");
    let rt = runtime();
    let mut s = session(&rt, &db, "root");
    let found = rt.block_on(accounts::read(&mut s)).expect("read");
    let found = found.join("\n");
    // The template's ALL account, the new one; not the agent's own
    // (root@127.0.0.1 here), root@localhost, nor SUPER alone.
    assert!(found.contains("'dba'@'%' (READ_ONLY ADMIN)"), "{found}");
    assert!(found.contains("'wp_admin'@'%'"), "{found}");
    for absent in ["old_super", "'root'@'localhost'", "'root'@'127.0.0.1'"] {
        assert!(!found.contains(absent), "{absent} in {found}");
    }
    // Without SELECT on mysql.global_priv: the grant is named.
    db.execute(
        "CREATE USER 'adm'@'%'; GRANT PROCESS ON *.* TO 'adm'@'%'; GRANT SELECT ON app.* TO 'adm'@'%'",
    );
    let mut s = session(&rt, &db, "adm");
    let why = rt.block_on(accounts::read(&mut s)).expect_err("no grant");
    assert!(why.contains("GRANT SELECT ON mysql.global_priv"), "{why}");
}
