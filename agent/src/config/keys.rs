//! The config's keys as data: each parse module owns a [`Table`] per
//! section it reads, one [`Key`] per key beside the code that parses it,
//! with its type, default, unit, allowed range and a one-line doc.
//!
//! The parser checks itself against these tables: every getter of
//! [`super::reader::Section`] looks its key up in the section's table, and
//! under [`recording`] notes a key that has no doc, or whose documented
//! kind (and range) differs from what the getter parses. The reference
//! (`watchpost config reference`, a page of the manual) is printed from the
//! same tables by [`super::reference`], so that it cannot drift.
//!
//! To document a new key: add a `key(...)` line to the [`Table`] of its
//! section, in the file whose parser reads it (e.g. `[cluster]`'s table is
//! `parse/cluster.rs`'s `CLUSTER`). `config::keys_tests` fails until you do.

use super::units::{DurationRange, SizeRange};
use std::cell::RefCell;

/// What a key's value is, with the bounds the parser enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Bool,
    /// A whole number within `min..=max`.
    Integer {
        min: u64,
        max: u64,
    },
    /// A finite number (integer or float).
    Number,
    /// A duration string (`"5s"`) within the range.
    Duration(DurationRange),
    /// A size string (`"32MiB"`) within the range, in bytes.
    Size(SizeRange),
    /// An array of strings.
    Strings,
    /// A table of scalar values keyed by names the user chooses.
    Map,
    /// A sub-table (see the key's [`Key::table`]).
    Table,
    /// An array of tables (see the key's [`Key::table`]).
    Tables,
    /// One of several shapes, told in the key's doc.
    Shapes(&'static str),
}

/// One key's documentation.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    /// The default as a user would write it, or `"required"`, or `"none"`.
    pub default: &'static str,
    /// The unit of a plain number (`"bytes"`, `"%"`); empty if none.
    pub unit: &'static str,
    /// One line: what the key does.
    pub doc: &'static str,
    /// The table describing the key's value, for tables and arrays of them.
    pub table: Option<&'static Table>,
}

/// A key's documentation: `name`, `kind`, `default` (as written in TOML,
/// or "required"/"none") and a one-line `doc`.
pub const fn key(name: &'static str, kind: Kind, default: &'static str, doc: &'static str) -> Key {
    Key {
        name,
        kind,
        default,
        unit: "",
        doc,
        table: None,
    }
}

impl Key {
    /// The same key with the unit of its plain number.
    pub const fn unit(self, unit: &'static str) -> Key {
        Key { unit, ..self }
    }

    /// The same key, whose value `table` describes.
    pub const fn of(self, table: &'static Table) -> Key {
        Key {
            table: Some(table),
            ..self
        }
    }
}

/// One section of the config: its `heading` as the reference prints it
/// (e.g. `[agent]`), a paragraph of `doc`, its fixed `keys`, and for a
/// table keyed by names the user chooses (`[targets.NAME]`), the table
/// each entry is.
#[derive(Debug)]
pub struct Table {
    pub heading: &'static str,
    pub doc: &'static str,
    pub keys: &'static [Key],
    pub entries: Option<&'static Table>,
}

impl Table {
    /// The doc of `name`, if the table documents it.
    pub fn key(&self, name: &str) -> Option<&'static Key> {
        self.keys.iter().find(|k| k.name == name)
    }
}

/// The table of a section nobody documented: every key asked of it is
/// recorded as undocumented.
pub static UNDOCUMENTED: Table = Table {
    heading: "(undocumented table)",
    doc: "",
    keys: &[],
    entries: None,
};

/// What the parser noticed about its own tables while [`recording`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// `(heading, key)` of every documented key the parser asked for.
    pub asked: Vec<(&'static str, &'static str)>,
    /// `heading: key` of keys asked for without a doc.
    pub undocumented: Vec<String>,
    /// Keys whose documented kind differs from the one parsed.
    pub mismatched: Vec<String>,
}

thread_local! {
    static RECORDING: RefCell<Option<Findings>> = const { RefCell::new(None) };
}

/// Run `f` (a parse), noting on this thread what the parser asked of its
/// key tables.
pub fn recording<T>(f: impl FnOnce() -> T) -> (T, Findings) {
    RECORDING.with(|r| *r.borrow_mut() = Some(Findings::default()));
    let out = f();
    let findings = RECORDING
        .with(|r| r.borrow_mut().take())
        .unwrap_or_default();
    (out, findings)
}

/// Called by the reader for each key asked of `table`; `parsed` is the
/// kind the getter reads (None: any, e.g. a presence test).
pub(super) fn asked(table: &'static Table, name: &'static str, parsed: Option<Kind>) {
    RECORDING.with(|r| {
        let mut r = r.borrow_mut();
        let Some(findings) = r.as_mut() else {
            return;
        };
        match table.key(name) {
            None => findings
                .undocumented
                .push(format!("{}: `{name}`", table.heading)),
            Some(doc) => {
                findings.asked.push((table.heading, name));
                if let Some(parsed) = parsed
                    && !same_shape(doc.kind, parsed)
                {
                    findings.mismatched.push(format!(
                        "{}: `{name}` is documented as {:?} but parsed as {parsed:?}",
                        table.heading, doc.kind
                    ));
                }
            }
        }
    });
}

/// Whether a documented kind fits the one parsed (a [`Kind::Shapes`] key
/// may be read in any of its shapes).
fn same_shape(documented: Kind, parsed: Kind) -> bool {
    matches!(documented, Kind::Shapes(_)) || documented == parsed
}
