//! Reading a statement's result stream into [`Rows`](super::Rows), within the
//! limits of what a probe may receive.

use super::errors;
use super::types::{Error, QueryError, Rows, Value};
use super::values::Cell;
use futures_util::{StreamExt, pin_mut};

/// Rows a statement may return to a probe.
pub const MAX_ROWS: usize = 100_000;
/// Bytes of cell data a statement may return to a probe.
pub const MAX_RESULT_BYTES: usize = 32 << 20;

/// Every row of `stream`, decoded; an error past the size limits.
pub async fn collect(
    target: &str,
    columns: Vec<String>,
    stream: tokio_postgres::RowStream,
) -> Result<Rows, Error> {
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    pin_mut!(stream);
    while let Some(row) = stream.next().await {
        let row = row.map_err(|e| errors::query_error(target, &e))?;
        if rows.len() == MAX_ROWS || bytes > MAX_RESULT_BYTES {
            return Err(too_large(rows.len(), bytes));
        }
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let Cell(value) = row.try_get::<_, Cell>(i).map_err(|e| {
                Error::Query(QueryError {
                    code: errors::DATA_EXCEPTION.to_string(),
                    message: format!(
                        "column `{}`: {}",
                        row.columns()[i].name(),
                        errors::source_message(&e)
                    ),
                })
            })?;
            bytes += value_size(&value);
            values.push(value);
        }
        rows.push(values);
    }
    let affected = stream.rows_affected().unwrap_or(0);
    Ok(Rows {
        columns,
        rows,
        affected,
    })
}

fn too_large(rows: usize, bytes: usize) -> Error {
    Error::Query(QueryError {
        code: errors::PROGRAM_LIMIT_EXCEEDED.to_string(),
        message: format!(
            "the result is too large for a probe (over {rows} rows or {bytes} bytes; the limits \
             are {MAX_ROWS} rows and {MAX_RESULT_BYTES} bytes): add a LIMIT or aggregate in SQL"
        ),
    })
}

fn value_size(value: &Value) -> usize {
    match value {
        Value::Text(s) => s.len(),
        Value::Bytes(b) => b.len(),
        _ => 8,
    }
}
