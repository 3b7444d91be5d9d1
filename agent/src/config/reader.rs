//! Typed reading of one TOML table with positions: each getter parses one
//! key, records a diagnostic naming the key if its value is wrong, and
//! remembers the key as known; [`Section::finish`] then reports every key
//! nobody asked for as unknown, with a "did you mean" suggestion.

use super::diagnostics::Diagnostics;
use super::keys::{self, Kind};
use super::units;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A value with the byte range it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub span: Range<usize>,
}

impl<T> At<T> {
    pub fn new(value: T, span: Range<usize>) -> Self {
        At { value, span }
    }
}

pub fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A table being read. `path` names it in messages, e.g. `[[probe]] "disk"`;
/// `doc` is the table of its keys' docs ([`keys`]), which each getter checks
/// its key against.
pub struct Section<'t, 'i> {
    pub path: String,
    table: &'t DeTable<'i>,
    pub span: Range<usize>,
    known: Vec<&'static str>,
    doc: &'static keys::Table,
}

impl<'t, 'i> Section<'t, 'i> {
    pub fn new(
        doc: &'static keys::Table,
        path: impl Into<String>,
        table: &'t DeTable<'i>,
        span: Range<usize>,
    ) -> Self {
        Section {
            path: path.into(),
            table,
            span,
            known: Vec::new(),
            doc,
        }
    }

