//! One look at the local MariaDB server over an admin session: its
//! `read_only`, replication domain, GTID variables, `SHOW SLAVE STATUS`
//! and term row, read into a [`Reading`] that [`super::position::map`]
//! turns into the core's [`Observation`].

use super::position::{self, FIRST_TERM, Reading, Replica};
use crate::cluster::local::Observation;
use crate::pgserver::postmaster::Probe;
use crate::remediate::mysql_failover::server::Server as Session;
use crate::sql::Error;

/// No `watchpost` database (1049) or no `cluster_term` table (1146) yet:
/// no term was ever opened.
const NO_TERM_YET: [u32; 2] = [1049, 1146];

/// The term row's statement.
pub const TERM: &str = "SELECT CAST(term AS CHAR) FROM watchpost.cluster_term WHERE id = 1";

/// Read the server (all or nothing).
pub async fn read(session: &mut Session) -> Result<Reading, Error> {
    let status = session.replica_status().await?;
    let received = status
        .as_ref()
        .map(|s| s.received.clone())
        .unwrap_or_default();
    let gtids = session.gtids(&received).await?;
    let read_only = session.value("SELECT @@GLOBAL.read_only").await?;
    let domain = session.value("SELECT @@GLOBAL.gtid_domain_id").await?;
    let domain = domain
        .trim()
        .parse()
        .map_err(|_| Error::Unreachable(format!("gtid_domain_id {domain:?} is not a number")))?;
    Ok(Reading {
        read_only: matches!(read_only.trim(), "1" | "ON"),
        domain,
        gtids,
        replica: status.map(|s| Replica {
            io_running: s.io_running,
            sql_running: s.sql_running,
            last_io_errno: s.last_io_errno,
            last_io_error: s.last_io_error,
            last_sql_errno: s.last_sql_errno,
            last_sql_error: s.last_sql_error,
            host: s.source_host,
            port: s.source_port,
        }),
        term: term(session).await,
    })
}

/// Its term (`None`: it could not be read).
pub async fn term(session: &mut Session) -> Option<u64> {
    match session.value(TERM).await {
        Ok(text) if text.trim().is_empty() => Some(FIRST_TERM),
        Ok(text) => text.trim().parse().ok(),
        Err(Error::Query(q)) if q.number.is_some_and(|n| NO_TERM_YET.contains(&n)) => {
            Some(FIRST_TERM)
        }
        Err(e) => {
            tracing::debug!("cluster: cannot read the MariaDB term: {e:?}");
            None
        }
    }
}

/// The core's observation from the process probe and, if the server
/// answered, its reading.
pub fn observation(probe: Probe, reading: Option<&Reading>) -> Observation {
    let mut seen = Observation {
        server: probe.state,
        pid_fault: probe.fault,
        ..Observation::default()
    };
    let Some(reading) = reading else {
        return seen;
    };
    let mapped = position::map(reading);
    seen.answering = true;
    seen.in_recovery = mapped.in_recovery;
    seen.lsn = Some(mapped.lsn);
    seen.replayed = Some(mapped.replayed);
    seen.replay_paused = mapped.replay_paused;
    seen.timeline = mapped.timeline;
    // MariaDB has no WAL of its own to replay before it asks its primary.
    seen.wal_end_read = mapped.in_recovery;
    seen.streaming_from = mapped.streaming_from;
    seen.unfit = mapped.unfit;
    seen
}
