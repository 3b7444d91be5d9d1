//! Constraint audits declared in the probe's config, one key per rule:
//!
//! ```toml
//! config = {
//!   "unique.order_numbers" = "orders(customer_id, number)",
//!   "not_null.totals"      = "orders(total, customer_id)",
//!   "range.totals"         = "orders(total) 0..1000000",
//!   "range.dates"          = "orders(created) '2020-01-01'..",
//!   "orphans.lines"        = "order_lines(order_id) -> orders(id)",
//! }
//! ```
//!
//! - `unique.NAME = "TABLE(COLUMN, ...)"`: no two rows share the column set
//!   (rows with a NULL in it are left out, as a unique index does).
//! - `not_null.NAME = "TABLE(COLUMN, ...)"`: none of the columns is NULL.
//! - `range.NAME = "TABLE(COLUMN) LOW..HIGH"`: the column is between the
//!   bounds, both inclusive; either may be left out (`0..`, `..100`). A
//!   bound is a number or a single-quoted value (`'2020-01-01'`, quotes
//!   doubled inside) read as the column's type. NULLs are not checked here.
//! - `orphans.NAME = "CHILD(COLUMN, ...) -> PARENT(COLUMN, ...)"`: every
//!   child row whose columns are all set has a parent row with those values.
//!
//! Tables may be schema-qualified; names follow SQL rules (bare names are
//! folded to lower case, `"Quoted"` names are kept as written).

use watchpost_probe::sql::ident::{Cursor, Name};

/// Config key prefixes of the rule kinds.
pub const PREFIXES: [&str; 4] = ["unique.", "not_null.", "range.", "orphans."];

/// One audit rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The config key, e.g. `unique.order_numbers` (the measurement's `rule`).
    pub key: String,
    pub check: Check,
}

/// What a rule checks.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    Unique {
        table: Name,
        columns: Vec<String>,
    },
    NotNull {
        table: Name,
        columns: Vec<String>,
    },
    Range {
        table: Name,
        column: String,
        low: Option<String>,
        high: Option<String>,
    },
    Orphans {
        child: Name,
        child_columns: Vec<String>,
        parent: Name,
        parent_columns: Vec<String>,
    },
}

/// The rules among the config entries (other keys are ignored); an error
/// names the key and says what is wrong with its value.
pub fn parse_all(entries: &[(String, String)]) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    for (key, value) in entries {
        let Some(prefix) = PREFIXES.iter().find(|p| key.starts_with(*p)) else {
            continue;
        };
        if key.len() == prefix.len() {
            return Err(format!(
                "config `{key}`: give the rule a name, e.g. `{prefix}orders`"
            ));
        }
        let check = parse(prefix, value)
            .map_err(|e| format!("config `{key}` = {value:?}: {e}; {}", example(prefix)))?;
        rules.push(Rule {
            key: key.clone(),
            check,
        });
    }
    Ok(rules)
}

fn example(prefix: &str) -> &'static str {
    match prefix {
        "unique." => "expected e.g. \"orders(customer_id, number)\"",
        "not_null." => "expected e.g. \"orders(total)\"",
        "range." => {
            "expected e.g. \"orders(total) 0..1000000\" or \"orders(created) '2020-01-01'..\""
        }
        _ => "expected e.g. \"order_lines(order_id) -> orders(id)\"",
    }
}

fn parse(prefix: &str, value: &str) -> Result<Check, String> {
    let mut cursor = Cursor::new(value);
    let table = cursor.name()?;
    let columns = cursor.columns()?;
    let check = match prefix {
        "unique." => Check::Unique { table, columns },
        "not_null." => Check::NotNull { table, columns },
        "range." => {
            let [column] = <[String; 1]>::try_from(columns)
                .map_err(|_| "a range applies to one column".to_string())?;
            let low = bound(&mut cursor)?;
            cursor.expect("..")?;
            let high = bound(&mut cursor)?;
            if low.is_none() && high.is_none() {
                return Err("give at least one bound".into());
            }
            Check::Range {
                table,
                column,
                low,
                high,
            }
        }
        _ => {
            cursor.expect("->")?;
            let parent = cursor.name()?;
            let parent_columns = cursor.columns()?;
            if parent_columns.len() != columns.len() {
                return Err(format!(
                    "{} child columns but {} parent columns",
                    columns.len(),
                    parent_columns.len()
                ));
            }
            Check::Orphans {
                child: table,
                child_columns: columns,
                parent,
                parent_columns,
            }
        }
    };
    cursor.end()?;
    Ok(check)
}

