//! Names from config put into SQL safely.
//!
//! Probes take table and column names from their config and must build
//! statements with them (identifiers cannot be bound as `$1` parameters).
//! [`Cursor`] reads names the way PostgreSQL does — a bare name has its
//! ASCII letters folded to lower case and every other character kept (as
//! the server does in a multibyte encoding such as UTF-8: `ÄRGER` is
//! `Ärger`), a `"double-quoted"` one is kept exactly, `schema.table` is
//! qualified — and [`quote`] writes every identifier double-quoted with
//! embedded quotes doubled, so nothing in a config value can change the
//! statement around it.

use std::fmt;

/// `ident` as a double-quoted SQL identifier: `a"b` becomes `"a""b"`.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `ident` as the user would write it: bare when PostgreSQL would read it
/// back unchanged, double-quoted otherwise.
pub fn display(ident: &str) -> String {
    let bare = ident
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if bare {
        ident.to_string()
    } else {
        quote(ident)
    }
}

/// A possibly schema-qualified name, e.g. `sales.orders`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Name {
    /// The schema, if the name is qualified.
    pub schema: Option<String>,
    pub name: String,
}

impl Name {
    /// Parse a whole string as one name (`orders`, `sales."Order Lines"`).
    pub fn parse(text: &str) -> Result<Name, String> {
        let mut cursor = Cursor::new(text);
        let name = cursor.name()?;
        cursor.end()?;
        Ok(name)
    }

    /// A name in `schema`.
    pub fn qualified(schema: &str, name: &str) -> Name {
        Name {
            schema: Some(schema.to_string()),
            name: name.to_string(),
        }
    }

    /// The name quoted for a statement: `"sales"."orders"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(&self.name)),
            None => quote(&self.name),
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{}.", display(schema))?;
        }
        f.write_str(&display(&self.name))
    }
}

/// Parse a comma-separated list of names (commas inside quotes allowed).
pub fn parse_names(text: &str) -> Result<Vec<Name>, String> {
    let mut cursor = Cursor::new(text);
    let mut names = Vec::new();
    if cursor.at_end() {
        return Ok(names);
    }
    loop {
        names.push(cursor.name()?);
        if cursor.at_end() {
            return Ok(names);
        }
        cursor.expect(",")?;
    }
}

