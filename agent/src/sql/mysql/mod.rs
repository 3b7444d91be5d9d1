//! MariaDB and MySQL targets (`kind = "mysql"`): the driver behind the
//! `sql` capability that keeps the PostgreSQL driver's promises
//! ([`super::target`]) with `mysql_async`.
//!
//! Every probe statement runs on a pooled session in a transaction of its
//! own: one round trip sets the session's bounds and opens it
//! (`SET SESSION max_statement_time` on MariaDB or `max_execution_time` on
//! MySQL, no longer than what is left of the run; `innodb_lock_wait_timeout`
//! and `lock_wait_timeout` of at most [`LOCK_TIMEOUT`]; on a read-only
//! target `SET SESSION TRANSACTION READ ONLY` and `START TRANSACTION READ
//! ONLY`), then the statement runs as a prepared statement (one statement,
//! never a batch), then `COMMIT` and `COM_RESET_CONNECTION`, which drops
//! what a statement may leave in the session: user variables, session
//! settings, temporary tables, prepared statements and `GET_LOCK` locks.
//! A session goes back to the pool only when both answered; otherwise, and
//! when the run's deadline passes first, it is closed. A result is read
//! row by row within the probe's memory cap ([`convert::Collector`]).
//!
//! A new session reads the server's version (`MariaDB` in it: the engine
//! is MariaDB, else MySQL) and its account's grants ([`privileges`]): an
//! account that may do more than monitor is logged once per target, or
//! refused with `strict_privileges`.
//!
//! A read-only target runs only statements that cannot commit or run
//! other statements ([`statement`]: `SELECT`, `SHOW`, ...), as a
//! compound statement could end the read-only transaction and write.
//! Statements take `?` placeholders (MySQL's), not `$1`.

pub mod admin;
pub mod convert;
pub mod dsn;
mod errors;
pub mod privileges;
pub mod statement;

use super::TargetSpec;
use super::types::{Error, Rows, Value};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Params};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Sessions open at once per target (busy and idle).
const POOL_SIZE: usize = 4;
/// Upper bound on connecting, whatever the run's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a probe statement waits for a row or metadata lock (whole
/// seconds: the servers take no less).
const LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a statement's `COMMIT` and session reset.
const END_TIMEOUT: Duration = Duration::from_secs(2);
/// A session whose result held a row this large is closed, not pooled.
const POOLED_ROW_MAX: usize = 1 << 20;
/// MySQL's error number for a statement that cannot be prepared
/// (ER_UNSUPPORTED_PS): run it over the text protocol instead.
const UNSUPPORTED_PS: u32 = 1295;

/// SQLSTATE of a statement refused on a read-only target (MySQL's for a
/// write in a read-only transaction).
const READ_ONLY_SQLSTATE: &str = "25006";

/// Which server a session talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Mariadb,
    Mysql,
}

impl Engine {
    /// `mariadb` or `mysql`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Mariadb => "mariadb",
            Engine::Mysql => "mysql",
        }
    }

    /// The engine of a server whose `@@version` is `version`
    /// (`10.11.19-MariaDB-0+deb12u1`; MariaDB's handshake says the same).
    pub fn of_version(version: &str) -> Engine {
        if version.to_ascii_lowercase().contains("mariadb") {
            Engine::Mariadb
        } else {
            Engine::Mysql
        }
    }
}

/// One open session and what it was found to be.
struct Session {
    conn: Conn,
    engine: Engine,
    /// It ran a statement before (a dead pooled session is retried).
    reused: bool,
    _permit: OwnedSemaphorePermit,
}

pub struct MysqlTarget {
    name: String,
    pub spec: TargetSpec,
    opts: Opts,
    idle: Mutex<Vec<(Conn, Engine)>>,
    permits: Arc<Semaphore>,
    /// The engine the last new session found.
    engine: Mutex<Option<Engine>>,
    warned: AtomicBool,
}

