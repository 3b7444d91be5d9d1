//! B-tree index verification with the `amcheck` extension:
//! `bt_index_check(index)` over the indexes of the configured tables. It
//! takes only an AccessShareLock, so it is safe on a live primary (and on
//! a standby), but it reads every page of each index: list the tables
//! whose indexes matter, not every table of a large database.

use watchpost_probe::sql::ident::{Name, quote};
use watchpost_probe::sql::{self, SqlError, Value};
use watchpost_probe::{Error, Result};

/// SQLSTATE amcheck raises for a corrupt index.
const INDEX_CORRUPTED: &str = "XX002";

/// Valid, permanent B-tree indexes of one table (`$1`), or of every table
/// outside the system schemas (`$1` NULL).
const INDEXES: &str = "\
SELECT n.nspname AS schema_name, ic.relname AS index_name \
FROM pg_index i \
JOIN pg_class ic ON ic.oid = i.indexrelid \
JOIN pg_am am ON am.oid = ic.relam \
JOIN pg_namespace n ON n.oid = ic.relnamespace \
WHERE am.amname = 'btree' AND i.indisvalid AND ic.relpersistence = 'p' \
  AND (i.indrelid = to_regclass($1) \
       OR ($1 IS NULL AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%')) \
ORDER BY 1, 2";

/// Which tables' indexes to check.
pub enum Scope {
    Tables(Vec<Name>),
    /// Every table outside the system schemas.
    All,
}

pub struct Verified {
    pub indexes: usize,
    /// `index: message` for each corrupt index.
    pub corrupt: Vec<String>,
}

/// The schema `amcheck` is installed in, if it is.
pub fn installed(target: &str) -> Result<Option<String>> {
    let rows = sql::query(
        target,
        "SELECT n.nspname AS schema_name FROM pg_extension e \
         JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'",
        &[],
    )?;
    match rows.iter().next() {
        Some(row) => Ok(row.text("schema_name")?.map(String::from)),
        None => Ok(None),
    }
}

fn indexes(target: &str, scope: &Scope) -> Result<Vec<Name>> {
    let tables: Vec<Value> = match scope {
        Scope::All => vec![Value::Null],
        Scope::Tables(names) => {
            for name in names {
                let exists = sql::query(
                    target,
                    "SELECT to_regclass($1) IS NOT NULL AS found",
                    &[Value::Text(name.quoted())],
                )?;
                if exists.first()?.bool("found")? != Some(true) {
                    return Err(Error::msg(format!(
                        "config `check_indexes`: table {name} does not exist"
                    )));
                }
            }
            names.iter().map(|n| Value::Text(n.quoted())).collect()
        }
    };
    let mut found = Vec::new();
    for table in tables {
        for row in sql::query(target, INDEXES, &[table])?.iter() {
            found.push(Name::qualified(
                row.text("schema_name")?.unwrap_or_default(),
                row.text("index_name")?.unwrap_or_default(),
            ));
        }
    }
    Ok(found)
}

/// Check every index in scope with `bt_index_check` from `schema`.
pub fn verify(target: &str, schema: &str, scope: &Scope) -> Result<Verified> {
    let indexes = indexes(target, scope)?;
    let statement = format!(
        "SELECT {}.bt_index_check($1::text::regclass)",
        quote(schema)
    );
    let mut corrupt = Vec::new();
    for index in &indexes {
        match sql::query(target, &statement, &[Value::Text(index.quoted())]) {
            Ok(_) => {}
            Err(SqlError::Query(error)) if error.code == INDEX_CORRUPTED => {
                corrupt.push(format!("{index}: {}", error.message));
            }
            Err(SqlError::Query(error)) if error.code == "42501" => {
                return Err(Error::msg(format!(
                    "amcheck: {} (grant the role EXECUTE ON FUNCTION {}.bt_index_check(regclass))",
                    error.message,
                    quote(schema)
                )));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(Verified {
        indexes: indexes.len(),
        corrupt,
    })
}