/// A scanner over a config value that reads identifiers, names and
/// punctuation, skipping white space. Errors say what was expected where.
pub struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a str) -> Self {
        Cursor { text, position: 0 }
    }

    fn skip_space(&mut self) {
        let rest = &self.text[self.position..];
        self.position += rest.len() - rest.trim_start().len();
    }

    /// What is left, white space skipped.
    pub fn rest(&mut self) -> &'a str {
        self.skip_space();
        &self.text[self.position..]
    }

    /// True when only white space is left.
    pub fn at_end(&mut self) -> bool {
        self.rest().is_empty()
    }

    /// An error unless only white space is left.
    pub fn end(&mut self) -> Result<(), String> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected("the end"))
        }
    }

    fn unexpected(&mut self, expected: &str) -> String {
        let rest = self.rest();
        if rest.is_empty() {
            format!("expected {expected} at the end of {:?}", self.text)
        } else {
            format!("expected {expected} at {rest:?} in {:?}", self.text)
        }
    }

    /// Consume `token` if it comes next.
    pub fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.position += token.len();
            true
        } else {
            false
        }
    }

    /// Consume `token`, or fail saying it was expected.
    pub fn expect(&mut self, token: &str) -> Result<(), String> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{token}`")))
        }
    }

    /// One identifier: bare (folded to lower case) or double-quoted.
    pub fn ident(&mut self) -> Result<String, String> {
        let rest = self.rest();
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut ident = String::new();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                if c != '"' {
                    ident.push(c);
                    continue;
                }
                if quoted[i + 1..].starts_with('"') {
                    ident.push('"');
                    chars.next();
                    continue;
                }
                if ident.is_empty() {
                    return Err(format!("an empty quoted name in {:?}", self.text));
                }
                self.position += 1 + i + 1;
                return Ok(ident);
            }
            return Err(format!("a quoted name is not closed in {:?}", self.text));
        }
        // The scanner's rules: a letter, `_` or any non-ASCII character
        // starts a name; digits and `$` may follow.
        let starts_ok = rest
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii());
        if !starts_ok {
            return Err(self.unexpected("a name"));
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()))
            .unwrap_or(rest.len());
        self.position += end;
        // `downcase_identifier`: only ASCII letters fold in a multibyte
        // encoding; `Ä` stays `Ä`.
        Ok(rest[..end].to_ascii_lowercase())
    }

    /// A name, `schema.name` or `name`.
    pub fn name(&mut self) -> Result<Name, String> {
        let first = self.ident()?;
        if self.eat(".") {
            let second = self.ident()?;
            return Ok(Name::qualified(&first, &second));
        }
        Ok(Name {
            schema: None,
            name: first,
        })
    }

    /// A parenthesised, comma-separated list of at least one identifier:
    /// `(customer_id, "Number")`.
    pub fn columns(&mut self) -> Result<Vec<String>, String> {
        self.expect("(")?;
        let mut columns = vec![self.ident()?];
        while self.eat(",") {
            columns.push(self.ident()?);
        }
        self.expect(")")?;
        Ok(columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_embedded_quotes() {
        assert_eq!(quote("orders"), "\"orders\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote("x\"; DROP TABLE y; --"),
            "\"x\"\"; DROP TABLE y; --\""
        );
    }

    #[test]
    fn names_read_like_postgres_reads_them() {
        assert_eq!(
            Name::parse("Orders").unwrap(),
            Name {
                schema: None,
                name: "orders".into()
            }
        );
        assert_eq!(
            Name::parse(" sales.\"Order Lines\" ").unwrap(),
            Name::qualified("sales", "Order Lines")
        );
        assert_eq!(Name::parse("\"a\"\"b\"").unwrap().name, "a\"b");
        assert_eq!(
            Name::parse("sales.\"Order Lines\"").unwrap().quoted(),
            "\"sales\".\"Order Lines\""
        );
        assert_eq!(
            Name::parse("sales.\"Order Lines\"").unwrap().to_string(),
            "sales.\"Order Lines\""
        );
        // Only ASCII letters fold, as in a UTF-8 database.
        assert_eq!(Name::parse("ÄRGER").unwrap().name, "Ärger");
        assert_eq!(
            Name::parse("Straße.İD").unwrap(),
            Name::qualified("straße", "İd")
        );
        assert_eq!(Name::parse("\"ÄRGER\"").unwrap().name, "ÄRGER");
        assert_eq!(Name::parse("Ärger").unwrap().to_string(), "\"Ärger\"");
        for bad in ["", "1abc", "a b", "\"open", "\"\"", "a.", "a;b"] {
            assert!(Name::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn lists_of_names_allow_commas_inside_quotes() {
        let names = parse_names("orders, \"a,b\" , s.t").unwrap();
        assert_eq!(
            names,
            vec![
                Name {
                    schema: None,
                    name: "orders".into()
                },
                Name {
                    schema: None,
                    name: "a,b".into()
                },
                Name::qualified("s", "t"),
            ]
        );
        assert_eq!(parse_names("  ").unwrap(), vec![]);
        assert!(parse_names("a,,b").is_err());
    }

    #[test]
    fn column_lists_need_parentheses_and_names() {
        let mut cursor = Cursor::new("(customer_id, \"Number\") rest");
        assert_eq!(cursor.columns().unwrap(), vec!["customer_id", "Number"]);
        assert_eq!(cursor.rest(), "rest");
        assert!(Cursor::new("()").columns().is_err());
        assert!(Cursor::new("(a,)").columns().is_err());
        assert!(Cursor::new("(a").columns().is_err());
    }
}
