//! The slowest statements by mean execution time, from
//! `pg_stat_statements` when the extension is installed and loaded.

use watchpost_probe::Result;
use watchpost_probe::sql::ident::quote;
use watchpost_probe::sql::{self, SqlError, Value};

/// Characters of a statement's text kept as its label.
const TEXT_CHARS: i64 = 80;

pub struct Statement {
    pub queryid: String,
    /// The normalized text, white space squeezed, cut to 80 characters.
    pub text: String,
    pub calls: i64,
    pub mean_seconds: f64,
}

/// The statements, or why they cannot be read.
pub enum Slowest {
    Found(Vec<Statement>),
    Unavailable(String),
}

/// The `limit` statements with the highest mean execution time.
pub fn slowest(target: &str, limit: i64) -> Result<Slowest> {
    let installed = sql::query(
        target,
        "SELECT n.nspname AS schema_name FROM pg_extension e \
         JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
        &[],
    )?;
    let Some(schema) = installed.iter().next() else {
        return Ok(Slowest::Unavailable(
            "pg_stat_statements is not installed".into(),
        ));
    };
    let schema = quote(schema.text("schema_name")?.unwrap_or("public"));
    let statement = format!(
        "SELECT queryid::text AS queryid, \
                left(regexp_replace(query, '\\s+', ' ', 'g'), {TEXT_CHARS}) AS text, \
                calls, mean_exec_time / 1000.0 AS mean_seconds \
         FROM {schema}.pg_stat_statements WHERE calls > 0 \
         ORDER BY mean_exec_time DESC LIMIT $1"
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
    Ok(Slowest::Found(found))
}
