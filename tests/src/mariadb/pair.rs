//! MariaDB replication for the failover tests: a primary and a replica
//! that follows it by GTID (`MASTER_USE_GTID = slave_pos`), more replicas
//! on demand, and a replica's state read from `SHOW SLAVE STATUS`.
//!
//! ```no_run
//! let pair = watchpost_e2e::mariadb::pair::Pair::start();
//! pair.primary.execute("CREATE TABLE app.t (id int PRIMARY KEY)");
//! pair.wait_caught_up(&pair.replica);
//! ```
//!
//! Replicas retry a lost primary every second (`MASTER_CONNECT_RETRY =
//! 1`), so that a killed primary shows in their state at once.

use super::{Mariadb, Server};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long replication may take to start or catch up in a test.
const CATCH_UP: Duration = Duration::from_secs(30);

/// A primary and one replica of it.
pub struct Pair {
    pub primary: Mariadb,
    pub replica: Mariadb,
}

impl Pair {
    /// Two new servers, the second replicating from the first.
    pub fn start() -> Pair {
        let primary = Mariadb::start();
        let replica = replica_of(&primary);
        Pair { primary, replica }
    }

    /// Another replica of the primary.
    pub fn add_replica(&self) -> Mariadb {
        replica_of(&self.primary)
    }

    /// Wait until `replica` applied everything the primary wrote.
    pub fn wait_caught_up(&self, replica: &Server) {
        let position = self.primary.value("SELECT @@gtid_binlog_pos");
        let waited = replica.value(&format!(
            "SELECT MASTER_GTID_WAIT('{position}', {})",
            CATCH_UP.as_secs()
        ));
        assert_eq!(waited, "0", "the replica did not reach {position}");
    }
}

/// A new server replicating from `primary`.
pub fn replica_of(primary: &Server) -> Mariadb {
    let replica = Mariadb::start();
    follow(&replica, primary.port());
    replica
}

/// Make `replica` replicate from the server on `port` (as root) by GTID,
/// and wait until its IO thread is connected.
pub fn follow(replica: &Server, port: u16) {
    replica.execute(&format!(
        "STOP SLAVE; CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {port}, \
         MASTER_USER = 'root', MASTER_CONNECT_RETRY = 1, MASTER_USE_GTID = slave_pos; START SLAVE"
    ));
    wait_replicating(replica);
}

/// Wait until both replication threads of `replica` run.
pub fn wait_replicating(replica: &Server) {
    crate::pg::wait_until(CATCH_UP, "the replica to replicate", || {
        let status = slave_status(replica);
        status.get("Slave_IO_Running").map(String::as_str) == Some("Yes")
            && status.get("Slave_SQL_Running").map(String::as_str) == Some("Yes")
    });
}

/// `SHOW SLAVE STATUS`, by column (empty when it replicates from no one).
pub fn slave_status(server: &Server) -> BTreeMap<String, String> {
    // With column names (the server's `execute` leaves them out).
    let mut client = std::process::Command::new(super::program("mariadb"));
    client
        .arg("--no-defaults")
        .arg(format!("--socket={}", server.socket().display()))
        .args(["-uroot", "--batch", "--connect-timeout=5"])
        .args(["-e", "SHOW SLAVE STATUS\\G"])
        .stdin(std::process::Stdio::null());
    let text = super::try_run(client).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}
