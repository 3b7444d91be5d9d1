//! What the MariaDB/MySQL probes (`mysql-*`) share: reading server
//! variables and status counters, and the replica status under both of its
//! spellings (`SHOW REPLICA STATUS` with `Replica_*`/`Source_*` columns on
//! MySQL 8.0.22+ and 8.4, `SHOW SLAVE STATUS` with `Slave_*`/`Master_*`
//! columns on older MySQL and on MariaDB), so that each probe asks the
//! same way and names the same missing grant.
//!
//! Error numbers used here (MySQL's and MariaDB's alike): 1064 syntax
//! error (a spelling the server does not know), 1193 unknown system
//! variable, 1227 and 1142 a privilege missing.

use std::collections::BTreeMap;
use watchpost_probe::sql::{self, SqlError, Value};
use watchpost_probe::{Error, Result};

/// ER_PARSE_ERROR: the server does not know this spelling.
pub const PARSE_ERROR: u32 = 1064;
/// ER_UNKNOWN_SYSTEM_VARIABLE.
pub const UNKNOWN_VARIABLE: u32 = 1193;
/// ER_SPECIFIC_ACCESS_DENIED_ERROR and ER_TABLEACCESS_DENIED_ERROR.
pub const ACCESS_DENIED: [u32; 2] = [1227, 1142];

/// The grant that shows replication state, for messages.
pub const REPLICATION_GRANT: &str =
    "REPLICATION CLIENT (MySQL; on MariaDB 10.5+ SLAVE MONITOR and BINLOG MONITOR)";

/// The error number of the call that just failed, if the server gave one.
pub fn failed_number() -> Option<u32> {
    sql::error_number()
}

/// True when `error` (just returned) is a missing privilege.
pub fn is_access_denied(error: &SqlError) -> bool {
    matches!(error, SqlError::Query(_))
        && failed_number().is_some_and(|n| ACCESS_DENIED.contains(&n))
}

/// The error for a part that cannot be read without `grant`:
/// `cannot see WHAT on `TARGET`: grant GRANT to the probes' account (ERROR)`.
pub fn needs_grant(target: &str, what: &str, grant: &str, error: &SqlError) -> Error {
    Error::msg(format!(
        "cannot see {what} on `{target}`: grant {grant} to the probes' account ({})",
        error.describe()
    ))
}

/// The global value of server variable `name` (`read_only`,
/// `max_connections`, ...) as the server prints it, or `None` when this
/// server has no such variable (e.g. `super_read_only` on MariaDB).
/// `name` must be a plain variable name (letters, digits, `_`).
pub fn variable(target: &str, name: &str) -> Result<Option<Value>> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::msg(format!(
            "`{name}` is not a server variable name"
        )));
    }
    match sql::query(target, &format!("SELECT @@global.{name} AS v"), &[]) {
        Ok(rows) => Ok(Some(rows.first()?.get("v")?.clone())),
        Err(SqlError::Query(_)) if failed_number() == Some(UNKNOWN_VARIABLE) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// A server variable read as a number: `ON`/`OFF` are 1/0.
pub fn number(value: &Value) -> Option<f64> {
    value.as_f64().or_else(|| match value.as_str()?.trim() {
        s if s.eq_ignore_ascii_case("on") || s.eq_ignore_ascii_case("yes") => Some(1.0),
        s if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("no") => Some(0.0),
        _ => None,
    })
}

/// The global status counters named in `names` (`Threads_connected`, ...):
/// name to value; a counter this server lacks is absent. Names must be
/// plain (letters, digits, `_`).
pub fn status(target: &str, names: &[&str]) -> Result<BTreeMap<String, Value>> {
    let mut quoted = Vec::with_capacity(names.len());
    for name in names {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::msg(format!("`{name}` is not a status counter name")));
        }
        quoted.push(format!("'{name}'"));
    }
    let statement = format!(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ({})",
        quoted.join(", ")
    );
    let rows = sql::query(target, &statement, &[])?;
    let mut found = BTreeMap::new();
    for row in rows.iter() {
        if let Some(name) = row.text("Variable_name")? {
            found.insert(name.to_string(), row.get("Value")?.clone());
        }
    }
    Ok(found)
}

/// One row of the replica status: one replication source (a channel on
/// MySQL, a connection on MariaDB).
pub struct ReplicaRow {
    columns: BTreeMap<String, Value>,
}

impl ReplicaRow {
    /// The value under the first of `names` that this server's spelling
    /// has (give the new spelling first: `["Replica_IO_Running",
    /// "Slave_IO_Running"]`).
    pub fn get(&self, names: &[&str]) -> Option<&Value> {
        names.iter().find_map(|n| self.columns.get(*n))
    }

