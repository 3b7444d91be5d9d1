//! Values between probes and MariaDB/MySQL: parameters bound to a
//! prepared statement, and a result read into [`Rows`] within the same
//! limits as PostgreSQL's ([`crate::sql::rows`]: the probe's memory cap,
//! [`MAX_ROWS`], [`MAX_RESULT_BYTES`]).
//!
//! Reading: integer types arrive as `int` (an unsigned value past
//! `i64::MAX` as its decimal text), `FLOAT`/`DOUBLE` as `float`, binary
//! strings, blobs and `BIT` as `bytes`, `NULL` as `null`, and everything
//! else (`DECIMAL`, dates, times, `JSON`, text) as text in MySQL's own
//! format (`2026-12-06 09:10:11.000001`, `-838:59:59`).

use super::super::rows::{CELL, ROW, over, too_large, value_size};
use super::super::types::{Error, Rows, Value};
use super::super::{MAX_RESULT_BYTES, MAX_ROWS};
use mysql_async::consts::ColumnType;
use mysql_async::{Column, Value as My};

/// The character set number of binary strings.
const BINARY_CHARSET: u16 = 63;

/// A probe's parameter as MySQL's.
pub fn param(value: &Value) -> My {
    match value {
        Value::Null => My::NULL,
        Value::Boolean(b) => My::Int(i64::from(*b)),
        Value::Int(i) => My::Int(*i),
        Value::Float(f) => My::Double(*f),
        Value::Text(s) => My::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => My::Bytes(b.clone()),
    }
}

fn is_binary(column: &Column) -> bool {
    use ColumnType::*;
    // Numbers and dates also carry the binary character set: only
    // strings and blobs in it are bytes.
    match column.column_type() {
        MYSQL_TYPE_BIT | MYSQL_TYPE_GEOMETRY => true,
        MYSQL_TYPE_STRING
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB => column.character_set() == BINARY_CHARSET,
        _ => false,
    }
}

fn is_integer(column: &Column) -> bool {
    use ColumnType::*;
    matches!(
        column.column_type(),
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_YEAR
    )
}

fn is_float(column: &Column) -> bool {
    matches!(
        column.column_type(),
        ColumnType::MYSQL_TYPE_FLOAT | ColumnType::MYSQL_TYPE_DOUBLE
    )
}

