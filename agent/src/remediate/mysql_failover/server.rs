//! What the MariaDB/MySQL failover reads from and does to one server over
//! an admin session: its replication state (`SHOW SLAVE STATUS`, read by
//! either column spelling, MariaDB's or MySQL 8's `Replica_`/`Source_`),
//! its GTID positions, `read_only`, killing its client sessions, and
//! pointing it at a new primary.

use super::gtid::{Position, ReplicaGtids, parse_list};
use crate::sql::Error;
use crate::sql::mysql::Engine;
use crate::sql::mysql::admin::{AdminSession, ReplicaLogin, statement_error};
use mysql_async::Row;
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

/// MariaDB's error for a replica asking for GTIDs the primary's binary
/// log does not have (ER_MASTER_FATAL_ERROR_READING_BINLOG).
pub const NOT_IN_PRIMARY_BINLOG: u32 = 1236;

/// A replica's state, from one `SHOW SLAVE STATUS` row.
#[derive(Clone, Debug, Default)]
pub struct ReplicaStatus {
    /// `Yes`, `No` or `Connecting` (`Preparing` on MySQL).
    pub io_running: String,
    pub sql_running: String,
    pub last_io_errno: u32,
    pub last_io_error: String,
    pub last_sql_errno: u32,
    pub last_sql_error: String,
    /// The primary's binary log file and position the IO thread read to,
    /// and the SQL thread applied to.
    pub read_file: String,
    pub read_pos: u64,
    pub exec_file: String,
    pub exec_pos: u64,
    /// `Slave_Pos`, `Current_Pos` or `No`.
    pub using_gtid: String,
    /// The GTIDs the IO thread received (MariaDB's `Gtid_IO_Pos`).
    pub received: String,
    pub source_host: String,
    pub source_port: u64,
}

impl ReplicaStatus {
    /// Bytes of the primary's binary log received but not applied; `None`
    /// when the two threads are in different files (at least a file apart).
    pub fn unapplied_bytes(&self) -> Option<u64> {
        (self.read_file == self.exec_file).then(|| self.read_pos.saturating_sub(self.exec_pos))
    }

    pub fn detail(&self) -> Value {
        json!({
            "io_running": self.io_running,
            "sql_running": self.sql_running,
            "last_io_errno": self.last_io_errno,
            "last_io_error": self.last_io_error,
            "last_sql_errno": self.last_sql_errno,
            "last_sql_error": self.last_sql_error,
            "received_gtid": self.received,
            "using_gtid": self.using_gtid,
            "unapplied_bytes": self.unapplied_bytes(),
            "source": format!("{}:{}", self.source_host, self.source_port),
        })
    }
}

/// The first of `names` the row has, as text ("" when NULL or absent).
fn text(row: &Row, names: &[&str]) -> String {
    for name in names {
        if let Some(Ok(value)) = row.get_opt::<Option<String>, _>(*name) {
            return value.unwrap_or_default();
        }
    }
    String::new()
}

fn number(row: &Row, names: &[&str]) -> u64 {
    text(row, names).trim().parse().unwrap_or(0)
}

/// A server of the failover, by target name, over an admin session.
pub struct Server {
    pub target: String,
    pub session: AdminSession,
}

impl Server {
    fn error(&self, e: &mysql_async::Error) -> Error {
        statement_error(&self.target, e)
    }

    /// Run statements that return nothing, in order.
    pub async fn run(&mut self, statements: &[&str]) -> Result<(), Error> {
        for statement in statements {
            let result = self.session.conn.query_drop(*statement).await;
            result.map_err(|e| self.error(&e))?;
        }
        Ok(())
    }

    /// One text value.
    pub async fn value(&mut self, statement: &str) -> Result<String, Error> {
        let result = self
            .session
            .conn
            .query_first::<Option<String>, _>(statement)
            .await;
        Ok(result
            .map_err(|e| self.error(&e))?
            .flatten()
            .unwrap_or_default())
    }

