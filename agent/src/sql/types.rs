//! The values, results and errors of database calls, as plain Rust types.
//!
//! They mirror the `sql` interface of the probe world (`wit/sql.wit`), but
//! belong to this module so that `sql` does not depend on the runtime: the
//! runtime converts them to and from its WIT bindings at its boundary
//! (`runtime/imports/sql.rs`), and the agent's own actions use them as is.

use std::fmt;

/// Rows a statement may return to a probe.
pub const MAX_ROWS: usize = 100_000;
/// Bytes of cell data a statement may return to a probe (the reader of
/// results and the guard under the sessions both bound by it).
pub const MAX_RESULT_BYTES: usize = 32 << 20;

/// A value passed to or read from the database (the WIT's `value`).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

/// A statement's result (the WIT's `rows`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// One list of values per row, in column order.
    pub rows: Vec<Vec<Value>>,
    /// Rows inserted, updated or deleted (0 for queries).
    pub affected: u64,
    /// Host bytes of the largest row, its values included
    /// ([`super::rows::value_size`]).
    pub largest_row: usize,
}

/// An error reported by the database itself (the WIT's `query-error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    /// The five-character SQLSTATE, e.g. `42P01` (undefined table).
    pub code: String,
    pub message: String,
    /// The server's own error number where the engine has them (MySQL and
    /// MariaDB: 1062 duplicate key, 1146 no such table, ...); None for
    /// PostgreSQL and for errors of the agent's side. Probes read it with
    /// the WIT's `error-number` (the `query-error` record stays as it was).
    pub number: Option<u32>,
}

/// Why a statement did not run or did not finish (the WIT's `error`).
#[derive(Clone, PartialEq, Eq)]
pub enum Error {
    /// The caller is not granted the target (or no such target exists).
    NotGranted(String),
    /// No server answered: the database is down as far as we can tell.
    Unreachable(String),
    /// A server answered but would not serve this session.
    Refused(String),
    /// The statement or the connection ran out of time.
    Timeout(String),
    /// The server ran the statement and reported an error.
    Query(QueryError),
    /// The agent itself could not do it: out of file descriptors (EMFILE,
    /// ENFILE) or memory (ENOMEM). Says nothing about the database, so it
    /// is never reported as `Unreachable`; a run that meets it ends
    /// `unknown`.
    Agent(String),
    /// The result is larger than the probe may receive (its memory cap or
    /// the agent's result limit): the statement was stopped and its
    /// session closed. `asked` is the size reached, in bytes of host
    /// memory, when it was stopped.
    TooLarge { asked: u64, message: String },
}

/// `Error::Unreachable("...")`, as the WIT bindings print it (messages
/// such as the failover's steps show errors this way).
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotGranted(e) => f.debug_tuple("Error::NotGranted").field(e).finish(),
            Error::Unreachable(e) => f.debug_tuple("Error::Unreachable").field(e).finish(),
            Error::Refused(e) => f.debug_tuple("Error::Refused").field(e).finish(),
            Error::Timeout(e) => f.debug_tuple("Error::Timeout").field(e).finish(),
            Error::Query(e) => f.debug_tuple("Error::Query").field(e).finish(),
            Error::Agent(e) => f.debug_tuple("Error::Agent").field(e).finish(),
            Error::TooLarge { message, .. } => {
                f.debug_tuple("Error::TooLarge").field(message).finish()
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotGranted(m) => write!(f, "not granted: {m}"),
            Error::Unreachable(m) => write!(f, "unreachable: {m}"),
            Error::Refused(m) => write!(f, "refused: {m}"),
            Error::Timeout(m) => write!(f, "timeout: {m}"),
            Error::Query(q) => write!(f, "query failed: {} ({})", q.message, q.code),
            Error::Agent(m) => write!(f, "agent error: {m}"),
            Error::TooLarge { message, .. } => write!(f, "result too large: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The server's error number behind this error (see
    /// [`QueryError::number`]), when there is one.
    pub fn number(&self) -> Option<u32> {
        match self {
            Error::Query(q) => q.number,
            _ => None,
        }
    }
}

/// Which engine a target's sessions talk to, and so which driver opens
/// them: the config's `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    /// PostgreSQL (`tokio-postgres`), the default.
    #[default]
    Postgres,
    /// MariaDB or MySQL (`mysql_async`), told apart by the server.
    Mysql,
}

impl Kind {
    /// The kind a connection string is written for: `mysql://` and
    /// `mariadb://` URLs are [`Kind::Mysql`], everything else PostgreSQL.
    pub fn of_dsn(dsn: &str) -> Kind {
        let scheme = dsn.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("mysql" | "mariadb") => Kind::Mysql,
            _ => Kind::Postgres,
        }
    }
}