/// One value of `column` as a probe's. The text protocol sends every
/// value as text: numbers are parsed back by the column's type.
pub fn value(column: &Column, value: My) -> Value {
    match value {
        My::NULL => Value::Null,
        My::Int(i) => Value::Int(i),
        My::UInt(u) => i64::try_from(u).map_or_else(|_| Value::Text(u.to_string()), Value::Int),
        My::Float(f) => Value::Float(f64::from(f)),
        My::Double(f) => Value::Float(f),
        My::Date(y, mo, d, h, mi, s, us) => {
            if column.column_type() == ColumnType::MYSQL_TYPE_DATE {
                Value::Text(format!("{y:04}-{mo:02}-{d:02}"))
            } else if us > 0 {
                Value::Text(format!(
                    "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
                ))
            } else {
                Value::Text(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"))
            }
        }
        My::Time(negative, days, h, mi, s, us) => {
            let sign = if negative { "-" } else { "" };
            let hours = u64::from(days) * 24 + u64::from(h);
            let fraction = if us > 0 {
                format!(".{us:06}")
            } else {
                String::new()
            };
            Value::Text(format!("{sign}{hours:02}:{mi:02}:{s:02}{fraction}"))
        }
        My::Bytes(bytes) if is_binary(column) => Value::Bytes(bytes),
        My::Bytes(bytes) => {
            let text = String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            if is_integer(column) {
                if let Ok(i) = text.parse::<i64>() {
                    return Value::Int(i);
                }
            } else if is_float(column)
                && let Ok(f) = text.parse::<f64>()
            {
                return Value::Float(f);
            }
            Value::Text(text)
        }
    }
}

/// Host bytes a raw MySQL value will take once converted (at least).
fn raw_size(value: &Option<My>) -> usize {
    CELL + match value {
        Some(My::Bytes(b)) => b.len(),
        _ => 0,
    }
}

/// Reads a result row by row into [`Rows`], within `budget` bytes of host
/// memory (at most [`MAX_RESULT_BYTES`]) and [`MAX_ROWS`]: past those, the
/// same errors as PostgreSQL's, and the caller must close the session.
pub struct Collector {
    limit: usize,
    budget: usize,
    bytes: usize,
    rows: Rows,
}

impl Collector {
    pub fn new(budget: usize) -> Self {
        Collector {
            limit: budget.min(MAX_RESULT_BYTES),
            budget,
            bytes: 0,
            rows: Rows {
                columns: Vec::new(),
                rows: Vec::new(),
                affected: 0,
                largest_row: 0,
            },
        }
    }

    /// The column names (once, before the rows).
    pub fn columns(&mut self, columns: &[Column]) -> Result<(), Error> {
        self.rows.columns = columns.iter().map(|c| c.name_str().into_owned()).collect();
        self.bytes += self
            .rows
            .columns
            .iter()
            .map(|c| CELL + c.len())
            .sum::<usize>();
        self.check(0)
    }

    fn check(&self, rows: usize) -> Result<(), Error> {
        if self.bytes > self.limit {
            return Err(over(self.limit, self.budget, rows, self.bytes));
        }
        Ok(())
    }

    /// One more row: its columns and raw values
    /// (`mysql_async::Row::unwrap_raw`).
    pub fn push(&mut self, columns: &[Column], raw: Vec<Option<My>>) -> Result<(), Error> {
        let n = self.rows.rows.len() + 1;
        if n > MAX_ROWS {
            return Err(too_large(n, self.bytes));
        }
        let row_start = self.bytes;
        self.bytes += ROW + raw.iter().map(raw_size).sum::<usize>();
        self.check(n)?;
        self.bytes = row_start + ROW;
        let mut values = Vec::with_capacity(raw.len());
        for (column, raw) in columns.iter().zip(raw) {
            let converted = value(column, raw.unwrap_or(My::NULL));
            self.bytes += value_size(&converted);
            self.check(n)?;
            values.push(converted);
        }
        self.rows.rows.push(values);
        self.rows.largest_row = self.rows.largest_row.max(self.bytes - row_start);
        Ok(())
    }

    pub fn finish(mut self, affected: u64) -> Rows {
        self.rows.affected = affected;
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: ColumnType, charset: u16) -> Column {
        Column::new(kind).with_character_set(charset)
    }

    #[test]
    fn values_keep_their_type_and_text_numbers_are_parsed_back() {
        let int = column(ColumnType::MYSQL_TYPE_LONGLONG, BINARY_CHARSET);
        assert_eq!(value(&int, My::Int(-5)), Value::Int(-5));
        assert_eq!(value(&int, My::Bytes(b"42".to_vec())), Value::Int(42));
        assert_eq!(
            value(&int, My::UInt(u64::MAX)),
            Value::Text(u64::MAX.to_string())
        );
        let text = column(ColumnType::MYSQL_TYPE_VAR_STRING, 45);
        assert_eq!(
            value(&text, My::Bytes(b"ON".to_vec())),
            Value::Text("ON".into())
        );
        let blob = column(ColumnType::MYSQL_TYPE_BLOB, BINARY_CHARSET);
        assert_eq!(
            value(&blob, My::Bytes(vec![0, 255])),
            Value::Bytes(vec![0, 255])
        );
        let decimal = column(ColumnType::MYSQL_TYPE_NEWDECIMAL, BINARY_CHARSET);
        assert_eq!(
            value(&decimal, My::Bytes(b"1.50".to_vec())),
            Value::Text("1.50".into())
        );
        let double = column(ColumnType::MYSQL_TYPE_DOUBLE, BINARY_CHARSET);
        assert_eq!(
            value(&double, My::Bytes(b"0.5".to_vec())),
            Value::Float(0.5)
        );
        let stamp = column(ColumnType::MYSQL_TYPE_DATETIME, BINARY_CHARSET);
        assert_eq!(
            value(&stamp, My::Date(2026, 12, 6, 9, 10, 11, 1)),
            Value::Text("2026-12-06 09:10:11.000001".into())
        );
        let time = column(ColumnType::MYSQL_TYPE_TIME, BINARY_CHARSET);
        assert_eq!(
            value(&time, My::Time(true, 1, 2, 3, 4, 0)),
            Value::Text("-26:03:04".into())
        );
    }

    #[test]
    fn a_result_past_the_budget_is_too_large() {
        let mut collector = Collector::new(200);
        let text = column(ColumnType::MYSQL_TYPE_VAR_STRING, 45);
        collector.columns(std::slice::from_ref(&text)).unwrap();
        let small = vec![Some(My::Bytes(b"ok".to_vec()))];
        collector.push(std::slice::from_ref(&text), small).unwrap();
        let raw = vec![Some(My::Bytes(vec![b'x'; 500]))];
        assert!(matches!(
            collector.push(&[text], raw),
            Err(Error::TooLarge { .. })
        ));
    }
}