    /// Its replication state; `None` when it replicates from no one.
    pub async fn replica_status(&mut self) -> Result<Option<ReplicaStatus>, Error> {
        let statement = match self.session.engine {
            Engine::Mariadb => "SHOW SLAVE STATUS",
            Engine::Mysql => "SHOW REPLICA STATUS",
        };
        let result = self.session.conn.query_first::<Row, _>(statement).await;
        let Some(row) = result.map_err(|e| self.error(&e))? else {
            return Ok(None);
        };
        Ok(Some(ReplicaStatus {
            io_running: text(&row, &["Slave_IO_Running", "Replica_IO_Running"]),
            sql_running: text(&row, &["Slave_SQL_Running", "Replica_SQL_Running"]),
            last_io_errno: number(&row, &["Last_IO_Errno"]) as u32,
            last_io_error: text(&row, &["Last_IO_Error"]),
            last_sql_errno: number(&row, &["Last_SQL_Errno"]) as u32,
            last_sql_error: text(&row, &["Last_SQL_Error"]),
            read_file: text(&row, &["Master_Log_File", "Source_Log_File"]),
            read_pos: number(&row, &["Read_Master_Log_Pos", "Read_Source_Log_Pos"]),
            exec_file: text(&row, &["Relay_Master_Log_File", "Relay_Source_Log_File"]),
            exec_pos: number(&row, &["Exec_Master_Log_Pos", "Exec_Source_Log_Pos"]),
            using_gtid: text(&row, &["Using_Gtid"]),
            received: text(&row, &["Gtid_IO_Pos", "Retrieved_Gtid_Set"]),
            source_host: text(&row, &["Master_Host", "Source_Host"]),
            source_port: number(&row, &["Master_Port", "Source_Port"]),
        }))
    }

    /// A GTID position variable (`gtid_binlog_pos`, `gtid_slave_pos`).
    pub async fn position(&mut self, variable: &str) -> Result<Position, Error> {
        let text = self.value(&format!("SELECT @@GLOBAL.{variable}")).await?;
        Position::parse(&text)
            .map_err(|e| Error::Unreachable(format!("target `{}`: {variable}: {e}", self.target)))
    }

