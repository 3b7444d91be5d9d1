//! Chunks of a table along its primary key, and the statements that hash
//! them.
//!
//! A chunk is a key [`Range`]: keys after a lower bound (exclusive) and
//! through an upper bound (inclusive); a missing bound is open. Bounds are
//! the text forms of the key columns, bound as `$n::text::TYPE`, so keys of
//! any type (integers, text, uuids, timestamps, composite keys) work the
//! same way, and the primary key index serves every range.
//!
//! A chunk's digest is its row count and the sum of a 64-bit hash of every
//! row's binary form (`record_send`: the exact stored values, independent
//! of the session's date, time zone or float settings). The sum is order
//! independent, so a range needs no sort; two sides that hold the same rows
//! have the same digest.

use watchpost_probe::sql::Value;
use watchpost_probe::sql::ident::{Name, display, quote};

/// The alias of the table's rows in every statement.
const ROW: &str = "r";
/// The sum of the first 64 bits of the row hashes `h`, as numeric text.
const HASH_SUM: &str = "sum(('x' || left(h, 16))::bit(64)::bigint)::text";

/// One column of a primary key.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyColumn {
    pub name: String,
    /// The type as `format_type` prints it (`integer`, `character varying(20)`).
    pub sql_type: String,
}

/// A table to compare.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub name: Name,
    /// The primary key's columns, in index order.
    pub key: Vec<KeyColumn>,
    /// The planner's row estimate (`reltuples`; negative when unknown).
    pub estimated_rows: f64,
    /// Pages on disk (`relpages`), for sampling a start key.
    pub pages: f64,
}

/// A key: the text form of each key column.
pub type Key = Vec<String>;

/// Keys after `after` (exclusive) through `through` (inclusive).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Range {
    pub after: Option<Key>,
    pub through: Option<Key>,
}

