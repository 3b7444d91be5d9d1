//! The statements behind one chunk: where it ends (its upper key, found
//! on the primary), its rows' digest on either side, the primary's GTID
//! position and the replica's wait for it.
//!
//! A chunk is the rows whose primary key is past `lo` and up to `hi`
//! (row constructors, `(k1, k2) > (?, ?)`, which both servers run as
//! index range scans). Its digest is the row count and the XOR of every
//! row's MD5 (over all columns cast to binary, NULLs marked apart from
//! empty strings), in two 64-bit halves written as hex: the same rows give
//! the same digest in any order, whatever the binlog format.

use crate::tables::Table;
use mysql_common::quote;
use watchpost_probe::Result;
use watchpost_probe::sql::{self, Value};

/// A primary key value, one per key column.
pub type Key = Vec<Value>;

/// A chunk's digest: rows and the two XORed MD5 halves.
#[derive(Clone, Debug, PartialEq)]
pub struct Digest {
    pub rows: i64,
    pub hash: String,
}

fn key_list(table: &Table) -> String {
    table
        .key
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `WHERE` conditions for keys past `lo` and up to `hi`, with their
/// parameters.
fn range(table: &Table, lo: Option<&Key>, hi: Option<&Key>) -> (String, Vec<Value>) {
    let keys = key_list(table);
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if let Some(lo) = lo {
        conditions.push(format!("({keys}) > ({})", placeholders(lo.len())));
        params.extend(lo.iter().cloned());
    }
    if let Some(hi) = hi {
        conditions.push(format!("({keys}) <= ({})", placeholders(hi.len())));
        params.extend(hi.iter().cloned());
    }
    if conditions.is_empty() {
        (String::new(), params)
    } else {
        (format!(" WHERE {}", conditions.join(" AND ")), params)
    }
}

/// The key of the chunk's last row: `rows` rows past `lo`, never past
/// `stop`; `None` when fewer rows are left (the chunk runs to `stop`).
pub fn upper(
    primary: &str,
    table: &Table,
    lo: Option<&Key>,
    stop: Option<&Key>,
    rows: usize,
) -> Result<Option<Key>> {
    let (condition, params) = range(table, lo, stop);
    let keys = key_list(table);
    let statement = format!(
        "SELECT {keys} FROM {}{condition} ORDER BY {keys} LIMIT 1 OFFSET {}",
        table.quoted(),
        rows.saturating_sub(1)
    );
    let found = sql::query(primary, &statement, &params)?;
    Ok(found.rows.into_iter().next())
}

/// The digest of the rows past `lo` up to `hi` on `target`.
pub fn digest(target: &str, table: &Table, lo: Option<&Key>, hi: Option<&Key>) -> Result<Digest> {
    let (condition, params) = range(table, lo, hi);
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("CAST({} AS BINARY)", quote(c)))
        .collect();
    let nulls: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("ISNULL({})", quote(c)))
        .collect();
    let half = |from: u32| {
        format!(
            "LPAD(HEX(COALESCE(BIT_XOR(CAST(CONV(SUBSTRING(h, {from}, 16), 16, 10) AS UNSIGNED)), \
             0)), 16, '0')"
        )
    };
    let statement = format!(
        "SELECT COUNT(*) AS n, CONCAT({}, {}) AS hash FROM (SELECT MD5(CONCAT_WS('#', {}, \
         CONCAT({}))) AS h FROM {}{condition}) AS chunk",
        half(1),
        half(17),
        columns.join(", "),
        nulls.join(", "),
        table.quoted()
    );
    let rows = sql::query(target, &statement, &params)?;
    let row = rows.first()?;
    Ok(Digest {
        rows: row.int("n")?.unwrap_or(0),
        hash: match row.get("hash")? {
            Value::Text(t) => t.clone(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        },
    })
}

/// The primary's GTID position: everything it has written so far.
pub fn position(primary: &str, mariadb: bool) -> Result<String> {
    let name = if mariadb {
        "gtid_binlog_pos"
    } else {
        "gtid_executed"
    };
    let value = mysql_common::variable(primary, name)?;
    Ok(match value {
        Some(Value::Text(t)) => mysql_common::gtid_text(&t),
        Some(Value::Bytes(b)) => mysql_common::gtid_text(&String::from_utf8_lossy(&b)),
        _ => String::new(),
    })
}

/// Wait up to `seconds` for the replica to apply `position`: true once
/// it has.
pub fn wait(replica: &str, mariadb: bool, position: &str, seconds: f64) -> Result<bool> {
    if position.is_empty() {
        return Ok(true);
    }
    // Both return 0 once the position is applied (MariaDB -1 and MySQL
    // 1 on timeout).
    let statement = if mariadb {
        "SELECT MASTER_GTID_WAIT(?, ?) AS w"
    } else {
        "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS w"
    };
    let rows = sql::query(
        replica,
        statement,
        &[Value::from(position), Value::Float(seconds.max(0.001))],
    )?;
    Ok(rows.first()?.int("w")? == Some(0))
}

/// A key as a message shows it: `(42)`, `('a', 7)`; none: `(start)`/`(end)`.
pub fn shown(key: Option<&Key>, none: &str) -> String {
    match key {
        None => format!("({none})"),
        Some(values) => {
            let parts: Vec<String> = values
                .iter()
                .map(|v| match v {
                    Value::Null => "NULL".to_string(),
                    Value::Boolean(b) => b.to_string(),
                    Value::Int(n) => n.to_string(),
                    Value::Float(x) => x.to_string(),
                    Value::Text(t) => format!("'{t}'"),
                    Value::Bytes(b) => format!("x'{}'", hex(b)),
                })
                .collect();
            format!("({})", parts.join(", "))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_show_as_tuples() {
        assert_eq!(shown(None, "start"), "(start)");
        assert_eq!(
            shown(Some(&vec![Value::Int(4), Value::Text("a".into())]), "end"),
            "(4, 'a')"
        );
        assert_eq!(
            shown(Some(&vec![Value::Bytes(vec![0, 255])]), "end"),
            "(x'00ff')"
        );
    }
}