    /// What the errant check reads ([`ReplicaGtids`]), in one statement;
    /// `received` is the IO thread's `Gtid_IO_Pos`.
    pub async fn gtids(&mut self, received: &str) -> Result<ReplicaGtids, Error> {
        type Row = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let result = self
            .session
            .conn
            .query_first::<Row, _>(
                "SELECT @@GLOBAL.server_id, @@GLOBAL.gtid_binlog_pos, @@GLOBAL.gtid_binlog_state, \
                 @@GLOBAL.gtid_slave_pos, @@GLOBAL.gtid_strict_mode, @@GLOBAL.log_slave_updates, @@GLOBAL.log_bin",
            )
            .await;
        let row = result.map_err(|e| self.error(&e))?.unwrap_or_default();
        let bad = |what: &str, e: String| {
            Error::Unreachable(format!("target `{}`: {what}: {e}", self.target))
        };
        let text = |v: Option<String>| v.unwrap_or_default();
        let on = |v: &Option<String>| {
            v.as_deref()
                .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("on"))
        };
        let server_id = text(row.0.clone())
            .trim()
            .parse()
            .map_err(|_| bad("server_id", format!("{:?} is not a number", row.0)))?;
        Ok(ReplicaGtids {
            server_id,
            binlog: Position::parse(&text(row.1)).map_err(|e| bad("gtid_binlog_pos", e))?,
            binlog_state: parse_list(&text(row.2)).map_err(|e| bad("gtid_binlog_state", e))?,
            applied: Position::parse(&text(row.3)).map_err(|e| bad("gtid_slave_pos", e))?,
            received: Position::parse(received).map_err(|e| bad("Gtid_IO_Pos", e))?,
            strict_mode: on(&row.4),
            log_replica_updates: on(&row.5),
            log_bin: on(&row.6),
        })
    }

    /// Set `read_only` and kill every client session but this one (and
    /// the replication and system threads): what was connected to write
    /// cannot go on writing. `SET GLOBAL read_only = 1` waits for running
    /// writes and commits (and `LOCK TABLES`) up to `lock_wait_timeout`, a
    /// day by default: here [`READ_ONLY_LOCK_WAIT`] seconds, after which
    /// the client sessions are killed first (what held the lock rolls
    /// back) and it is set again. `Ok` only once `read_only` reads back
    /// on. The killed sessions' ids.
    pub async fn fence(&mut self) -> Result<Vec<u64>, Error> {
        let mut killed = Vec::new();
        if let Err(e) = self.set_read_only().await {
            if !waited_for_locks(&e) {
                return Err(e);
            }
            tracing::warn!(
                "target `{}`: read_only = 1 waited {READ_ONLY_LOCK_WAIT} s for locks ({e:?}); killing the client sessions first",
                self.target
            );
            killed = self.kill_clients().await?;
            self.set_read_only().await?;
        }
        killed.extend(self.kill_clients().await?);
        self.confirm_read_only().await?;
        Ok(killed)
    }

    /// `SET GLOBAL read_only = 1`, waiting at most [`READ_ONLY_LOCK_WAIT`]
    /// seconds for the locks it needs.
    pub async fn set_read_only(&mut self) -> Result<(), Error> {
        let bound = format!("SET SESSION lock_wait_timeout = {READ_ONLY_LOCK_WAIT}");
        self.run(&[bound.as_str()]).await?;
        let set = self.run(&["SET GLOBAL read_only = 1"]).await;
        let _ = self.run(&["SET SESSION lock_wait_timeout = DEFAULT"]).await;
        set
    }

    /// An error unless `@@GLOBAL.read_only` reads on.
    pub async fn confirm_read_only(&mut self) -> Result<(), Error> {
        let now = self.value("SELECT @@GLOBAL.read_only").await?;
        if matches!(now.trim(), "1" | "ON") {
            return Ok(());
        }
        Err(Error::Unreachable(format!(
            "target `{}`: read_only reads {now:?} after it was set on",
            self.target
        )))
    }

    /// Kill every client session but this one (and the replication and
    /// system threads): their ids.
    async fn kill_clients(&mut self) -> Result<Vec<u64>, Error> {
        let result = self
            .session
            .conn
            .query::<u64, _>(
                "SELECT id FROM information_schema.PROCESSLIST
                 WHERE id <> CONNECTION_ID()
                   AND command NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Slave_IO',
                                       'Slave_SQL', 'Slave_worker', 'Killed')
                   AND user NOT IN ('system user', 'event_scheduler', 'unauthenticated user')",
            )
            .await;
        let sessions = result.map_err(|e| self.error(&e))?;
        let mut killed = Vec::new();
        for id in sessions {
            // A session that ended meanwhile is gone either way (1094:
            // unknown thread id).
            match self.run(&[format!("KILL CONNECTION {id}").as_str()]).await {
                Ok(()) => killed.push(id),
                Err(Error::Query(q)) if q.number == Some(1094) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(killed)
    }

    /// Make it a replica of `source` by GTID (`MASTER_USE_GTID =
    /// slave_pos`) and start replicating.
    pub async fn follow(&mut self, source: &ReplicaLogin) -> Result<(), Error> {
        // The literals below escape backslashes: the session must read
        // them so.
        self.run(&[
            "STOP SLAVE",
            "SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')",
        ])
        .await?;
        let mut change = format!(
            "CHANGE MASTER TO MASTER_HOST = {}, MASTER_PORT = {}, MASTER_USER = {}, MASTER_USE_GTID = slave_pos",
            quote(&source.host),
            source.port,
            quote(&source.user)
        );
        if let Some(password) = &source.password {
            change.push_str(&format!(", MASTER_PASSWORD = {}", quote(password)));
        }
        self.run(&[change.as_str(), "START SLAVE"]).await
    }
}

/// How many seconds `SET GLOBAL read_only = 1` may wait for locks
/// (`lock_wait_timeout`) before the fence kills the sessions holding them.
pub const READ_ONLY_LOCK_WAIT: u32 = 1;

/// Whether a statement gave up waiting: a lock wait (1205,
/// ER_LOCK_WAIT_TIMEOUT) or the statement's time limit (MariaDB's 1969,
/// MySQL's 3024).
fn waited_for_locks(e: &Error) -> bool {
    matches!(e, Error::Query(q) if matches!(q.number, Some(1205 | 1969 | 3024)))
}

/// A MariaDB/MySQL string literal, backslash and quote escaped (for a
/// session without `NO_BACKSLASH_ESCAPES`).
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_and_unapplied_bytes_need_one_file() {
        assert_eq!(quote(r"it's a\b"), r"'it\'s a\\b'");
        let mut status = ReplicaStatus {
            read_file: "binlog.000002".into(),
            read_pos: 900,
            exec_file: "binlog.000002".into(),
            exec_pos: 400,
            ..ReplicaStatus::default()
        };
        assert_eq!(status.unapplied_bytes(), Some(500));
        status.exec_file = "binlog.000001".into();
        assert_eq!(status.unapplied_bytes(), None);
    }
}
