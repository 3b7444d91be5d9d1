//! Config errors with their place in the file: `FILE:LINE:COL: message`.
//!
//! Validation collects every error it finds instead of stopping at the
//! first, so that `watchpost validate` shows them all at once.

use std::fmt;
use std::ops::Range;

/// One error in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line; 0 when the error is about the whole file.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every error found in one config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// One error about a whole file (it cannot be read, say).
    pub fn whole_file(file: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigErrors(vec![Diagnostic {
            file: file.into(),
            line: 0,
            column: 0,
            message: message.into(),
        }])
    }
}

/// Collects diagnostics for one source text.
pub struct Diagnostics<'s> {
    file: String,
    text: &'s str,
    found: Vec<Diagnostic>,
}

impl<'s> Diagnostics<'s> {
    pub fn new(file: impl Into<String>, text: &'s str) -> Self {
        Diagnostics {
            file: file.into(),
            text,
            found: Vec::new(),
        }
    }

    /// Record an error at byte range `span` of the text.
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_column(self.text, span.start);
        self.found.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The errors, in the order of the file.
    pub fn into_errors(mut self) -> ConfigErrors {
        self.found.sort_by_key(|d| (d.line, d.column));
        self.found.dedup();
        ConfigErrors(self.found)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines_and_columns() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // `=` comes after `b`, a two-byte `é` and a space: column 4.
        assert_eq!(line_column(text, 10), (2, 4));
    }
}
