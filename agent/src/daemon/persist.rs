//! How a probe's state is journaled ([`crate::store::journal`]): a record
//! holds the state's small parts whole (trackers, flap window, last report
//! and run, onsets) and, of the history, only the entries added since the
//! probe's previous record, so a run adds a few hundred bytes to the
//! journal, not the whole 50-entry history.

use crate::policy::confirm::{Onsets, Tracker};
use crate::policy::flap::FlapDetector;
use crate::policy::state::{HISTORY, HistoryEntry, ProbeState};
use crate::report::Report;
use crate::store::journal::Journaled;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// A journal record as written (borrowing the state).
#[derive(Serialize)]
struct DeltaRef<'a> {
    seq: u64,
    own: &'a Tracker,
    rules: &'a BTreeMap<String, Tracker>,
    flap: &'a FlapDetector,
    history: Vec<&'a HistoryEntry>,
    last_report: &'a Option<Report>,
    last_run: Option<humantime_serde::Serde<SystemTime>>,
    onsets: &'a Onsets,
}

/// A journal record as read back.
#[derive(Deserialize)]
pub struct StateDelta {
    seq: u64,
    own: Tracker,
    #[serde(default)]
    rules: BTreeMap<String, Tracker>,
    flap: FlapDetector,
    history: Vec<HistoryEntry>,
    last_report: Option<Report>,
    #[serde(default, with = "humantime_serde")]
    last_run: Option<SystemTime>,
    #[serde(default)]
    onsets: Onsets,
}

impl Journaled for ProbeState {
    type Delta = StateDelta;

    fn seq(&self) -> u64 {
        self.seq
    }

    fn write_delta(&self, since: u64, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let added = usize::try_from(self.seq.saturating_sub(since))
            .unwrap_or(usize::MAX)
            .min(self.history.len());
        serde_json::to_writer(
            out,
            &DeltaRef {
                seq: self.seq,
                own: &self.own,
                rules: &self.rules,
                flap: &self.flap,
                history: self
                    .history
                    .iter()
                    .skip(self.history.len() - added)
                    .collect(),
                last_report: &self.last_report,
                last_run: self.last_run.map(Into::into),
                onsets: &self.onsets,
            },
        )
    }

    fn apply(&mut self, delta: StateDelta) {
        if delta.seq <= self.seq {
            return;
        }
        let added = usize::try_from(delta.seq - self.seq)
            .unwrap_or(usize::MAX)
            .min(delta.history.len());
        let skip = delta.history.len() - added;
        self.history.extend(delta.history.into_iter().skip(skip));
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        self.seq = delta.seq;
        self.own = delta.own;
        self.rules = delta.rules;
        self.flap = delta.flap;
        self.last_report = delta.last_report;
        self.last_run = delta.last_run;
        self.onsets = delta.onsets;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::journal::{Journal, record};

    fn run(state: &mut ProbeState, status: crate::report::Status) {
        state.seq += 1;
        state.own.current = status;
        state.history.push_back(HistoryEntry {
            at: SystemTime::now(),
            status,
            state_type: crate::policy::confirm::StateType::Hard,
        });
        while state.history.len() > HISTORY {
            state.history.pop_front();
        }
    }

    /// A state rebuilt from a snapshot and the journal equals the live
    /// one, whatever records the snapshot already holds (replays are
    /// no-ops), and a torn last line is skipped.
    #[test]
    fn snapshot_plus_journal_rebuilds_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut live = ProbeState::default();
        let mut journal = Journal::new(store.dir());
        let mut snapshot = BTreeMap::new();
        let mut since = 0;
        for i in 0..70 {
            let status = if i % 3 == 0 {
                crate::report::Status::Critical
            } else {
                crate::report::Status::Ok
            };
            run(&mut live, status);
            if i % 2 == 0 {
                let mut line = Vec::new();
                record(&mut line, "p", &live, since).unwrap();
                journal.append(&line).unwrap();
                since = live.seq;
            }
            if i == 40 {
                // A snapshot taken "ahead" of the journal's last record.
                snapshot.insert("p".to_string(), live.clone());
            }
        }
        journal.compact(&snapshot).unwrap();
        // Records after the snapshot, one of them already in it.
        let mut line = Vec::new();
        record(&mut line, "p", &live, 30).unwrap();
        journal.append(&line).unwrap();
        journal
            .append(b"{\"probe\":\"p\",\"delta\":{\"seq\":")
            .unwrap();
        let mut loaded: BTreeMap<String, ProbeState> = BTreeMap::new();
        let mut reopened = Journal::new(store.dir());
        reopened.load(&mut loaded);
        assert_eq!(loaded["p"], live);
        assert_eq!(loaded["p"].history.len(), HISTORY);
        // The torn line was cut off at load: what the restarted agent
        // appends next is read back, not glued to the fragment.
        run(&mut live, crate::report::Status::Critical);
        let mut line = Vec::new();
        record(&mut line, "p", &live, since).unwrap();
        reopened.append(&line).unwrap();
        let mut again: BTreeMap<String, ProbeState> = BTreeMap::new();
        Journal::new(store.dir()).load(&mut again);
        assert_eq!(again["p"], live);
    }
}
