//! What the cluster mode does to a MariaDB server's replication, with the
//! pair failover's SQL ([`crate::remediate::mysql_failover::server`]):
//! promote (relay applied first with `MASTER_GTID_WAIT`, `STOP SLAVE;
//! RESET SLAVE ALL; SET GLOBAL read_only = 0`), open the term (its row
//! written: the first write of the new primary), follow a leader by GTID
//! (`MASTER_USE_GTID = slave_pos`, from after its own last transactions),
//! and rejoin a former primary — or record that it must be rebuilt (error
//! 1236: it holds transactions the leader lacks), never reset silently.

use super::position::{self, sequence};
use crate::remediate::mysql_failover::gtid::Position;
use crate::remediate::mysql_failover::server::{NOT_IN_PRIMARY_BINLOG, Server as Session};
use crate::sql::Error;
use crate::sql::mysql::admin::ReplicaLogin;
use std::time::Duration;
use tokio::time::Instant;

/// How long a rejoined server may take to start replicating.
const REJOIN_WITHIN: Duration = Duration::from_secs(5);

fn text(e: Error) -> String {
    format!("{e:?}")
}

/// Promote a replica, in an order that is safe to stop after any step
/// (an agent crash leaves the server as the last step left it):
///
/// 1. `STOP SLAVE IO_THREAD`, then the relay log it received applied (up
///    to `apply_within`: the caller keeps its lease meanwhile, so this is
///    short). Stopped here: a read-only replica of the old term that
///    starts its IO thread again when told to follow.
/// 2. `STOP SLAVE; RESET SLAVE ALL`. Stopped here: a read-only server on
///    the old term that replicates from no one, at the position it
///    applied: a candidate again, or a replica of the next leader.
/// 3. The new term's row written, still read-only (the admin account
///    holds `READ_ONLY ADMIN`, as the setup asks). Stopped here: a
///    read-only server on the new term whose only own transaction is that
///    row: never writable on the old term; if another member leads, the
///    core's term rule treats it as a former leader (its rejoin is refused
///    with 1236 and it must be rebuilt, as a promoted PostgreSQL standby
///    must be rewound).
/// 4. `SET GLOBAL read_only = 0`: writable, on the new term from its
///    first client write.
///
/// A term that cannot be written stops the promotion before step 4: the
/// server stays read-only. The term it opened: one past its own.
pub async fn promote(
    session: &mut Session,
    apply_within: Duration,
    member: &str,
) -> Result<u64, String> {
    let term = super::observe::term(session)
        .await
        .ok_or("cannot read its term (watchpost.cluster_term)")?;
    stop_replicating(session, apply_within).await?;
    let term = term + 1;
    open_term(session, term, member).await?;
    session
        .run(&["SET GLOBAL read_only = 0"])
        .await
        .map_err(text)?;
    Ok(term)
}

/// Steps 1 and 2 of [`promote`]: what it received applied, then its
/// replication stopped and forgotten.
async fn stop_replicating(session: &mut Session, apply_within: Duration) -> Result<(), String> {
    if session.replica_status().await.map_err(text)?.is_some() {
        // The IO thread stopped first: what it received is then final, so
        // the wait below covers all of it and `RESET SLAVE ALL` discards
        // no received transaction.
        session.run(&["STOP SLAVE IO_THREAD"]).await.map_err(text)?;
    }
    let Some(status) = session.replica_status().await.map_err(text)? else {
        return Ok(());
    };
    if !status.received.is_empty() {
        let wait = format!(
            "SELECT CAST(MASTER_GTID_WAIT({}, {:.3}) AS CHAR)",
            crate::remediate::mysql_failover::server::quote(&status.received),
            apply_within.as_secs_f64()
        );
        let waited = session.value(&wait).await.map_err(text)?;
        if waited.trim() != "0" {
            return Err(format!(
                "the relay log it received (up to {}) was not applied within {apply_within:?}; not promoted",
                status.received
            ));
        }
    }
    session
        .run(&["STOP SLAVE", "RESET SLAVE ALL"])
        .await
        .map_err(text)
}

/// Open `term`: its row in `watchpost.cluster_term` (replicated to every
/// member: their timeline), written while the server is still read-only
/// (the agent's admin account writes through `read_only` with `READ_ONLY
/// ADMIN`). Never lowers a term.
pub async fn open_term(session: &mut Session, term: u64, member: &str) -> Result<(), String> {
    let member = crate::remediate::mysql_failover::server::quote(member);
    let upsert = format!(
        "INSERT INTO watchpost.cluster_term (id, term, member) VALUES (1, {term}, {member}) \
         ON DUPLICATE KEY UPDATE member = IF(VALUES(term) > term, VALUES(member), member), \
         term = GREATEST(term, VALUES(term)), at = CURRENT_TIMESTAMP(3)"
    );
    session
        .run(&[
            "CREATE DATABASE IF NOT EXISTS watchpost",
            "CREATE TABLE IF NOT EXISTS watchpost.cluster_term (id TINYINT UNSIGNED PRIMARY KEY, \
             term BIGINT UNSIGNED NOT NULL, member VARCHAR(255) NOT NULL, \
             at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE = InnoDB",
            upsert.as_str(),
        ])
        .await
        .map_err(|e| match &e {
            Error::Query(q) if q.number == Some(READ_ONLY) => format!(
                "the server did not take its term row while read-only (error {READ_ONLY}): the admin account needs READ_ONLY ADMIN (GRANT READ_ONLY ADMIN ON *.* TO it); not promoted, it stays read-only"
            ),
            _ => format!("the server did not take its term row: {e:?}; not promoted, it stays read-only"),
        })
}

