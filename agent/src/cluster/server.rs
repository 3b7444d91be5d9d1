//! The database server the HA loop drives, as an interface (`Server`), so
//! that the loop's decisions do not depend on PostgreSQL: the local
//! PostgreSQL server ([`super::local::LocalServer`]) is the first backend,
//! a fake one the table tests' and the simulation's. Observations that
//! can fail are three-valued (running, stopped, unknown), and unknown
//! never counts as stopped. The fence ([`Fence`]) is the separate process
//! that stops the server when the agent stops renewing while it leads.

use super::local::{LocalServer, Observation, ShutDown};
use crate::config::ClusterSpec;
use crate::pgserver::postmaster::Probe;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// What the leader's server says of its synchronous replication.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replication {
    /// `synchronous_standby_names` in force in the agent's session.
    pub names: String,
    /// `synchronous_commit` (the server's, unless the agent's role has its own).
    pub commit: String,
    /// The current WAL position, bytes from 0/0.
    pub lsn: u64,
    /// Each streaming standby: its `application_name`, flushed position
    /// (bytes) and whether its WAL sender counts it as a synchronous
    /// candidate (`sync_priority` > 0, from the sender's own reading of
    /// the setting: a sender that has not reloaded yet still shows the
    /// old one).
    pub streaming: Vec<(String, u64, bool)>,
}

/// A fence that outlives the agent: armed with a deadline while this node
/// leads, it stops the server once the deadline passes unrenewed.
pub trait Fence: Send + Sync {
    /// Arm with `until` (or disarm with `None`). What it did meanwhile,
    /// if it fired: whether it stopped the server, and its record.
    fn sync(&mut self, until: Option<Instant>) -> Option<(bool, String)>;

    /// Whether it runs armed with the last deadline given: a leader
    /// whose fence is not armed must not serve writes.
    fn armed(&self) -> bool;
}

