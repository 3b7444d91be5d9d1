//! SQL against the database targets a probe is granted (the `sql` import),
//! with typed accessors for rows and values, [`ident`] for putting
//! names from config into statements safely, and [`canary`] for timing a
//! statement as a client sees it.

pub mod canary;
pub mod ident;

use crate::{Error, Result, Status, config};

pub use crate::bindings::watchpost::probe::sql::{
    Error as SqlError, QueryError, Rows, Value, targets,
};

/// Run `statement` with `params` (`$1`, `$2`, ...) against `target`.
pub fn query(
    target: &str,
    statement: &str,
    params: &[Value],
) -> std::result::Result<Rows, SqlError> {
    crate::bindings::watchpost::probe::sql::query(target, statement, params)
}

/// Open a new session to `target` the way a new client would (not from the
/// pool), and close it: the time it took. A refusal here (`too many
/// connections`, bad password) is what pooled sessions would hide.
pub fn ping(target: &str) -> std::result::Result<std::time::Duration, SqlError> {
    crate::bindings::watchpost::probe::sql::ping(target).map(std::time::Duration::from_nanos)
}

/// The engine behind `target`: `postgresql`, `mariadb` or `mysql`.
pub fn engine(target: &str) -> std::result::Result<String, SqlError> {
    crate::bindings::watchpost::probe::sql::engine(target)
}

/// The server's error number behind this run's last failed call
/// (MariaDB/MySQL: 1062, 1146, ...; none for PostgreSQL).
pub fn error_number() -> Option<u32> {
    crate::bindings::watchpost::probe::sql::error_number()
}

/// True when the session's role on `target` sees every session's
/// statistics (other roles' queries, transactions, replication state):
/// a superuser or a member of `pg_read_all_stats` (which `pg_monitor`
/// includes). Without it PostgreSQL hides those columns as NULL rather
/// than failing, so a probe must ask before it trusts a NULL.
pub fn sees_all_stats(target: &str) -> Result<bool> {
    let rows = query(
        target,
        "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS sees, \
                current_user::text AS role_name",
        &[],
    )?;
    Ok(rows.first()?.bool("sees")?.unwrap_or(false))
}

/// The error for a part that cannot be checked because the role lacks
/// `pg_monitor`: `cannot see WHAT on TARGET: grant pg_monitor to ROLE`.
pub fn needs_pg_monitor(target: &str, what: &str) -> Error {
    let role = query(target, "SELECT current_user::text AS role_name", &[])
        .ok()
        .and_then(|rows| {
            rows.iter()
                .next()
                .and_then(|r| r.text("role_name").ok().flatten().map(String::from))
        })
        .unwrap_or_else(|| "the probe's role".to_string());
    Error::msg(format!(
        "cannot see {what} on `{target}`: grant pg_monitor to {role} \
         (GRANT pg_monitor TO {role})"
    ))
}

/// True when the probe is granted `target`.
pub fn is_granted(target: &str) -> bool {
    targets().iter().any(|t| t == target)
}

/// The target named by config key `key`, or `default` (`"primary"` is the
/// convention for probes that talk to one database).
pub fn target_from_config(key: &str, default: &str) -> Result<String> {
    config::get_or(key, default.to_string())
}

/// For probes that use a target only when they have it: the target named
/// by config key `key` when the config sets it (using it ungranted ends the
/// run as `denied`, as it should), else `default` if the probe is granted
/// a target of that name, else `None`.
pub fn optional_target(key: &str, default: &str) -> Result<Option<String>> {
    match config::get::<String>(key)? {
        Some(name) => Ok(Some(name)),
        None if is_granted(default) => Ok(Some(default.to_string())),
        None => Ok(None),
    }
}

impl SqlError {
    /// True when no server answered (connection refused, no route): "down".
    pub fn is_unreachable(&self) -> bool {
        matches!(self, SqlError::Unreachable(_))
    }

    /// True when a server answered but refused the session (auth, too many
    /// connections, starting up): "alive but unhealthy".
    pub fn is_refused(&self) -> bool {
        matches!(self, SqlError::Refused(_))
    }

    /// A one-line description, e.g. `unreachable: connection refused`.
    pub fn describe(&self) -> String {
        match self {
            SqlError::NotGranted(m) => format!("not granted: {m}"),
            SqlError::Unreachable(m) => format!("unreachable: {m}"),
            SqlError::Refused(m) => format!("refused: {m}"),
            SqlError::Timeout(m) => format!("timeout: {m}"),
            SqlError::Query(e) => format!("query error {}: {}", e.code, e.message),
        }
    }

    /// The error's kind as one word: `not-granted`, `unreachable`,
    /// `refused`, `timeout` or `query`.
    pub fn kind(&self) -> &'static str {
        match self {
            SqlError::NotGranted(_) => "not-granted",
            SqlError::Unreachable(_) => "unreachable",
            SqlError::Refused(_) => "refused",
            SqlError::Timeout(_) => "timeout",
            SqlError::Query(_) => "query",
        }
    }
}

impl SqlError {
    /// The status a failure decides by itself: `critical` when no server
    /// answered (in time), `warning` when one answered but refused the
    /// session; `None` for errors that say nothing about the server's health
    /// (a query error, a target not granted).
    pub fn status(&self) -> Option<Status> {
        match self {
            SqlError::Unreachable(_) | SqlError::Timeout(_) => Some(Status::Critical),
            SqlError::Refused(_) => Some(Status::Warning),
            SqlError::NotGranted(_) | SqlError::Query(_) => None,
        }
    }
}

/// With `?`, a connection failure decides the run's status (see
/// [`SqlError::status`]); any other failure ends it as `unknown`.
impl From<SqlError> for Error {
    fn from(error: SqlError) -> Self {
        match error.status() {
            Some(status) => Error::with_status(status, error.describe()),
            None => Error::msg(error.describe()),
        }
    }
}

impl Value {
    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as an integer: ints, and text that parses as one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            Value::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a float: floats, ints, and text that parses as a number
    /// (numeric columns arrive as text).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            Value::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The value as a boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

/// One row of a result, with typed access by column name.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, with access by column name.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }

    /// The first row; an error if there is none.
    pub fn first(&self) -> Result<Row<'_>> {
        self.iter()
            .next()
            .ok_or_else(|| Error::msg("the query returned no rows"))
    }
}

impl<'a> Row<'a> {
    /// The value in column `name`; an error naming the column if absent.
    pub fn get(&self, name: &str) -> Result<&'a Value> {
        self.columns
            .iter()
            .position(|c| c == name)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| Error::msg(format!("the result has no column `{name}`")))
    }

    fn typed<T>(
        &self,
        name: &str,
        what: &str,
        f: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<T>> {
        let value = self.get(name)?;
        if value.is_null() {
            return Ok(None);
        }
        f(value)
            .map(Some)
            .ok_or_else(|| Error::msg(format!("column `{name}` is {value:?}, expected {what}")))
    }

    /// Column `name` as an integer (`None` for NULL).
    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        self.typed(name, "an integer", Value::as_i64)
    }

    /// Column `name` as a float (`None` for NULL); ints and numeric text convert.
    pub fn float(&self, name: &str) -> Result<Option<f64>> {
        self.typed(name, "a number", Value::as_f64)
    }

    /// Column `name` as text (`None` for NULL).
    pub fn text(&self, name: &str) -> Result<Option<&'a str>> {
        self.typed(name, "text", Value::as_str)
    }

    /// Column `name` as a boolean (`None` for NULL).
    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        self.typed(name, "a boolean", Value::as_bool)
    }
}