impl MysqlTarget {
    /// A target for `spec`; no session is opened yet. Errors name the
    /// target and what is wrong with its DSN.
    pub fn new(name: &str, spec: &TargetSpec) -> Result<Self, String> {
        let dsn = dsn::parse(&spec.dsn, spec.password.as_deref())
            .map_err(|e| format!("target `{name}`: invalid dsn: {e}"))?;
        Ok(MysqlTarget {
            name: name.to_string(),
            spec: spec.clone(),
            opts: dsn.opts,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(POOL_SIZE)),
            engine: Mutex::new(None),
            warned: AtomicBool::new(false),
        })
    }

    fn remaining(&self, deadline: Instant) -> Result<Duration, Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(Error::Timeout(format!(
                "target `{}`: the run's deadline has passed",
                self.name
            )));
        }
        Ok(left)
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::Timeout(format!(
            "target `{}`: {what} did not finish before the run's deadline",
            self.name
        ))
    }

    /// A new session: connected, its engine read, its grants checked.
    async fn open(&self) -> Result<(Conn, Engine), Error> {
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(self.opts.clone()));
        let mut conn = connect
            .await
            .map_err(|_| Error::Timeout(format!("target `{}`: connecting timed out", self.name)))?
            .map_err(|e| errors::session_error(&self.name, &e, &self.opts))?;
        let (version, user): (String, String) = conn
            .query_first("SELECT @@version, CURRENT_USER()")
            .await
            .map_err(|e| errors::query_error(&self.name, &e))?
            .unwrap_or_default();
        let engine = Engine::of_version(&version);
        *self.engine.lock() = Some(engine);
        let grants: Vec<String> = conn
            .query("SHOW GRANTS")
            .await
            .map_err(|e| errors::query_error(&self.name, &e))?;
        let dangers = privileges::dangers(&grants);
        if !dangers.is_empty() {
            let strict = self.spec.strict_privileges;
            let message = privileges::describe(&self.name, &user, &dangers, strict);
            if strict {
                let _ = conn.disconnect().await;
                return Err(Error::Refused(message));
            }
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!("{message}");
            }
        }
        Ok((conn, engine))
    }

    /// A session from the pool, or a new one.
    async fn checkout(&self, deadline: Instant) -> Result<Session, Error> {
        let work =
            async {
                let permit =
                    self.permits.clone().acquire_owned().await.map_err(|_| {
                        Error::Unreachable(format!("target `{}`: closed", self.name))
                    })?;
                if let Some((conn, engine)) = self.idle.lock().pop() {
                    return Ok(Session {
                        conn,
                        engine,
                        reused: true,
                        _permit: permit,
                    });
                }
                let (conn, engine) = self.open().await?;
                Ok(Session {
                    conn,
                    engine,
                    reused: false,
                    _permit: permit,
                })
            };
        tokio::time::timeout(self.remaining(deadline)?, work)
            .await
            .map_err(|_| self.timed_out("connecting"))?
    }

    /// Run one statement on a pooled session before `deadline`, holding
    /// at most `budget` bytes of result.
    pub async fn query(
        &self,
        statement: &str,
        params: &[Value],
        deadline: Instant,
        budget: usize,
    ) -> Result<Rows, Error> {
        if self.spec.read_only
            && let Err(why) = statement::check_read_only(statement)
        {
            return Err(Error::Query(super::types::QueryError {
                code: READ_ONLY_SQLSTATE.to_string(),
                message: format!("target `{}`: {why}", self.name),
                number: None,
            }));
        }
        let mut retried = false;
        loop {
            let mut session = self.checkout(deadline).await?;
            let attempt = self.run(&mut session, statement, params, deadline, budget);
            // Past the deadline the session is dropped mid-statement:
            // closed, never pooled.
            let (outcome, ended) = tokio::time::timeout(self.remaining(deadline)?, attempt)
                .await
                .map_err(|_| self.timed_out("the statement"))?;
            let dead_reused = session.reused && matches!(outcome, Err(Error::Unreachable(_)));
            if ended {
                self.idle.lock().push((session.conn, session.engine));
            }
            match outcome {
                Err(_) if dead_reused && self.spec.read_only && !retried => retried = true,
                outcome => return outcome,
            }
        }
    }

    /// The statement in a transaction of its own (see the module docs):
    /// the outcome, and whether the session ended clean, fit for the pool.
    async fn run(
        &self,
        session: &mut Session,
        statement: &str,
        params: &[Value],
        deadline: Instant,
        budget: usize,
    ) -> (Result<Rows, Error>, bool) {
        let left = match self.remaining(deadline) {
            Ok(left) => left,
            Err(e) => return (Err(e), true),
        };
        let lock_seconds = left.min(LOCK_TIMEOUT).as_secs().max(1);
        let bound = match session.engine {
            Engine::Mariadb => format!("max_statement_time = {:.3}", left.as_secs_f64()),
            Engine::Mysql => format!("max_execution_time = {}", left.as_millis().max(1)),
        };
        let begin = if self.spec.read_only {
            format!(
                "SET SESSION {bound}, innodb_lock_wait_timeout = {lock_seconds}, \
                 lock_wait_timeout = {lock_seconds}; SET SESSION TRANSACTION READ ONLY; \
                 START TRANSACTION READ ONLY"
            )
        } else {
            format!(
                "SET SESSION {bound}, innodb_lock_wait_timeout = {lock_seconds}, \
                 lock_wait_timeout = {lock_seconds}; START TRANSACTION READ WRITE"
            )
        };
        let conn = &mut session.conn;
        if let Err(e) = conn.query_drop(begin).await {
            return (Err(errors::query_error(&self.name, &e)), false);
        }
        let rows = self.statement(conn, statement, params, budget).await;
        let cut_short = matches!(&rows, Err(Error::TooLarge { .. }))
            || matches!(&rows, Err(Error::Query(q)) if q.code == super::errors::PROGRAM_LIMIT_EXCEEDED);
        if cut_short {
            return (rows, false);
        }
        let end = async {
            conn.query_drop("COMMIT").await?;
            conn.reset().await
        };
        let ended = matches!(tokio::time::timeout(END_TIMEOUT, end).await, Ok(Ok(true)));
        let large = rows
            .as_ref()
            .is_ok_and(|rows| rows.largest_row > POOLED_ROW_MAX);
        (rows, ended && !large)
    }

    /// Run the probe's statement: prepared (binary protocol), or as text
    /// when the server cannot prepare it and it has no parameters.
    async fn statement(
        &self,
        conn: &mut Conn,
        statement: &str,
        params: &[Value],
        budget: usize,
    ) -> Result<Rows, Error> {
        let bound: Vec<mysql_async::Value> = params.iter().map(convert::param).collect();
        let params = if bound.is_empty() {
            Params::Empty
        } else {
            Params::Positional(bound)
        };
        let prepared = match conn.prep(statement).await {
            Ok(prepared) => Some(prepared),
            Err(e) => {
                let error = errors::query_error(&self.name, &e);
                if error.number() != Some(UNSUPPORTED_PS) || !matches!(params, Params::Empty) {
                    return Err(error);
                }
                None
            }
        };
        let collector = convert::Collector::new(budget);
        let fail = |e: mysql_async::Error| errors::query_error(&self.name, &e);
        match prepared {
            Some(prepared) => {
                let result = conn.exec_iter(&prepared, params).await.map_err(fail)?;
                collect(result, collector, fail).await
            }
            None => {
                let result = conn.query_iter(statement).await.map_err(fail)?;
                collect(result, collector, fail).await
            }
        }
    }

    /// Open, test (`COM_PING`) and close a new session, not from the
    /// pool; the time it took to be ready for statements.
    pub async fn ping(&self, deadline: Instant) -> Result<Duration, Error> {
        let started = Instant::now();
        let work = async {
            let mut conn = Conn::new(self.opts.clone())
                .await
                .map_err(|e| errors::session_error(&self.name, &e, &self.opts))?;
            conn.ping()
                .await
                .map_err(|e| errors::query_error(&self.name, &e))?;
            let took = started.elapsed();
            let _ = conn.disconnect().await;
            Ok(took)
        };
        tokio::time::timeout(self.remaining(deadline)?, work)
            .await
            .map_err(|_| self.timed_out("connecting"))?
    }

    /// The engine of the server (a session is opened to find out when
    /// none was yet).
    pub async fn engine(&self, deadline: Instant) -> Result<Engine, Error> {
        if let Some(engine) = *self.engine.lock() {
            return Ok(engine);
        }
        let session = self.checkout(deadline).await?;
        let engine = session.engine;
        self.idle.lock().push((session.conn, session.engine));
        Ok(engine)
    }

    /// Open a session as probes would and check its account's grants.
    pub async fn privileges(&self) -> Result<Vec<String>, Error> {
        let mut conn = Conn::new(self.opts.clone())
            .await
            .map_err(|e| errors::session_error(&self.name, &e, &self.opts))?;
        let grants: Vec<String> = conn
            .query("SHOW GRANTS")
            .await
            .map_err(|e| errors::query_error(&self.name, &e))?;
        let user: Option<String> = conn
            .query_first("SELECT CURRENT_USER()")
            .await
            .map_err(|e| errors::query_error(&self.name, &e))?;
        let _ = conn.disconnect().await;
        let dangers = privileges::dangers(&grants);
        if dangers.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![privileges::describe(
            &self.name,
            &user.unwrap_or_default(),
            &dangers,
            self.spec.strict_privileges,
        )])
    }
}

/// Every row of `result` into `collector` (counted against its budget),
/// then the affected-row count; the same for prepared (binary) and plain
/// (text) statements.
async fn collect<P: mysql_async::prelude::Protocol>(
    mut result: mysql_async::QueryResult<'_, '_, P>,
    mut collector: convert::Collector,
    fail: impl Fn(mysql_async::Error) -> Error,
) -> Result<Rows, Error> {
    collector.columns(result.columns_ref())?;
    while let Some(row) = result.next().await.map_err(&fail)? {
        let columns = row.columns();
        collector.push(&columns, row.unwrap_raw())?;
    }
    let affected = result.affected_rows();
    result.drop_result().await.map_err(&fail)?;
    Ok(collector.finish(affected))
}