/// The local database server of a member. Every call is bounded in time
/// (errors are messages for logs and records).
pub trait Server: Send + Sync + 'static {
    type Fence: Fence;

    /// The member's cluster settings.
    fn spec(&self) -> &ClusterSpec;

    /// The fence of this server; `record`: where it writes what it did.
    fn fence(&self, record: PathBuf) -> Self::Fence;

    /// Whether the server process runs: running, stopped or unknown.
    fn postmaster(&self) -> Probe;

    /// One look at the server within `budget`: process state, role,
    /// positions (bytes), timeline, upstream.
    fn observe(&self, budget: Duration) -> impl Future<Output = Observation> + Send;

    /// Why a diverged server could not be rewound, if it could not.
    fn rewind_precondition(&self) -> impl Future<Output = Option<String>> + Send;

    /// Start the server (as it is configured: a standby while the data
    /// directory is marked so).
    fn start(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// Stop the server (`mode`: `fast` or `immediate`); `Ok` only once it
    /// is known stopped.
    fn stop(&self, mode: &str) -> impl Future<Output = Result<(), String>> + Send;

    /// Ask the standby to promote (returns once asked).
    fn start_promotion(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// After it left recovery: make the promotion durable.
    fn confirm_promotion(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// Mark the data directory so that any later start is as a standby
    /// (demote on the next start).
    fn mark_standby(&self) -> std::io::Result<()>;

    /// Configure the (stopped) server to follow `host:port`.
    fn point_at(&self, host: &str, port: u16) -> Result<(), String>;

    /// Repoint the running standby at `host:port`.
    fn follow(&self, host: &str, port: u16) -> impl Future<Output = Result<(), String>> + Send;

    /// The connection string to a member's server.
    fn conninfo(&self, host: &str, port: u16) -> String;

    /// Rejoin a diverged former primary as a standby of `host:port`
    /// (rewind from `source`): what it did.
    fn rewind_and_follow(
        &self,
        host: &str,
        port: u16,
        source: &str,
    ) -> impl Future<Output = Result<String, String>> + Send;

    /// A server setting's current value.
    fn setting(&self, name: &str) -> impl Future<Output = Result<String, String>> + Send;

    /// Change a server setting (persistently) and reload.
    fn alter_system(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// A checkpoint (before a switchover's shutdown).
    fn checkpoint(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// After a clean stop: where its WAL ends.
    fn shut_down_at(&self) -> impl Future<Output = Result<ShutDown, String>> + Send;

    /// The settings that wait for a restart.
    fn pending_restart(&self) -> impl Future<Output = Result<Vec<String>, String>> + Send;

    /// The timeline the standby streams on, while it streams.
    fn receiving_timeline(&self) -> impl Future<Output = Option<u64>> + Send;

    /// What the primary says of its synchronous replication.
    fn replication(&self) -> impl Future<Output = Result<Replication, String>> + Send;

    /// Whether a server's term (its [`Observation::timeline`]) is data the
    /// leader wrote and replicated (MariaDB's term row, Redis's term key),
    /// so that a replica holding all of the leader's data holds exactly
    /// its term. PostgreSQL's timeline, read from the last checkpoint or
    /// restartpoint, may lag behind what a standby replayed: `false`.
    fn term_is_replicated(&self) -> bool {
        false
    }
}

impl Fence for super::watchdog::Watchdog {
    fn sync(&mut self, until: Option<Instant>) -> Option<(bool, String)> {
        super::watchdog::Watchdog::sync(self, until.map(Instant::into_std))
    }
    fn armed(&self) -> bool {
        super::watchdog::Watchdog::armed(self)
    }
}

impl Server for LocalServer {
    type Fence = super::watchdog::Watchdog;

    fn spec(&self) -> &ClusterSpec {
        &self.spec
    }
    fn fence(&self, record: PathBuf) -> Self::Fence {
        super::watchdog::Watchdog::new(self.spec.data_dir.clone(), record)
    }
    fn postmaster(&self) -> Probe {
        LocalServer::postmaster(self)
    }
    fn observe(&self, budget: Duration) -> impl Future<Output = Observation> + Send {
        LocalServer::observe(self, budget)
    }
    fn rewind_precondition(&self) -> impl Future<Output = Option<String>> + Send {
        LocalServer::rewind_precondition(self)
    }
    fn start(&self) -> impl Future<Output = Result<(), String>> + Send {
        LocalServer::start(self)
    }
    fn stop(&self, mode: &str) -> impl Future<Output = Result<(), String>> + Send {
        LocalServer::stop(self, mode)
    }
    fn start_promotion(&self) -> impl Future<Output = Result<(), String>> + Send {
        LocalServer::start_promotion(self)
    }
    fn confirm_promotion(&self) -> impl Future<Output = Result<(), String>> + Send {
        LocalServer::confirm_promotion(self)
    }
    fn mark_standby(&self) -> std::io::Result<()> {
        LocalServer::mark_standby(self)
    }
    fn point_at(&self, host: &str, port: u16) -> Result<(), String> {
        LocalServer::point_at(self, host, port)
    }
    fn follow(&self, host: &str, port: u16) -> impl Future<Output = Result<(), String>> + Send {
        LocalServer::follow(self, host, port)
    }
    fn conninfo(&self, host: &str, port: u16) -> String {
        LocalServer::conninfo(self, host, port)
    }
    fn rewind_and_follow(
        &self,
        host: &str,
        port: u16,
        source: &str,
    ) -> impl Future<Output = Result<String, String>> + Send {
        LocalServer::rewind_and_follow(self, host, port, source)
    }
    fn setting(&self, name: &str) -> impl Future<Output = Result<String, String>> + Send {
        LocalServer::setting(self, name)
    }
    fn alter_system(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), String>> + Send {
        LocalServer::alter_system(self, name, value)
    }
    fn checkpoint(&self) -> impl Future<Output = Result<(), String>> + Send {
        LocalServer::checkpoint(self)
    }
    fn shut_down_at(&self) -> impl Future<Output = Result<ShutDown, String>> + Send {
        LocalServer::shut_down_at(self)
    }
    fn pending_restart(&self) -> impl Future<Output = Result<Vec<String>, String>> + Send {
        LocalServer::pending_restart(self)
    }
    fn receiving_timeline(&self) -> impl Future<Output = Option<u64>> + Send {
        LocalServer::receiving_timeline(self)
    }
    fn replication(&self) -> impl Future<Output = Result<Replication, String>> + Send {
        LocalServer::replication(self)
    }
}
