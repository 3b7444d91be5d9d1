//! The slowest statements by mean execution time, from
//! `pg_stat_statements` when the extension is installed and loaded.
//!
//! Versions before 1.8 (common after `pg_upgrade`) call the column
//! `mean_time`, not `mean_exec_time`: the probe reads whichever exists and
//! says so.

use watchpost_probe::sql::ident::quote;
use watchpost_probe::sql::{self, SqlError, Value};
use watchpost_probe::{Result, bail};

/// Characters of a statement's text kept as its label.
const TEXT_CHARS: i64 = 80;

pub struct Statement {
    pub queryid: String,
    /// The normalized text, white space squeezed, cut to 80 characters.
    pub text: String,
    pub calls: i64,
    pub mean_seconds: f64,
}

/// The statements, or why they cannot be read, with notes on how they
/// were read (an older column, statements of other roles hidden).
pub enum Slowest {
    Found(Vec<Statement>, Vec<String>),
    Unavailable(String),
}

/// The `limit` statements with the highest mean execution time.
pub fn slowest(target: &str, limit: i64) -> Result<Slowest> {
    let installed = sql::query(
        target,
        "SELECT n.nspname AS schema_name, e.extversion AS version FROM pg_extension e \
         JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
        &[],
    )?;
    let Some(found) = installed.iter().next() else {
        return Ok(Slowest::Unavailable(
            "pg_stat_statements is not installed".into(),
        ));
    };
    let version = found.text("version")?.unwrap_or("?").to_string();
    let schema = quote(found.text("schema_name")?.unwrap_or("public"));
    let columns = sql::query(
        target,
        &format!(
            "SELECT attname::text AS name FROM pg_attribute \
             WHERE attrelid = '{schema}.pg_stat_statements'::regclass \
               AND attname IN ('mean_exec_time', 'mean_time') AND NOT attisdropped"
        ),
        &[],
    )?;
    let has = |name: &str| {
        columns
            .iter()
            .any(|r| r.text("name").ok().flatten() == Some(name))
    };
    let mut notes = Vec::new();
    let mean = if has("mean_exec_time") {
        "mean_exec_time"
    } else if has("mean_time") {
        notes.push(format!(
            "pg_stat_statements {version} has no column `mean_exec_time` (1.8+): read `mean_time` \
             (ALTER EXTENSION pg_stat_statements UPDATE brings the new columns)"
        ));
        "mean_time"
    } else {
        bail!(
            "pg_stat_statements {version} has neither `mean_exec_time` nor `mean_time`: \
             update the extension (ALTER EXTENSION pg_stat_statements UPDATE)"
        );
    };
    if !sql::sees_all_stats(target)? {
        notes
            .push("statements of other roles are hidden: grant pg_monitor to see them".to_string());
    }
    let statement = format!(
        "SELECT queryid::text AS queryid, \
                left(regexp_replace(query, '\\s+', ' ', 'g'), {TEXT_CHARS}) AS text, \
                calls, {mean} / 1000.0 AS mean_seconds \
         FROM {schema}.pg_stat_statements WHERE calls > 0 AND queryid IS NOT NULL \
         ORDER BY {mean} DESC LIMIT $1"
    );
    let rows = match sql::query(target, &statement, &[Value::Int(limit)]) {
        Ok(rows) => rows,
        // Installed but not in shared_preload_libraries.
        Err(SqlError::Query(error)) if error.code == "55000" => {
            return Ok(Slowest::Unavailable(error.message));
        }
        Err(other) => return Err(other.into()),
    };
    let mut found = Vec::new();
    for row in rows.iter() {
        found.push(Statement {
            queryid: row.text("queryid")?.unwrap_or_default().to_string(),
            text: row.text("text")?.unwrap_or_default().to_string(),
            calls: row.int("calls")?.unwrap_or(0),
            mean_seconds: row.float("mean_seconds")?.unwrap_or(0.0),
        });
    }
    Ok(Slowest::Found(found, notes))
}
