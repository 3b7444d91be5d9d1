//! Reading a statement's result stream into [`Rows`](super::Rows), within the
//! limits of what a probe may receive.

use super::errors;
use super::types::{Error, MAX_RESULT_BYTES, MAX_ROWS, QueryError, Rows, Value};
use super::values::Cell;
use futures_util::{StreamExt, pin_mut};

/// Every row of `stream`, decoded, within `budget` bytes of host memory
/// (at most [`MAX_RESULT_BYTES`]): each value counts its real size
/// ([`value_size`]), the row that goes over included, and the stream stops
/// at once. Past [`MAX_ROWS`] or [`MAX_RESULT_BYTES`]: a query error
/// (`54000`); past a smaller `budget` (what is left of the probe's memory
/// cap): [`Error::TooLarge`]. Either way the caller must close the session:
/// the server may still be sending.
pub async fn collect(
    target: &str,
    columns: Vec<String>,
    stream: tokio_postgres::RowStream,
    budget: usize,
) -> Result<Rows, Error> {
    let limit = budget.min(MAX_RESULT_BYTES);
    let mut bytes: usize = columns.iter().map(|c| CELL + c.len()).sum();
    let mut rows = Vec::new();
    let mut largest_row = 0;
    pin_mut!(stream);
    while let Some(row) = stream.next().await {
        let row = row.map_err(|e| errors::query_error(target, &e))?;
        if rows.len() == MAX_ROWS {
            return Err(too_large(rows.len() + 1, bytes));
        }
        // The row's raw size first: it is not decoded (copied) unless it
        // fits; then each value's decoded size (text may be longer).
        let estimate = ROW + row.len() * CELL + row.raw_size_bytes();
        if bytes + estimate > limit {
            return Err(over(limit, budget, rows.len() + 1, bytes + estimate));
        }
        let row_start = bytes;
        bytes += ROW;
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
                    number: None,
                })
            })?;
            bytes += value_size(&value);
            if bytes > limit {
                return Err(over(limit, budget, rows.len() + 1, bytes));
            }
            values.push(value);
        }
        rows.push(values);
        largest_row = largest_row.max(bytes - row_start);
    }
    let affected = stream.rows_affected().unwrap_or(0);
    Ok(Rows {
        columns,
        rows,
        affected,
        largest_row,
    })
}

/// Host bytes of one value in a row, besides its text or bytes.
pub(super) const CELL: usize = std::mem::size_of::<Value>();
/// Host bytes of one row, besides its values.
pub(super) const ROW: usize = std::mem::size_of::<Vec<Value>>();

/// The error for a result that went past `limit` at `bytes`.
pub(super) fn over(limit: usize, budget: usize, rows: usize, bytes: usize) -> Error {
    if budget < MAX_RESULT_BYTES {
        Error::TooLarge {
            asked: bytes as u64,
            message: format!(
                "the result took over {bytes} bytes by row {rows}, more than the {limit} bytes \
                 left of the probe's memory cap: add a LIMIT or aggregate in SQL, or raise the \
                 probe's `memory`"
            ),
        }
    } else {
        too_large(rows, bytes)
    }
}

pub(super) fn too_large(rows: usize, bytes: usize) -> Error {
    Error::Query(QueryError {
        code: errors::PROGRAM_LIMIT_EXCEEDED.to_string(),
        message: format!(
            "the result is too large for a probe (over {rows} rows or {bytes} bytes; the limits \
             are {MAX_ROWS} rows and {MAX_RESULT_BYTES} bytes): add a LIMIT or aggregate in SQL"
        ),
        number: None,
    })
}

/// Host bytes a decoded value takes: its own size plus what it points to.
pub fn value_size(value: &Value) -> usize {
    CELL + match value {
        Value::Text(s) => s.len(),
        Value::Bytes(b) => b.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_null_values_cost_their_cell() {
        assert_eq!(value_size(&Value::Null), CELL);
        assert_eq!(value_size(&Value::Text(String::new())), CELL);
        assert_eq!(value_size(&Value::Text("abc".into())), CELL + 3);
        const { assert!(CELL >= 24) };
    }

    #[test]
    fn going_past_the_probes_cap_is_too_large_and_past_the_agents_limit_a_query_error() {
        assert!(matches!(
            over(1000, 1000, 3, 1001),
            Error::TooLarge { asked: 1001, .. }
        ));
        match over(MAX_RESULT_BYTES, usize::MAX, 3, MAX_RESULT_BYTES + 1) {
            Error::Query(q) => assert_eq!(q.code, "54000"),
            other => panic!("{other:?}"),
        }
    }
}
