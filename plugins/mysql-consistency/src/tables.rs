//! Which tables are compared, and what the probe needs of each: its
//! primary key columns (the chunks follow them) and all its columns (the
//! rows' digests cover them), read from `information_schema` on the
//! primary. A table without a primary key cannot be chunked and is named
//! as skipped, never silently left out.

use mysql_common::quote;
use std::collections::BTreeMap;
use watchpost_probe::sql::{self, Value};
use watchpost_probe::{Error, Result};

/// Base tables outside the system schemas.
const TABLES: &str = "\
SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, COALESCE(TABLE_ROWS, 0) AS estimated_rows \
FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
  AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
ORDER BY TABLE_SCHEMA, TABLE_NAME";

/// Every column of those tables, in order, with its place in the primary
/// key (0: not in it).
const COLUMNS: &str = "\
SELECT c.TABLE_SCHEMA AS db, c.TABLE_NAME AS name, c.COLUMN_NAME AS col, \
       COALESCE(k.ORDINAL_POSITION, 0) AS key_position, c.DATA_TYPE AS data_type \
FROM information_schema.COLUMNS c \
LEFT JOIN information_schema.KEY_COLUMN_USAGE k \
  ON k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME \
 AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY' \
WHERE c.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION";

/// A table to compare.
pub struct Table {
    pub db: String,
    pub name: String,
    /// Primary key columns, in key order.
    pub key: Vec<String>,
    /// True when the key is one integer column (a run may start anywhere).
    pub integer_key: bool,
    /// Every column, in table order.
    pub columns: Vec<String>,
    pub estimated_rows: f64,
}

impl Table {
    /// `` `db`.`name` ``, as statements and messages write it.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.db), quote(&self.name))
    }
}

/// A table that cannot be compared, and why.
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// The tables to compare (all, or the ones named as (db, table)), and
/// the ones that cannot be.
pub fn list(
    primary: &str,
    named: Option<&[(String, String)]>,
) -> Result<(Vec<Table>, Vec<Skipped>)> {
    let mut found: BTreeMap<(String, String), Table> = BTreeMap::new();
    for row in sql::query(primary, TABLES, &[])?.iter() {
        let db = text(row.get("db")?);
        let name = text(row.get("name")?);
        found.insert(
            (db.clone(), name.clone()),
            Table {
                db,
                name,
                key: Vec::new(),
                integer_key: false,
                columns: Vec::new(),
                estimated_rows: row.float("estimated_rows")?.unwrap_or(0.0),
            },
        );
    }
    let mut key_types: BTreeMap<(String, String), Vec<(i64, String, String)>> = BTreeMap::new();
    for row in sql::query(primary, COLUMNS, &[])?.iter() {
        let id = (text(row.get("db")?), text(row.get("name")?));
        let Some(table) = found.get_mut(&id) else {
            continue;
        };
        let column = text(row.get("col")?);
        table.columns.push(column.clone());
        let position = row.int("key_position")?.unwrap_or(0);
        if position > 0 {
            key_types
                .entry(id)
                .or_default()
                .push((position, column, text(row.get("data_type")?)));
        }
    }
    for (id, mut key) in key_types {
        key.sort();
        if let Some(table) = found.get_mut(&id) {
            table.integer_key = key.len() == 1 && key[0].2.to_ascii_lowercase().ends_with("int");
            table.key = key.into_iter().map(|(_, c, _)| c).collect();
        }
    }
    let mut skipped = Vec::new();
    let wanted: Vec<Table> = match named {
        Some(names) => {
            let mut wanted = Vec::new();
            for (db, name) in names {
                match found.remove(&(db.clone(), name.clone())) {
                    Some(table) => wanted.push(table),
                    None => {
                        return Err(Error::msg(format!(
                            "config `tables`: no base table {}.{} on the primary (or no SELECT \
                             on it)",
                            quote(db),
                            quote(name)
                        )));
                    }
                }
            }
            wanted
        }
        None => found.into_values().collect(),
    };
    let mut tables = Vec::new();
    for table in wanted {
        if table.key.is_empty() {
            skipped.push(Skipped {
                name: table.quoted(),
                reason: "no primary key to chunk by".into(),
            });
        } else {
            tables.push(table);
        }
    }
    Ok((tables, skipped))
}

fn text(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}