impl Table {
    /// `r."a", r."b"`, optionally with a suffix after each (`DESC`).
    fn key_list(&self, suffix: &str) -> String {
        self.key
            .iter()
            .map(|c| format!("{ROW}.{}{suffix}", quote(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `($1::text::integer, $2::text::text)`, pushing the key's values.
    fn bound(&self, key: &Key, params: &mut Vec<Value>) -> String {
        let parts: Vec<String> = self
            .key
            .iter()
            .zip(key)
            .map(|(column, value)| {
                params.push(Value::Text(value.clone()));
                format!("${}::text::{}", params.len(), column.sql_type)
            })
            .collect();
        format!("({})", parts.join(", "))
    }

    /// The `WHERE` clause of a range (empty for the whole table).
    fn range_filter(&self, range: &Range, params: &mut Vec<Value>) -> String {
        let row = format!("({})", self.key_list(""));
        let mut conditions = Vec::new();
        if let Some(after) = &range.after {
            conditions.push(format!("{row} > {}", self.bound(after, params)));
        }
        if let Some(through) = &range.through {
            conditions.push(format!("{row} <= {}", self.bound(through, params)));
        }
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    }

    /// The first `limit` rows of `range` on the primary: their digest and
    /// the last key (`key0`, `key1`, ...; NULL when there are none).
    pub fn chunk_statement(&self, range: &Range, limit: usize) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let filter = self.range_filter(range, &mut params);
        let keys: Vec<String> = (0..self.key.len())
            .map(|i| format!("{ROW}.{} AS k{i}", quote(&self.key[i].name)))
            .collect();
        let last: Vec<String> = (0..self.key.len()).map(|i| format!("k{i}")).collect();
        let last_desc: Vec<String> = last.iter().map(|k| format!("{k} DESC")).collect();
        let last_text: Vec<String> = last
            .iter()
            .enumerate()
            .map(|(i, k)| format!("last.{k}::text AS key{i}"))
            .collect();
        let sql = format!(
            "WITH chunk AS MATERIALIZED (\
               SELECT {keys}, md5(record_send({ROW}.*)) AS h FROM {table} {ROW}{filter} \
               ORDER BY {order} LIMIT {limit}) \
             SELECT (SELECT count(*) FROM chunk) AS rows, \
                    (SELECT {HASH_SUM} FROM chunk) AS hash, \
                    {last_text} \
             FROM (SELECT 1) AS one LEFT JOIN LATERAL (\
               SELECT {last} FROM chunk ORDER BY {last_desc} LIMIT 1) AS last ON true",
            keys = keys.join(", "),
            table = self.name.quoted(),
            order = self.key_list(""),
            last_text = last_text.join(", "),
            last = last.join(", "),
            last_desc = last_desc.join(", "),
        );
        (sql, params)
    }

    /// The digest of every row of `range` (`rows`, `hash`), and, with
    /// `lsn_function`, that function's WAL position as `lsn`. On the primary
    /// that is `pg_current_wal_insert_lsn`: read after the statement's
    /// snapshot, it is past every commit the snapshot sees, asynchronous
    /// commits included.
    pub fn range_statement(
        &self,
        range: &Range,
        lsn_function: Option<&str>,
    ) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let filter = self.range_filter(range, &mut params);
        let lsn = lsn_function.map_or(String::new(), |f| format!(", {f}()::text AS lsn"));
        let sql = format!(
            "SELECT count(*) AS rows, {HASH_SUM} AS hash{lsn} FROM (\
               SELECT md5(record_send({ROW}.*)) AS h FROM {table} {ROW}{filter}) AS rows_of_range",
            table = self.name.quoted(),
        );
        (sql, params)
    }

    /// The keys and row hashes of `range` in key order (`key0`, ..., `h`),
    /// at most `limit` of them.
    pub fn keys_statement(&self, range: &Range, limit: usize) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let filter = self.range_filter(range, &mut params);
        let keys: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{ROW}.{}::text AS key{i}", quote(&c.name)))
            .collect();
        let sql = format!(
            "SELECT {keys}, md5(record_send({ROW}.*)) AS h FROM {table} {ROW}{filter} \
             ORDER BY {order} LIMIT {limit}",
            keys = keys.join(", "),
            table = self.name.quoted(),
            order = self.key_list(""),
        );
        (sql, params)
    }

    /// A random key to start from, sampled from about two pages; `None`
    /// asks for the first page instead (small or never analyzed tables).
    pub fn sample_statement(&self) -> Option<(String, Vec<Value>)> {
        if self.pages < 4.0 {
            return None;
        }
        let percent = (200.0 / self.pages).clamp(0.0001, 100.0);
        let keys: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{ROW}.{}::text AS key{i}", quote(&c.name)))
            .collect();
        let sql = format!(
            "SELECT {keys} FROM {table} {ROW} TABLESAMPLE SYSTEM ($1) LIMIT 1",
            keys = keys.join(", "),
            table = self.name.quoted(),
        );
        Some((sql, vec![Value::Float(percent)]))
    }

    /// A range as a reader would write it: `id in (100, 200]`,
    /// `(a, b) in [start, (1, x)]`, with unbounded ends as `start`/`end`.
    pub fn describe(&self, range: &Range) -> String {
        let columns: Vec<String> = self.key.iter().map(|c| display(&c.name)).collect();
        let one = |key: &Key| {
            if key.len() == 1 {
                key[0].clone()
            } else {
                format!("({})", key.join(", "))
            }
        };
        let lower = match &range.after {
            Some(key) => format!("({}", one(key)),
            None => "[start".to_string(),
        };
        let upper = match &range.through {
            Some(key) => format!("{}]", one(key)),
            None => "end]".to_string(),
        };
        let column = if columns.len() == 1 {
            columns[0].clone()
        } else {
            format!("({})", columns.join(", "))
        };
        format!("{column} in {lower}, {upper}")
    }

    /// One key as `column=value` pairs (`id=42`, `a=1, b=x`).
    pub fn describe_key(&self, key: &Key) -> String {
        self.key
            .iter()
            .zip(key)
            .map(|(c, v)| format!("{}={v}", display(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders() -> Table {
        Table {
            name: Name::qualified("sales", "Orders"),
            key: vec![
                KeyColumn {
                    name: "customer".into(),
                    sql_type: "integer".into(),
                },
                KeyColumn {
                    name: "no".into(),
                    sql_type: "character varying(20)".into(),
                },
            ],
            estimated_rows: 1000.0,
            pages: 10.0,
        }
    }

    fn key(a: &str, b: &str) -> Key {
        vec![a.to_string(), b.to_string()]
    }

    #[test]
    fn ranges_bind_their_bounds_as_typed_parameters() {
        let table = orders();
        let range = Range {
            after: Some(key("1", "a")),
            through: Some(key("5", "x'y")),
        };
        let (sql, params) = table.range_statement(&range, Some("pg_current_wal_insert_lsn"));
        assert!(
            sql.contains(
                "FROM \"sales\".\"Orders\" r WHERE (r.\"customer\", r.\"no\") > \
                 ($1::text::integer, $2::text::character varying(20)) AND \
                 (r.\"customer\", r.\"no\") <= ($3::text::integer, $4::text::character varying(20))"
            ),
            "{sql}"
        );
        assert!(
            sql.contains(", pg_current_wal_insert_lsn()::text AS lsn"),
            "{sql}"
        );
        // Values travel as parameters, never inside the statement.
        assert!(!sql.contains("x'y"));
        assert_eq!(
            params,
            vec![
                Value::Text("1".into()),
                Value::Text("a".into()),
                Value::Text("5".into()),
                Value::Text("x'y".into())
            ]
        );
    }

    #[test]
    fn an_open_range_has_no_filter() {
        let (sql, params) = orders().range_statement(&Range::default(), None);
        assert!(!sql.contains("WHERE"), "{sql}");
        assert!(!sql.contains("lsn"), "{sql}");
        assert!(params.is_empty());
    }

    #[test]
    fn chunks_read_the_first_rows_in_key_order() {
        let range = Range {
            after: Some(key("1", "a")),
            through: None,
        };
        let (sql, params) = orders().chunk_statement(&range, 500);
        assert!(
            sql.contains("ORDER BY r.\"customer\", r.\"no\" LIMIT 500"),
            "{sql}"
        );
        assert!(
            sql.contains("last.k0::text AS key0, last.k1::text AS key1"),
            "{sql}"
        );
        assert!(sql.contains("ORDER BY k0 DESC, k1 DESC LIMIT 1"), "{sql}");
        assert_eq!(params.len(), 2);
    }

    #[test]
    fn ranges_and_keys_read_well() {
        let table = orders();
        assert_eq!(
            table.describe(&Range {
                after: Some(key("1", "a")),
                through: None
            }),
            "(customer, no) in ((1, a), end]"
        );
        let single = Table {
            key: vec![KeyColumn {
                name: "id".into(),
                sql_type: "bigint".into(),
            }],
            ..orders()
        };
        assert_eq!(
            single.describe(&Range {
                after: None,
                through: Some(vec!["200".into()])
            }),
            "id in [start, 200]"
        );
        assert_eq!(table.describe_key(&key("7", "b")), "customer=7, no=b");
    }

    #[test]
    fn only_tables_of_several_pages_are_sampled() {
        let small = Table {
            pages: 1.0,
            ..orders()
        };
        assert!(small.sample_statement().is_none());
        let (sql, params) = Table {
            pages: 1000.0,
            ..orders()
        }
        .sample_statement()
        .unwrap();
        assert!(sql.contains("TABLESAMPLE SYSTEM ($1) LIMIT 1"), "{sql}");
        assert_eq!(params, vec![Value::Float(0.2)]);
    }
}
