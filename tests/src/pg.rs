//! Real PostgreSQL for the tests: a primary (`initdb --data-checksums`)
//! and a streaming standby (`pg_basebackup -R`) on free loopback ports in
//! a temporary directory of their own, so that tests can run in parallel.
//! Dropping the pair stops both servers, also when a test panics.
//!
//! ```no_run
//! let pair = watchpost_e2e::pg::PgPair::start();
//! pair.primary.execute("CREATE TABLE t (id int PRIMARY KEY)");
//! pair.wait_for_replay();
//! let dsn = pair.standby.dsn(); // for `watchpost check --target standby=...`
//! ```
//!
//! Both servers are tuned to start fast and stay small (16 MB of shared
//! buffers, `fsync = off`); `pg_stat_statements` is preloaded. Roles: the
//! superuser `postgres` (trust over the unix socket, used by the tests
//! themselves), `watchpost` (the probes' role: `pg_monitor`, trust over
//! TCP) and the group `password_users`, whose members must give a
//! password over TCP.

mod cluster;
mod command;
pub mod tls;

pub use cluster::{Cluster, MONITOR_USER, PASSWORD_GROUP, SUPERUSER, wait_until};
pub use command::BIN_DIR;

use std::time::Duration;
use tempfile::TempDir;

/// `n` servers: `node1` the primary, the others its streaming standbys.
pub struct PgNodes {
    pub nodes: Vec<Cluster>,
    /// Removed after the servers stopped (fields drop in order).
    _dir: TempDir,
}

impl PgNodes {
    pub fn start(n: usize) -> PgNodes {
        let dir = tempfile::Builder::new()
            .prefix("watchpost-pg-")
            .tempdir()
            .expect("create a temporary directory");
        command::hand_over(dir.path());
        // pg_rewind reads the old primary's WAL back to the last common
        // checkpoint: keep some, as a cluster-mode node should.
        let settings = [("wal_keep_size".to_string(), "64MB".to_string())];
        let mut primary = Cluster::init(dir.path(), "node1", &settings);
        primary.start();
        primary.execute(&format!(
            "CREATE ROLE {MONITOR_USER} LOGIN IN ROLE pg_monitor;"
        ));
        let mut nodes = vec![primary];
        for i in 2..=n {
            let mut standby = Cluster::base_backup(&nodes[0], dir.path(), &format!("node{i}"));
            standby.start();
            nodes.push(standby);
        }
        wait_until(Duration::from_secs(30), "every standby to stream", || {
            nodes[0].value("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
                == (n - 1).to_string()
        });
        PgNodes { nodes, _dir: dir }
    }
}

impl Drop for PgNodes {
    fn drop(&mut self) {
        // The agents start and stop servers on their own: stop every one.
        for node in &mut self.nodes {
            node.set_running(true);
        }
    }
}

/// A primary and its streaming standby.
pub struct PgPair {
    pub primary: Cluster,
    pub standby: Cluster,
    /// Removed after both servers stopped (fields drop in order).
    _dir: TempDir,
}

impl PgPair {
    /// A pair with the default settings, streaming.
    pub fn start() -> PgPair {
        PgPair::with_settings(&[])
    }

    /// A pair whose servers also get `settings` (name, value) in their
    /// config (the standby inherits the primary's config).
    pub fn with_settings(settings: &[(&str, &str)]) -> PgPair {
        let dir = tempfile::Builder::new()
            .prefix("watchpost-pg-")
            .tempdir()
            .expect("create a temporary directory");
        command::hand_over(dir.path());
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut primary = Cluster::init(dir.path(), "primary", &settings);
        primary.start();
        primary.execute(&format!(
            "CREATE ROLE {MONITOR_USER} LOGIN IN ROLE pg_monitor;
             CREATE ROLE {PASSWORD_GROUP} NOLOGIN;"
        ));
        let mut standby = Cluster::base_backup(&primary, dir.path(), "standby");
        standby.start();
        let pair = PgPair {
            primary,
            standby,
            _dir: dir,
        };
        pair.wait_for_streaming();
        pair
    }

    /// Wait until the primary sees its standby streaming.
    pub fn wait_for_streaming(&self) {
        wait_until(Duration::from_secs(30), "the standby to stream", || {
            self.primary
                .value("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
                != "0"
        });
    }

    /// Wait until the standby has replayed everything the primary wrote so far.
    pub fn wait_for_replay(&self) {
        let lsn = self.primary.value("SELECT pg_current_wal_lsn()");
        wait_until(Duration::from_secs(30), "the standby to replay", || {
            self.standby.value(&format!(
                "SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
            )) == "t"
        });
    }

    /// `--target primary=DSN --target standby=DSN` for `watchpost check`.
    pub fn target_args(&self) -> Vec<String> {
        vec![
            "--target".into(),
            format!("primary={}", self.primary.dsn()),
            "--target".into(),
            format!("standby={}", self.standby.dsn()),
        ]
    }
}