    /// The doc of each entry of this table, for tables keyed by names the
    /// user chooses (`[targets.NAME]`).
    pub fn entry_doc(&self) -> &'static keys::Table {
        self.doc.entries.unwrap_or(&keys::UNDOCUMENTED)
    }

    /// The doc of the value of `key`, for a table or array of tables read
    /// by hand (not through [`Section::table`]).
    pub fn doc_of(&self, key: &str) -> &'static keys::Table {
        self.doc
            .key(key)
            .and_then(|k| k.table)
            .unwrap_or(&keys::UNDOCUMENTED)
    }

    /// The raw value of `key`, marking the key as known.
    pub fn raw(&mut self, key: &'static str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.lookup(key, None)
    }

    /// The raw value of `key` read as `kind`, marking the key as known and
    /// checking it against its doc.
    fn lookup(
        &mut self,
        key: &'static str,
        kind: Option<Kind>,
    ) -> Option<&'t Spanned<DeValue<'i>>> {
        self.known.push(key);
        keys::asked(self.doc, key, kind);
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    /// Whether `key` is present (marks it known).
    pub fn has(&mut self, key: &'static str) -> bool {
        self.raw(key).is_some()
    }

    fn wrong_type(
        &self,
        d: &mut Diagnostics,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        expected: &str,
    ) {
        d.error(
            value.span(),
            format!(
                "{}: `{key}` is {}, expected {expected}",
                self.path,
                type_name(value.get_ref())
            ),
        );
    }

    pub fn string(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<At<String>> {
        let value = self.lookup(key, Some(Kind::String))?;
        match value.get_ref() {
            DeValue::String(s) => Some(At::new(s.to_string(), value.span())),
            _ => {
                self.wrong_type(d, key, value, "a string");
                None
            }
        }
    }

    /// A required string; a diagnostic at the table if it is missing.
    pub fn required_string(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
        example: &str,
    ) -> Option<At<String>> {
        if !self.has(key) {
            d.error(
                self.span.clone(),
                format!(
                    "{}: `{key}` is missing; add e.g. `{key} = {example}`",
                    self.path
                ),
            );
            return None;
        }
        self.string(d, key)
    }

    pub fn bool(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<bool> {
        let value = self.lookup(key, Some(Kind::Bool))?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(d, key, value, "true or false");
                None
            }
        }
    }

    /// A non-negative integer no larger than `max`.
    pub fn integer(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
        min: u64,
        max: u64,
    ) -> Option<At<u64>> {
        let value = self.lookup(key, Some(Kind::Integer { min, max }))?;
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => {
                self.wrong_type(d, key, value, "an integer");
                return None;
            }
        };
        match parsed {
            Some(n) if n >= min as i64 && (n as u64) <= max => {
                Some(At::new(n as u64, value.span()))
            }
            _ => {
                d.error(
                    value.span(),
                    format!(
                        "{}: `{key}` must be a whole number from {min} to {max}",
                        self.path
                    ),
                );
                None
            }
        }
    }

    /// A number (integer or float).
    pub fn number(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<At<f64>> {
        let value = self.lookup(key, Some(Kind::Number))?;
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
            _ => {
                self.wrong_type(d, key, value, "a number");
                return None;
            }
        };
        match parsed {
            Some(n) if f64::is_finite(n) => Some(At::new(n, value.span())),
            _ => {
                d.error(
                    value.span(),
                    format!("{}: `{key}` must be a finite number", self.path),
                );
                None
            }
        }
    }

    /// A string holding a value of `kind` (a duration, a size).
    fn text(&mut self, d: &mut Diagnostics, key: &'static str, kind: Kind) -> Option<At<String>> {
        let value = self.lookup(key, Some(kind))?;
        match value.get_ref() {
            DeValue::String(s) => Some(At::new(s.to_string(), value.span())),
            _ => {
                self.wrong_type(d, key, value, "a string");
                None
            }
        }
    }

    /// A duration within `range`: a malformed one says how to write one,
    /// one out of range says which range (see [`units`]).
    pub fn duration(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
        range: units::DurationRange,
    ) -> Option<At<Duration>> {
        let text = self.text(d, key, Kind::Duration(range))?;
        match range.parse(&text.value) {
            Ok(duration) => Some(At::new(duration, text.span)),
            Err(problem) => {
                d.error(
                    text.span,
                    format!("{}: `{key}` = {:?} is {problem}", self.path, text.value),
                );
                None
            }
        }
    }

    /// A size within `range` (see [`units`]).
    pub fn size(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
        range: units::SizeRange,
    ) -> Option<At<u64>> {
        let text = self.text(d, key, Kind::Size(range))?;
        match range.parse(&text.value) {
            Ok(size) => Some(At::new(size, text.span)),
            Err(problem) => {
                d.error(
                    text.span,
                    format!("{}: `{key}` = {:?} is {problem}", self.path, text.value),
                );
                None
            }
        }
    }

    /// An array of strings.
    pub fn string_list(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
    ) -> Option<Vec<At<String>>> {
        let value = self.lookup(key, Some(Kind::Strings))?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(d, key, value, "an array of strings, e.g. [\"a\", \"b\"]");
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(At::new(s.to_string(), item.span())),
                _ => d.error(
                    item.span(),
                    format!(
                        "{}: `{key}` must hold only strings, found {}",
                        self.path,
                        type_name(item.get_ref())
                    ),
                ),
            }
        }
        Some(out)
    }

    /// A sub-table, as a section of its own.
    pub fn table(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<Section<'t, 'i>> {
        let value = self.lookup(key, Some(Kind::Table))?;
        match value.get_ref() {
            DeValue::Table(t) => Some(Section::new(
                self.doc_of(key),
                format!("{}.{key}", self.path),
                t,
                value.span(),
            )),
            _ => {
                self.wrong_type(d, key, value, "a table");
                None
            }
        }
    }

    /// A table of scalars (strings, numbers, booleans), as strings.
    pub fn string_map(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
    ) -> Option<BTreeMap<String, At<String>>> {
        let value = self.lookup(key, Some(Kind::Map))?;
        let DeValue::Table(table) = value.get_ref() else {
            self.wrong_type(d, key, value, "a table, e.g. { key = \"value\" }");
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, v) in table.iter() {
            let text = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(i) => i.to_string(),
                DeValue::Float(f) => f.to_string(),
                DeValue::Boolean(b) => b.to_string(),
                other => {
                    d.error(
                        v.span(),
                        format!(
                            "{}: `{key}.{}` is {}, expected a string, number or boolean",
                            self.path,
                            k.get_ref(),
                            type_name(other)
                        ),
                    );
                    continue;
                }
            };
            out.insert(k.get_ref().to_string(), At::new(text, v.span()));
        }
        Some(out)
    }

    /// The entries of this table (for tables keyed by user names).
    pub fn entries(
        &self,
    ) -> impl Iterator<
        Item = (
            &'t Spanned<std::borrow::Cow<'i, str>>,
            &'t Spanned<DeValue<'i>>,
        ),
    > {
        self.table.iter()
    }

    /// Report every key that no getter asked for.
    pub fn finish(self, d: &mut Diagnostics) {
        for (key, _) in self.table.iter() {
            let name = key.get_ref().as_ref();
            if self.known.contains(&name) {
                continue;
            }
            let suggestion = closest(name, &self.known)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            let mut known: Vec<&str> = self.known.clone();
            known.sort_unstable();
            known.dedup();
            d.error(
                key.span(),
                format!(
                    "{}: unknown key `{name}`; {suggestion}known keys: {}",
                    self.path,
                    known.join(", ")
                ),
            );
        }
    }
}

/// The known key closest to `name`, if it is a plausible typo.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_suggestions() {
        assert_eq!(
            closest("tiemout", &["timeout", "every", "memory"]),
            Some("timeout")
        );
        assert_eq!(closest("colour", &["timeout", "every"]), None);
    }
}
