//! The split-brain writer's MariaDB session: a kept `mysql_async`
//! connection on a runtime of its own (the writer threads are plain
//! threads), every statement bounded so that a frozen or killed server
//! never holds a writer up.

use super::Session;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// The table every write goes to (create it on the primary first).
pub const TABLE: &str = "CREATE TABLE IF NOT EXISTS app.sb_writes (seq BIGINT PRIMARY KEY, via VARCHAR(64) NOT NULL, server_port INT)";

/// How long a connect or a write may take.
const BOUND: Duration = Duration::from_secs(1);

pub struct MysqlSession {
    runtime: tokio::runtime::Runtime,
    conn: Option<mysql_async::Conn>,
}

impl MysqlSession {
    /// A session as `user` (no password) to the server on loopback `port`.
    pub fn connect(user: &str, port: u16) -> Option<MysqlSession> {
        MysqlSession::connect_at("127.0.0.1", user, port)
    }

    /// [`MysqlSession::connect`] to a server at `host`.
    pub fn connect_at(host: &str, user: &str, port: u16) -> Option<MysqlSession> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(user))
            .db_name(Some("app"));
        let conn = runtime
            .block_on(async { tokio::time::timeout(BOUND, mysql_async::Conn::new(opts)).await })
            .ok()?
            .ok()?;
        Some(MysqlSession {
            runtime,
            conn: Some(conn),
        })
    }
}

impl Session for MysqlSession {
    fn insert(&mut self, n: i64, label: &str) -> Result<u16, String> {
        let conn = self.conn.as_mut().ok_or("no session")?;
        let sql = format!(
            "INSERT INTO app.sb_writes (seq, via, server_port) VALUES ({n}, '{label}', @@port) RETURNING server_port"
        );
        let answer = self
            .runtime
            .block_on(async { tokio::time::timeout(BOUND, conn.query_first::<u16, _>(sql)).await });
        match answer {
            Ok(Ok(port)) => Ok(port.unwrap_or(0)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => {
                // A half-done exchange: this connection is unusable.
                self.conn = None;
                Err("no answer within 1 s".into())
            }
        }
    }
}

impl Drop for MysqlSession {
    fn drop(&mut self) {
        // Dropped inside its runtime (mysql_async hands its disconnect to
        // the current runtime), which goes right after.
        let _inside = self.runtime.enter();
        drop(self.conn.take());
    }
}
