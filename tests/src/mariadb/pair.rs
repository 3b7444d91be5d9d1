//! A MariaDB primary and replicas replicating from it by GTID
//! (`MASTER_USE_GTID = slave_pos`), all from the template, for the
//! replication, consistency and failover tests; a replica's state read
//! from `SHOW SLAVE STATUS` by column.
//!
//! ```no_run
//! let pair = watchpost_e2e::mariadb::MariadbPair::start();
//! pair.primary.execute("CREATE TABLE app.t (id int PRIMARY KEY)");
//! pair.sync(); // the replica applied everything the primary wrote
//! ```
//!
//! The replica is read-only (`read_only = 1`), connects as `root` over TCP
//! (no password, loopback only), retries the primary every second and
//! hears a heartbeat from it every second, so that a lost primary is seen
//! within seconds.

use super::{Mariadb, Server};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long the replica may take to apply what the primary wrote.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// A primary and one replica of it.
pub struct MariadbPair {
    pub primary: Mariadb,
    pub replica: Mariadb,
}

impl MariadbPair {
    /// A primary and a replicating replica, each with `settings` added.
    pub fn start() -> MariadbPair {
        MariadbPair::with_settings(&[])
    }

    /// A pair whose servers both get `settings` (`"name=value"`).
    pub fn with_settings(settings: &[&str]) -> MariadbPair {
        let primary = Mariadb::with_settings(settings);
        let mut replica_settings = vec!["read_only=1"];
        replica_settings.extend_from_slice(settings);
        let replica = Mariadb::with_settings(&replica_settings);
        let pair = MariadbPair { primary, replica };
        pair.replicate();
        pair.sync();
        pair
    }

    /// Point the replica at the primary by GTID, start both threads and
    /// wait until they run.
    pub fn replicate(&self) {
        follow(&self.replica, self.primary.port());
    }

    /// Another replica of the primary (read-only, replicating, caught up).
    pub fn add_replica(&self) -> Mariadb {
        let replica = Mariadb::with_settings(&["read_only=1"]);
        follow(&replica, self.primary.port());
        self.wait_caught_up(&replica);
        replica
    }

    /// Wait until `replica` applied everything the primary wrote so far;
    /// panic after 30 s.
    pub fn wait_caught_up(&self, replica: &Server) {
        let position = self.primary.value("SELECT @@global.gtid_binlog_pos");
        if position.is_empty() {
            return;
        }
        let waited = replica.value(&format!(
            "SELECT MASTER_GTID_WAIT('{position}', {})",
            SYNC_TIMEOUT.as_secs()
        ));
        assert_eq!(
            waited,
            "0",
            "the replica did not reach {position} in {SYNC_TIMEOUT:?}: {:?}",
            slave_status(replica)
        );
    }

    /// Wait until the replica applied every transaction the primary has
    /// written so far (`MASTER_GTID_WAIT`); panic after 30 s.
    pub fn sync(&self) {
        self.wait_caught_up(&self.replica);
    }

    /// `--target primary=DSN --target replica=DSN` for `watchpost check`.
    pub fn target_args(&self) -> Vec<String> {
        vec![
            "--target".to_string(),
            format!("primary={}", self.primary.dsn()),
            "--target".to_string(),
            format!("replica={}", self.replica.dsn()),
        ]
    }
}

/// `pt-heartbeat --update` on the primary's socket, every 200 ms, until
/// dropped.
pub struct HeartbeatWriter(Child);

impl HeartbeatWriter {
    pub fn start(primary: &Mariadb) -> HeartbeatWriter {
        let child = Command::new("pt-heartbeat")
            .arg(format!("--socket={}", primary.socket().display()))
            .args([
                "--user=root",
                "--database=app",
                "--create-table",
                "--update",
                "--utc",
                "--interval=0.2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pt-heartbeat (install percona-toolkit)");
        primary.wait_for_value(
            "SELECT COUNT(*) > 0 FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'heartbeat'",
            "1",
            Duration::from_secs(20),
        );
        primary.wait_for_value(
            "SELECT COUNT(*) FROM app.heartbeat",
            "1",
            Duration::from_secs(20),
        );
        HeartbeatWriter(child)
    }
}

impl Drop for HeartbeatWriter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The failover tests' name for a pair.
pub type Pair = MariadbPair;

/// Make `replica` replicate from the server on `port` (as root, by GTID,
/// retrying every second, a heartbeat every second), and wait until both
/// of its replication threads run.
pub fn follow(replica: &Server, port: u16) {
    replica.execute(&format!(
        "STOP SLAVE; CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {port}, \
         MASTER_USER = 'root', MASTER_PASSWORD = '', MASTER_USE_GTID = slave_pos, \
         MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1; START SLAVE"
    ));
    wait_replicating(replica);
}

/// Wait until both replication threads of `replica` run.
pub fn wait_replicating(replica: &Server) {
    crate::pg::wait_until(SYNC_TIMEOUT, "the replica to replicate", || {
        let status = slave_status(replica);
        status.get("Slave_IO_Running").map(String::as_str) == Some("Yes")
            && status.get("Slave_SQL_Running").map(String::as_str) == Some("Yes")
    });
}

/// `SHOW SLAVE STATUS`, by column (empty when it replicates from no one).
pub fn slave_status(server: &Server) -> BTreeMap<String, String> {
    // With column names (the server's `execute` leaves them out).
    let mut client = Command::new(super::program("mariadb"));
    client
        .arg("--no-defaults")
        .arg(format!("--socket={}", server.socket().display()))
        .args(["-uroot", "--batch", "--connect-timeout=5"])
        .args(["-e", "SHOW SLAVE STATUS\\G"])
        .stdin(Stdio::null());
    let text = super::try_run(client).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}
