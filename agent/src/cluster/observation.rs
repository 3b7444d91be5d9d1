//! What one look at a member's local server found ([`Observation`]), in
//! the terms the HA loop decides on: alive, answering, in recovery, its
//! positions, timeline and upstream. Every engine's backend fills it in
//! (PostgreSQL in `local.rs`, MariaDB and Redis in their `observe`), and
//! the simulation's fake server too.

use crate::pgserver::postmaster::Postmaster;

/// What one look at the local server found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    /// Whether a postmaster process runs for the data directory:
    /// running, stopped, or unknown (never to be taken for stopped).
    pub server: Postmaster,
    /// Why `postmaster.pid` could not be used, if it could not.
    pub pid_fault: Option<String>,
    /// It answered a query within the loop's budget.
    pub answering: bool,
    pub in_recovery: bool,
    /// Primary: its flush position; standby: the further of the positions
    /// received and replayed (after a restart, PostgreSQL resets the
    /// received position to the start of the segment it streams from,
    /// behind what it replayed from its own `pg_wal`). Bytes from 0/0.
    pub lsn: Option<u64>,
    pub replayed: Option<u64>,
    pub replay_paused: bool,
    pub timeline: Option<u64>,
    /// Where `timeline` began: the switch point (bytes from 0/0) of the
    /// last line of its timeline history (`pg_wal/NNNNNNNN.history`), 0
    /// on timeline 1; `None` when it could not be read. PostgreSQL reuses
    /// timeline numbers, so the number alone does not name a timeline:
    /// two servers on "timeline 4" begun at different points hold
    /// different histories.
    pub timeline_start: Option<u64>,
    /// A standby that has read to the end of its own `pg_wal` since it
    /// started: its startup process asked for streaming, which sets the
    /// received position (`pg_last_wal_receive_lsn()` is not null). Until
    /// then `lsn` may lag behind the WAL it holds (replay of its own
    /// `pg_wal` in progress, or held back by `recovery_min_apply_delay`).
    pub wal_end_read: bool,
    /// The WAL receiver's upstream (`host:port`) while it streams.
    pub streaming_from: Option<String>,
    /// Why this server may not become the leader although it answers as
    /// a replica (an engine's own finding, e.g. MariaDB's errant GTIDs or
    /// a rebuild required); `None` for PostgreSQL, whose timelines say it.
    pub unfit: Option<String>,
}

impl Observation {
    /// A standby that may become the leader: answering, in recovery,
    /// replaying.
    pub fn healthy_standby(&self) -> bool {
        self.answering
            && self.in_recovery
            && !self.replay_paused
            && self.lsn.is_some()
            && self.unfit.is_none()
    }

    pub fn primary(&self) -> bool {
        self.answering && !self.in_recovery
    }

    /// The server is known to be stopped (an unknown state is not).
    pub fn stopped(&self) -> bool {
        self.server.stopped() && !self.answering
    }

    /// `primary`, `standby`, `stopped`, `not answering` or `unknown`
    /// (whether a postmaster runs cannot be told).
    pub fn role(&self) -> &'static str {
        match (&self.server, self.answering, self.in_recovery) {
            (_, true, false) => "primary",
            (_, true, true) => "standby",
            (Postmaster::Stopped, false, _) => "stopped",
            (Postmaster::Running(_), false, _) => "not answering",
            (Postmaster::Unknown(_), false, _) => "unknown",
        }
    }
}
