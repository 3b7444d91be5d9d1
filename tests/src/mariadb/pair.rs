//! A MariaDB primary and a replica replicating from it by GTID
//! (`MASTER_USE_GTID = slave_pos`), both from the template, for the
//! replication, consistency and failover tests.
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

use super::Mariadb;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long the replica may take to apply what the primary wrote.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// Point the replica at the primary by GTID and start both threads.
    pub fn replicate(&self) {
        self.replica.execute(&format!(
            "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
             MASTER_USER = 'root', MASTER_PASSWORD = '', MASTER_USE_GTID = slave_pos, \
             MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1; START SLAVE;",
            self.primary.port()
        ));
    }

    /// Wait until the replica applied every transaction the primary has
    /// written so far (`MASTER_GTID_WAIT`); panic after 30 s.
    pub fn sync(&self) {
        let position = self.primary.value("SELECT @@global.gtid_binlog_pos");
        if position.is_empty() {
            return;
        }
        let waited = self.replica.value(&format!(
            "SELECT MASTER_GTID_WAIT('{position}', {})",
            SYNC_TIMEOUT.as_secs()
        ));
        assert_eq!(
            waited,
            "0",
            "the replica did not reach {position} in {SYNC_TIMEOUT:?}: {}",
            self.replica.execute("SHOW SLAVE STATUS\\G")
        );
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
