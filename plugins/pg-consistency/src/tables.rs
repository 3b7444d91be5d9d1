//! Which tables to compare, and their primary keys, read from the
//! primary's catalog; and which cannot be compared, and why ([`skipped`]):
//! no primary key, no `SELECT` privilege, or row-level security that
//! hides rows from the probe's role (comparing what it sees would compare
//! a part, or nothing, and call it equal). Every such table is named.

use crate::chunks::{KeyColumn, Table};
use watchpost_probe::sql::ident::Name;
use watchpost_probe::sql::{self, Value};
use watchpost_probe::{Result, bail};

/// Every primary-key column of the tables the filter selects, in key order.
const KEY_COLUMNS: &str = "\
SELECT n.nspname AS schema_name, c.relname AS table_name, a.attname AS column_name, \
       format_type(a.atttypid, a.atttypmod) AS column_type, \
       c.reltuples::float8 AS estimated_rows, c.relpages::float8 AS pages \
FROM pg_class c \
JOIN pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position) \
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum";

/// Tables found by default: permanent (unlogged ones are not replicated),
/// not a partition (its parent covers it), outside the system schemas.
const DEFAULT_FILTER: &str = "\
c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND NOT c.relispartition \
AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'";

const ORDER: &str = "ORDER BY n.nspname, c.relname, k.position";

/// Group key-column rows into tables.
fn tables_of(rows: &sql::Rows) -> Result<Vec<Table>> {
    let mut tables: Vec<Table> = Vec::new();
    for row in rows.iter() {
        let name = Name::qualified(
            row.text("schema_name")?.unwrap_or_default(),
            row.text("table_name")?.unwrap_or_default(),
        );
        let column = KeyColumn {
            name: row.text("column_name")?.unwrap_or_default().to_string(),
            sql_type: row.text("column_type")?.unwrap_or_default().to_string(),
        };
        match tables.last_mut() {
            Some(table) if table.name == name => table.key.push(column),
            _ => tables.push(Table {
                name,
                key: vec![column],
                estimated_rows: row.float("estimated_rows")?.unwrap_or(-1.0),
                pages: row.float("pages")?.unwrap_or(0.0),
            }),
        }
    }
    Ok(tables)
}

/// Every table with a primary key, as the default filter selects them.
pub fn all(primary: &str) -> Result<Vec<Table>> {
    let statement = format!("{KEY_COLUMNS} WHERE {DEFAULT_FILTER} {ORDER}");
    tables_of(&sql::query(primary, &statement, &[])?)
}

/// The named tables, each of which must exist, be permanent and have a
/// primary key.
pub fn named(primary: &str, names: &[Name]) -> Result<Vec<Table>> {
    let mut tables = Vec::new();
    for name in names {
        let found = sql::query(
            primary,
            "SELECT c.oid::int8 AS oid, c.relpersistence::text AS persistence \
             FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[Value::Text(name.quoted())],
        )?;
        let Some(row) = found.iter().next() else {
            bail!("config `tables`: table {name} does not exist on the primary");
        };
        if row.text("persistence")? != Some("p") {
            bail!("config `tables`: table {name} is unlogged or temporary: it is not replicated");
        }
        let oid = row.int("oid")?.unwrap_or_default();
        let statement = format!("{KEY_COLUMNS} WHERE c.oid = $1::int8::oid {ORDER}");
        let mut table = tables_of(&sql::query(primary, &statement, &[Value::Int(oid)])?)?;
        match table.pop() {
            Some(table) => tables.push(table),
            None => bail!(
                "config `tables`: table {name} has no primary key, so it cannot be compared \
                 chunk by chunk"
            ),
        }
    }
    Ok(tables)
}

/// Why each table is not compared, for the tables the default filter
/// selects (or the named ones): no `SELECT` privilege, row-level security
/// that applies to the probe's role (not a superuser, not `BYPASSRLS`, and
/// not the owner of a table without `FORCE ROW LEVEL SECURITY`), or no
/// primary key.
const SKIPPED: &str = "\
SELECT n.nspname AS schema_name, c.relname AS table_name, c.oid::int8 AS oid, \
  CASE WHEN NOT has_table_privilege(c.oid, 'SELECT') \
         THEN 'no SELECT privilege: grant SELECT on it to the probe''s role' \
       WHEN c.relrowsecurity \
            AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user) \
            AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')) \
         THEN 'row-level security hides rows from the probe''s role: use a role with BYPASSRLS' \
       WHEN NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) \
         THEN 'no primary key to compare it chunk by chunk' \
  END AS reason \
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace";

/// A table that is not compared, and why.
pub struct Skipped {
    pub name: Name,
    pub reason: String,
}

/// The tables that cannot be compared: among every table the default
/// filter selects, or among `names` when the config names them.
pub fn skipped(primary: &str, names: Option<&[Name]>) -> Result<Vec<Skipped>> {
    let rows = sql::query(
        primary,
        &format!("{SKIPPED} WHERE {DEFAULT_FILTER} ORDER BY n.nspname, c.relname"),
        &[],
    )?;
    // Named tables keep the name the config gave them.
    let mut wanted = Vec::new();
    if let Some(names) = names {
        for name in names {
            let found = sql::query(
                primary,
                "SELECT to_regclass($1)::oid::int8 AS oid",
                &[Value::Text(name.quoted())],
            )?;
            if let Some(oid) = found.first()?.int("oid")? {
                wanted.push((oid, name.clone()));
            }
        }
    }
    let mut skipped = Vec::new();
    for row in rows.iter() {
        let Some(reason) = row.text("reason")? else {
            continue;
        };
        let name = match names {
            None => Name::qualified(
                row.text("schema_name")?.unwrap_or_default(),
                row.text("table_name")?.unwrap_or_default(),
            ),
            Some(_) => {
                let oid = row.int("oid")?;
                match wanted.iter().find(|(o, _)| Some(*o) == oid) {
                    Some((_, name)) => name.clone(),
                    None => continue,
                }
            }
        };
        skipped.push(Skipped {
            name,
            reason: reason.to_string(),
        });
    }
    Ok(skipped)
}
