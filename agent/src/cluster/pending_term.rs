//! The record of a term taken and not opened yet (`state_dir/cluster-term`,
//! [`super::pending`]): the `timeline` key it replaced, the one it wrote,
//! and whether the promotion was asked; its text, and reading it back.

use super::member::LeaderTimeline;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The record's file name, beside the former leader's marker.
pub const FILE: &str = "cluster-term";

/// A term taken and not opened yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingTerm {
    /// The `timeline` key before this term (`None`: absent).
    pub before: Option<LeaderTimeline>,
    /// The `timeline` key this term wrote (`None`: none written).
    pub ours: Option<LeaderTimeline>,
    /// The promotion was asked: the term may have opened.
    pub asked: bool,
}

/// The record as written (terms as their key text).
#[derive(Serialize, Deserialize)]
struct Record {
    before: Option<String>,
    ours: Option<String>,
    asked: bool,
}

impl PendingTerm {
    /// The record's text.
    pub fn text(&self) -> String {
        let record = Record {
            before: self.before.as_ref().map(LeaderTimeline::text),
            ours: self.ours.as_ref().map(LeaderTimeline::text),
            asked: self.asked,
        };
        serde_json::to_string(&record).unwrap_or_default()
    }

    /// A record's text parsed; `None` when it does not parse (a term in it
    /// that does not parse counts as the whole record unreadable).
    pub fn parse(text: &str) -> Option<PendingTerm> {
        let record: Record = serde_json::from_str(text).ok()?;
        let term = |t: Option<String>| match t {
            None => Some(None),
            Some(t) => LeaderTimeline::parse(&t).map(Some),
        };
        Some(PendingTerm {
            before: term(record.before)?,
            ours: term(record.ours)?,
            asked: record.asked,
        })
    }

    /// What a restarted agent finds in `dir` (the state directory):
    /// `Ok(None)` when no term is pending, `Err` (why) when the record
    /// cannot be read or parsed.
    pub fn load(dir: &Path) -> Result<Option<PendingTerm>, String> {
        let shown = dir.join(FILE);
        let bytes = crate::safefs::OwnedDir::open(dir)
            .and_then(|d| d.read(FILE, 4096))
            .map_err(|e| format!("cannot read {}: {e}", shown.display()))?;
        match bytes {
            None => Ok(None),
            Some(bytes) => PendingTerm::parse(&String::from_utf8_lossy(&bytes))
                .map(Some)
                .ok_or_else(|| format!("{} does not parse", shown.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_terms_record_reads_back_as_written() {
        let term = |text: &str| LeaderTimeline::parse(text);
        let table = [
            PendingTerm {
                before: term("1:0:m1"),
                ours: term("2:1000:m0"),
                asked: false,
            },
            PendingTerm {
                before: None,
                ours: term("2::m0"),
                asked: true,
            },
            PendingTerm::default(),
        ];
        for pending in table {
            assert_eq!(PendingTerm::parse(&pending.text()), Some(pending.clone()));
        }
        for broken in ["", "{}", r#"{"before":"x","ours":null,"asked":false}"#] {
            assert_eq!(PendingTerm::parse(broken), None, "{broken}");
        }
    }

    #[test]
    fn a_record_that_cannot_be_read_is_an_error_not_an_absence() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(PendingTerm::load(dir.path()), Ok(None));
        std::fs::write(dir.path().join(FILE), "not json").unwrap();
        let why = PendingTerm::load(dir.path()).unwrap_err();
        assert!(why.contains("does not parse"), "{why}");
    }
}