/// MariaDB's error for a write refused by `read_only` (ER_OPTION_PREVENTS_STATEMENT).
const READ_ONLY: u32 = 1290;

/// Make the (read-only) server replicate from `login` by GTID. A server
/// whose binary log is ahead of what it applied in the domain (a former
/// primary: its own transactions) starts from its binary log's position,
/// so that it asks for what follows its own last transaction: a leader
/// that lacks it refuses (1236) rather than sending it duplicates.
///
/// A server already pointed at that address is only started (`START
/// SLAVE`) unless `again`: `CHANGE MASTER` would drop the relay log it
/// received and has not applied, which a lost leader cannot send again.
pub async fn follow(
    session: &mut Session,
    login: &ReplicaLogin,
    again: bool,
) -> Result<(), String> {
    // Bounded: a server still writable (and busy) is fenced, not waited on.
    if let Err(e) = session.set_read_only().await {
        tracing::warn!("cluster: read_only = 1 before following did not take ({e:?}): fencing");
        session.fence().await.map_err(text)?;
    }
    session.confirm_read_only().await.map_err(text)?;
    if !again
        && let Some(status) = session.replica_status().await.map_err(text)?
        && status.source_host == login.host
        && status.source_port == u64::from(login.port)
        && status.last_io_errno == 0
        && status.last_sql_errno == 0
    {
        return session.run(&["START SLAVE"]).await.map_err(text);
    }
    session.run(&["STOP SLAVE"]).await.map_err(text)?;
    let domain: u32 = session
        .value("SELECT @@GLOBAL.gtid_domain_id")
        .await
        .map_err(text)?
        .trim()
        .parse()
        .map_err(|_| "gtid_domain_id is not a number".to_string())?;
    let binlog = session.position("gtid_binlog_pos").await.map_err(text)?;
    let applied = session.position("gtid_slave_pos").await.map_err(text)?;
    if ahead(&binlog, &applied, domain) {
        session
            .run(&["SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos"])
            .await
            .map_err(text)?;
    }
    session.follow(login).await.map_err(text)
}

/// Whether `binlog` holds transactions past `applied` in `domain`.
pub fn ahead(binlog: &Position, applied: &Position, domain: u32) -> bool {
    match (sequence(binlog, domain), sequence(applied, domain)) {
        (Some(written), Some(applied)) => written > applied,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Rejoin a server that ran as a primary (or does not stream) to the
/// leader at `login`: fenced first (read-only, client sessions killed),
/// then following by GTID. `Ok` (what it did) once both threads run;
/// `Err` "rebuild required" when the leader refuses it (1236: it holds
/// transactions the leader lacks) — replication is stopped and it stays
/// read-only, never reset.
pub async fn rejoin(session: &mut Session, login: &ReplicaLogin) -> Result<String, String> {
    let killed = session
        .fence()
        .await
        .map_err(|e| format!("cannot make it read-only: {e:?}"))?;
    let own = session.position("gtid_binlog_pos").await.map_err(text)?;
    follow(session, login, true).await?;
    let started = Instant::now();
    loop {
        let status = session
            .replica_status()
            .await
            .map_err(text)?
            .ok_or("its replication settings are gone")?;
        if status.last_io_errno == NOT_IN_PRIMARY_BINLOG {
            let _ = session.run(&["STOP SLAVE"]).await;
            return Err(format!(
                "rebuild required: the leader {}:{} refused it (error {NOT_IN_PRIMARY_BINLOG}: {}): it holds transactions the leader lacks (its gtid_binlog_pos {own}); it stays read-only and does not replicate: rebuild it from the leader (mariadb-backup), after saving what those transactions wrote if it matters",
                login.host, login.port, status.last_io_error
            ));
        }
        if status.last_io_errno != 0 || status.last_sql_errno != 0 {
            let _ = session.run(&["STOP SLAVE"]).await;
            return Err(format!(
                "cannot replicate from {}:{}: IO error {} ({}), SQL error {} ({}); it stays read-only",
                login.host,
                login.port,
                status.last_io_errno,
                status.last_io_error,
                status.last_sql_errno,
                status.last_sql_error
            ));
        }
        if status.io_running == "Yes" && status.sql_running == "Yes" {
            return Ok(format!(
                "read-only, {} client session(s) killed, replicating by GTID from its gtid_binlog_pos {own}",
                killed.len()
            ));
        }
        if started.elapsed() > REJOIN_WITHIN {
            return Err(format!(
                "it did not start replicating from {}:{} within {REJOIN_WITHIN:?} (IO thread {}); it stays read-only",
                login.host, login.port, status.io_running
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The switchover's end of the old leader's term, read once it is
/// read-only: its last transaction in the domain and its term.
pub async fn end_of_term(session: &mut Session) -> Result<(u64, u64), String> {
    let reading = super::observe::read(session).await.map_err(text)?;
    let mapped = position::map(&reading);
    let term = mapped.timeline.ok_or("cannot read its term")?;
    Ok((mapped.lsn, term))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_former_primary_follows_from_after_its_own_transactions() {
        let p = |t: &str| Position::parse(t).unwrap();
        // It wrote 0-1-50 as the primary; it applied 0-2-30 before that.
        assert!(ahead(&p("0-1-50"), &p("0-2-30"), 0));
        // A replica that logs what it applies: nothing of its own.
        assert!(!ahead(&p("0-1-50"), &p("0-1-50"), 0));
        // A new member that never replicated and never wrote.
        assert!(!ahead(&p(""), &p(""), 0));
        // Writes of another domain do not move this one.
        assert!(!ahead(&p("0-1-50,3-1-9"), &p("0-1-50"), 0));
        assert!(ahead(&p("0-1-50"), &p(""), 0));
    }
}
