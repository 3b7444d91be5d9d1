//! Running the constraint audits: one counting statement per rule, and,
//! when it finds violations, one more for a few examples.

use crate::rules::{Check, Rule};
use watchpost_probe::sql::ident::quote;
use watchpost_probe::sql::{self, Value};
use watchpost_probe::{Error, Result};

/// Examples of violating values named in the message, per rule.
const EXAMPLES: usize = 3;

/// What one rule found.
pub struct Finding {
    pub violations: u64,
    /// A few violating values (key tuples, out-of-range values).
    pub examples: Vec<String>,
}

/// Statements of a rule: one counting `violations`, one listing
/// `example`s (at most [`EXAMPLES`]), sharing parameters.
#[derive(Debug, PartialEq)]
pub struct Statements {
    pub count: String,
    pub examples: Option<String>,
    pub params: Vec<Value>,
}

fn columns(alias: &str, columns: &[String]) -> Vec<String> {
    columns
        .iter()
        .map(|c| format!("{alias}.{}", quote(c)))
        .collect()
}

fn all_set(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn as_text(columns: &[String]) -> String {
    let parts: Vec<String> = columns.iter().map(|c| format!("{c}::text")).collect();
    format!("concat_ws(', ', {})", parts.join(", "))
}

/// The statements for `rule`; `column_type` is the type of a range rule's
/// column (as `format_type` prints it), which its bounds are cast to.
pub fn statements(rule: &Rule, column_type: Option<&str>) -> Statements {
    match &rule.check {
        Check::Unique {
            table,
            columns: set,
        } => {
            let cols = columns("t", set).join(", ");
            let from = format!(
                "FROM {} t WHERE {} GROUP BY {cols} HAVING count(*) > 1",
                table.quoted(),
                all_set(&columns("t", set))
            );
            Statements {
                count: format!(
                    "SELECT coalesce(sum(n - 1), 0)::int8 AS violations FROM \
                     (SELECT count(*) AS n {from}) AS duplicates"
                ),
                examples: Some(format!(
                    "SELECT {} AS example {from} ORDER BY {cols} LIMIT {EXAMPLES}",
                    as_text(&columns("t", set))
                )),
                params: Vec::new(),
            }
        }
        Check::NotNull {
            table,
            columns: set,
        } => {
            let any_null: Vec<String> = columns("t", set)
                .iter()
                .map(|c| format!("{c} IS NULL"))
                .collect();
            Statements {
                count: format!(
                    "SELECT count(*) AS violations FROM {} t WHERE {}",
                    table.quoted(),
                    any_null.join(" OR ")
                ),
                examples: None,
                params: Vec::new(),
            }
        }
        Check::Range {
            table,
            column,
            low,
            high,
        } => {
            let column_sql = format!("t.{}", quote(column));
            let cast = column_type.unwrap_or("text");
            let mut params = Vec::new();
            let mut outside = Vec::new();
            if let Some(low) = low {
                params.push(Value::Text(low.clone()));
                outside.push(format!("{column_sql} < ${}::text::{cast}", params.len()));
            }
            if let Some(high) = high {
                params.push(Value::Text(high.clone()));
                outside.push(format!("{column_sql} > ${}::text::{cast}", params.len()));
            }
            let from = format!("FROM {} t WHERE {}", table.quoted(), outside.join(" OR "));
            Statements {
                count: format!("SELECT count(*) AS violations {from}"),
                examples: Some(format!(
                    "SELECT DISTINCT {column_sql}::text AS example {from} ORDER BY 1 LIMIT {EXAMPLES}"
                )),
                params,
            }
        }
        Check::Orphans {
            child,
            child_columns,
            parent,
            parent_columns,
        } => {
            let child_cols = columns("c", child_columns);
            let matches: Vec<String> = columns("p", parent_columns)
                .iter()
                .zip(&child_cols)
                .map(|(p, c)| format!("{p} = {c}"))
                .collect();
            let from = format!(
                "FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
                child.quoted(),
                all_set(&child_cols),
                parent.quoted(),
                matches.join(" AND ")
            );
            Statements {
                count: format!("SELECT count(*) AS violations {from}"),
                examples: Some(format!(
                    "SELECT DISTINCT {} AS example {from} ORDER BY 1 LIMIT {EXAMPLES}",
                    as_text(&child_cols)
                )),
                params: Vec::new(),
            }
        }
    }
}

/// The type of a range rule's column, read from the catalog.
fn range_column_type(target: &str, rule: &Rule) -> Result<Option<String>> {
    let Check::Range { table, column, .. } = &rule.check else {
        return Ok(None);
    };
    let rows = sql::query(
        target,
        "SELECT format_type(a.atttypid, a.atttypmod) AS column_type FROM pg_attribute a \
         WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 \
         AND NOT a.attisdropped",
        &[Value::Text(table.quoted()), Value::Text(column.clone())],
    )?;
    match rows.iter().next() {
        Some(row) => Ok(row.text("column_type")?.map(String::from)),
        None => Err(Error::msg(format!(
            "table {table} has no column {column} (or the table does not exist)"
        ))),
    }
}

/// Run one rule against `target`.
pub fn run(target: &str, rule: &Rule) -> Result<Finding> {
    let column_type = range_column_type(target, rule)?;
    let statements = statements(rule, column_type.as_deref());
    let counted = sql::query(target, &statements.count, &statements.params)?;
    let violations = counted.first()?.int("violations")?.unwrap_or(0).max(0) as u64;
    let mut examples = Vec::new();
    if let (true, Some(statement)) = (violations > 0, &statements.examples) {
        for row in sql::query(target, statement, &statements.params)?.iter() {
            examples.push(row.text("example")?.unwrap_or("NULL").to_string());
        }
    }
    Ok(Finding {
        violations,
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parse_all;

    fn rule(key: &str, value: &str) -> Rule {
        parse_all(&[(key.to_string(), value.to_string())])
            .unwrap()
            .remove(0)
    }

    #[test]
    fn unique_rules_count_the_extra_rows_of_each_duplicated_set() {
        let s = statements(&rule("unique.n", "sales.orders(customer_id, \"No\")"), None);
        assert_eq!(
            s.count,
            "SELECT coalesce(sum(n - 1), 0)::int8 AS violations FROM (SELECT count(*) AS n \
             FROM \"sales\".\"orders\" t WHERE t.\"customer_id\" IS NOT NULL AND t.\"No\" IS NOT NULL \
             GROUP BY t.\"customer_id\", t.\"No\" HAVING count(*) > 1) AS duplicates"
        );
        assert!(
            s.examples
                .unwrap()
                .contains("concat_ws(', ', t.\"customer_id\"::text, t.\"No\"::text)")
        );
    }

    #[test]
    fn range_bounds_are_parameters_cast_to_the_columns_type() {
        let s = statements(
            &rule("range.r", "orders(total) 0..1000"),
            Some("numeric(12,2)"),
        );
        assert_eq!(
            s.count,
            "SELECT count(*) AS violations FROM \"orders\" t WHERE \
             t.\"total\" < $1::text::numeric(12,2) OR t.\"total\" > $2::text::numeric(12,2)"
        );
        assert_eq!(
            s.params,
            vec![Value::Text("0".into()), Value::Text("1000".into())]
        );
        let open = statements(
            &rule("range.r", "orders(created) '2020-01-01'.."),
            Some("date"),
        );
        assert!(
            open.count.ends_with("WHERE t.\"created\" < $1::text::date"),
            "{}",
            open.count
        );
    }

    #[test]
    fn orphans_are_child_rows_without_a_parent() {
        let s = statements(&rule("orphans.o", "lines(order_id) -> orders(id)"), None);
        assert_eq!(
            s.count,
            "SELECT count(*) AS violations FROM \"lines\" c WHERE c.\"order_id\" IS NOT NULL AND \
             NOT EXISTS (SELECT 1 FROM \"orders\" p WHERE p.\"id\" = c.\"order_id\")"
        );
    }

    #[test]
    fn not_null_rules_count_rows_with_any_null() {
        let s = statements(&rule("not_null.x", "orders(a, b)"), None);
        assert_eq!(
            s.count,
            "SELECT count(*) AS violations FROM \"orders\" t WHERE t.\"a\" IS NULL OR t.\"b\" IS NULL"
        );
        assert_eq!(s.examples, None);
    }
}