/// An optional range bound: a number or a single-quoted value.
fn bound(cursor: &mut Cursor<'_>) -> Result<Option<String>, String> {
    let rest = cursor.rest();
    if let Some(quoted) = rest.strip_prefix('\'') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\'' {
                value.push(c);
            } else if quoted[i + 1..].starts_with('\'') {
                value.push('\'');
                chars.next();
            } else {
                cursor.eat(&rest[..i + 2]);
                return Ok(Some(value));
            }
        }
        return Err("a quoted bound is not closed".into());
    }
    let number = number_prefix(rest);
    if number.is_empty() {
        return Ok(None);
    }
    if number.parse::<f64>().is_err() {
        return Err(format!(
            "{number:?} is not a number (quote other values: '...')"
        ));
    }
    cursor.eat(number);
    Ok(Some(number.to_string()))
}

/// The longest prefix of `text` shaped like a number: sign, digits, a
/// fraction (a `.` followed by a digit, so `0..9` stops at `0`), exponent.
fn number_prefix(text: &str) -> &str {
    let bytes = text.as_bytes();
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut end = usize::from(matches!(bytes.first(), Some(b'-' | b'+')));
    end = digits(end);
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits(end + 1);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exponent = end + 1;
        if matches!(bytes.get(exponent), Some(b'-' | b'+')) {
            exponent += 1;
        }
        if bytes.get(exponent).is_some_and(u8::is_ascii_digit) {
            end = digits(exponent);
        }
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pairs: &[(&str, &str)]) -> Result<Vec<Rule>, String> {
        let entries: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_all(&entries)
    }

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn cols(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_kind_of_rule_parses() {
        let parsed = rules(&[
            ("target", "primary"),
            ("unique.numbers", "sales.Orders(customer_id, \"Number\")"),
            ("not_null.totals", "orders(total)"),
            ("range.totals", "orders(total) -5.5..1e6"),
            ("range.dates", "orders(created) '2020-01-01'.."),
            ("range.small", "orders(qty) ..10"),
            ("orphans.lines", "order_lines(order_id) -> orders(id)"),
        ])
        .unwrap();
        let checks: Vec<Check> = parsed.into_iter().map(|r| r.check).collect();
        assert_eq!(
            checks,
            vec![
                Check::Unique {
                    table: name("sales.orders"),
                    columns: cols(&["customer_id", "Number"])
                },
                Check::NotNull {
                    table: name("orders"),
                    columns: cols(&["total"])
                },
                Check::Range {
                    table: name("orders"),
                    column: "total".into(),
                    low: Some("-5.5".into()),
                    high: Some("1e6".into())
                },
                Check::Range {
                    table: name("orders"),
                    column: "created".into(),
                    low: Some("2020-01-01".into()),
                    high: None
                },
                Check::Range {
                    table: name("orders"),
                    column: "qty".into(),
                    low: None,
                    high: Some("10".into())
                },
                Check::Orphans {
                    child: name("order_lines"),
                    child_columns: cols(&["order_id"]),
                    parent: name("orders"),
                    parent_columns: cols(&["id"])
                },
            ]
        );
    }

    #[test]
    fn integer_ranges_split_at_the_dots() {
        let parsed = rules(&[("range.r", "t(c) 0..1000000")]).unwrap();
        assert_eq!(
            parsed[0].check,
            Check::Range {
                table: name("t"),
                column: "c".into(),
                low: Some("0".into()),
                high: Some("1000000".into())
            }
        );
        let quoted = rules(&[("range.q", "t(c) 'it''s'..'z'")]).unwrap();
        assert_eq!(
            quoted[0].check,
            Check::Range {
                table: name("t"),
                column: "c".into(),
                low: Some("it's".into()),
                high: Some("z".into())
            }
        );
    }

    #[test]
    fn bad_rules_say_which_key_and_what_is_expected() {
        for (key, value, says) in [
            ("unique.x", "orders", "expected `(`"),
            ("unique.x", "orders()", "expected a name"),
            ("range.x", "orders(a, b) 0..1", "one column"),
            ("range.x", "orders(a) ..", "at least one bound"),
            ("range.x", "orders(a) abc..1", "expected `..`"),
            ("range.x", "orders(a) 1..2 extra", "expected the end"),
            ("orphans.x", "lines(a) orders(id)", "expected `->`"),
            (
                "orphans.x",
                "lines(a, b) -> orders(id)",
                "2 child columns but 1 parent columns",
            ),
            ("not_null.x", "orders(a); DROP TABLE t", "expected the end"),
            ("unique.", "orders(a)", "give the rule a name"),
        ] {
            let error = rules(&[(key, value)]).unwrap_err();
            assert!(error.contains(&format!("config `{key}`")), "{error}");
            assert!(error.contains(says), "{value}: {error}");
        }
    }
}