    /// Text under the first of `names` present (NULL and absent: `None`).
    pub fn text(&self, names: &[&str]) -> Option<String> {
        match self.get(names)? {
            Value::Text(t) => Some(t.clone()),
            Value::Int(n) => Some(n.to_string()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// A number under the first of `names` present (NULL and absent: `None`).
    pub fn number(&self, names: &[&str]) -> Option<f64> {
        self.get(names).and_then(Value::as_f64)
    }

    /// `Yes` under the first of `names` present.
    pub fn yes(&self, names: &[&str]) -> bool {
        self.text(names)
            .is_some_and(|t| t.eq_ignore_ascii_case("yes"))
    }

    /// The source's name for messages: MariaDB's connection or MySQL's
    /// channel name when set, else `host:port`.
    pub fn source_name(&self) -> String {
        let named = self
            .text(&["Connection_name", "Channel_Name", "Channel_name"])
            .filter(|n| !n.is_empty());
        named.unwrap_or_else(|| {
            format!(
                "{}:{}",
                self.text(&["Source_Host", "Master_Host"])
                    .unwrap_or_default(),
                self.text(&["Source_Port", "Master_Port"])
                    .unwrap_or_default()
            )
        })
    }
}

/// The replica status rows of `target` (none on a server that replicates
/// from no source). All sources on MariaDB (`SHOW ALL REPLICAS STATUS`);
/// every channel on MySQL. Old spellings are tried when the server does not
/// know the new ones. A missing grant is an error naming it.
pub fn replica_status(target: &str) -> Result<Vec<ReplicaRow>> {
    let mariadb = sql::engine(target)? == "mariadb";
    let spellings: &[&str] = if mariadb {
        &["SHOW ALL REPLICAS STATUS", "SHOW ALL SLAVES STATUS"]
    } else {
        &["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"]
    };
    let mut last = None;
    for statement in spellings {
        match sql::query(target, statement, &[]) {
            Ok(rows) => {
                return Ok(rows
                    .rows
                    .iter()
                    .map(|values| ReplicaRow {
                        columns: rows.columns.iter().cloned().zip(values.clone()).collect(),
                    })
                    .collect());
            }
            Err(error) if is_access_denied(&error) => {
                return Err(needs_grant(
                    target,
                    "the replication state",
                    REPLICATION_GRANT,
                    &error,
                ));
            }
            Err(error @ SqlError::Query(_)) if failed_number() == Some(PARSE_ERROR) => {
                last = Some(error);
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(last
        .map(Error::from)
        .unwrap_or_else(|| Error::msg("no replica status")))
}

/// `name` as a MySQL identifier: backtick-quoted, embedded backticks
/// doubled, so nothing in it can change the statement around it.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A table name from config: `db.table` (bare parts: letters, digits,
/// `_` and `$`) or with backtick-quoted parts (`` `my db`.`t` ``). Returns
/// (database, table) unquoted; an error says what is wrong.
pub fn table_name(text: &str) -> std::result::Result<(String, String), String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    loop {
        let (part, after) = if let Some(quoted) = rest.strip_prefix('`') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '`')) if quoted[i + 1..].starts_with('`') => {
                        value.push('`');
                        chars.next();
                    }
                    Some((i, '`')) => break i + 1,
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("`{text}`: a backtick-quoted name is not closed")),
                }
            };
            (value, &quoted[end..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(rest.len());
            (rest[..end].to_string(), &rest[end..])
        };
        if part.is_empty() {
            return Err(format!("`{text}`: expected a name such as app.heartbeat"));
        }
        parts.push(part);
        match after.strip_prefix('.') {
            Some(next) => rest = next,
            None if after.is_empty() => break,
            None => return Err(format!("`{text}`: unexpected `{after}` after a name")),
        }
    }
    match <[String; 2]>::try_from(parts) {
        Ok([db, table]) => Ok((db, table)),
        Err(_) => Err(format!(
            "`{text}`: name the table with its database, as database.table"
        )),
    }
}

/// A GTID set as the servers print it (`0-1-42,1-2-7` on MariaDB;
/// `uuid:1-5:7,uuid2:1-3` on MySQL), newlines removed.
pub fn gtid_text(raw: &str) -> String {
    raw.split_whitespace().collect::<Vec<_>>().join("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_read_as_numbers() {
        assert_eq!(number(&Value::Text("ON".into())), Some(1.0));
        assert_eq!(number(&Value::Text("off".into())), Some(0.0));
        assert_eq!(number(&Value::Int(151)), Some(151.0));
        assert_eq!(number(&Value::Text("12.5".into())), Some(12.5));
        assert_eq!(number(&Value::Text("maybe".into())), None);
    }

    #[test]
    fn replica_columns_are_read_under_either_spelling() {
        let row = ReplicaRow {
            columns: [
                ("Slave_IO_Running".to_string(), Value::Text("Yes".into())),
                ("Master_Host".to_string(), Value::Text("db1".into())),
                ("Master_Port".to_string(), Value::Int(3306)),
                ("Seconds_Behind_Master".to_string(), Value::Null),
                ("Connection_name".to_string(), Value::Text(String::new())),
            ]
            .into_iter()
            .collect(),
        };
        assert!(row.yes(&["Replica_IO_Running", "Slave_IO_Running"]));
        assert!(!row.yes(&["Replica_SQL_Running", "Slave_SQL_Running"]));
        assert_eq!(
            row.number(&["Seconds_Behind_Source", "Seconds_Behind_Master"]),
            None
        );
        assert_eq!(row.source_name(), "db1:3306");
        assert_eq!(gtid_text("a:1-5,\nb:1-3"), "a:1-5,b:1-3");
    }

    #[test]
    fn table_names_are_read_and_quoted_safely() {
        assert_eq!(
            table_name("app.heartbeat"),
            Ok(("app".into(), "heartbeat".into()))
        );
        assert_eq!(
            table_name("`my db`.`we``ird`"),
            Ok(("my db".into(), "we`ird".into()))
        );
        assert!(
            table_name("heartbeat")
                .unwrap_err()
                .contains("database.table")
        );
        assert!(table_name("app.t; DROP").is_err());
        assert!(table_name("`app.t").is_err());
        assert_eq!(quote("we`ird"), "`we``ird`");
    }
}
