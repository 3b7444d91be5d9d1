//! Walking a table chunk by chunk and comparing each chunk on both sides.
//!
//! The walk starts after a start key (or at the first key) and goes to the
//! end of the table, then from the first key through the start key, so the
//! chunks' ranges `(after, through]` follow each other with no gap and
//! cover every key either side holds. A chunk ends `rows_per_chunk` rows
//! after its lower bound on the primary, or at the end of its segment when
//! fewer rows are left (so rows that exist only on the standby, past the
//! primary's last key, are compared too).
//!
//! Each chunk is first read on the standby as it is: equal digests mean
//! equal rows whenever they were read, so most chunks need no waiting. A
//! chunk whose digests differ is checked again before it counts: hash the
//! range on the primary, on the standby once it has replayed past the
//! primary's WAL position, and on the primary again. A mismatch is
//! confirmed only when the primary's rows did not change around the
//! standby's read; a range that keeps changing is left unsettled (busy
//! rows, not a finding).

use crate::chunks::{Key, Range};
use crate::lsn::Lsn;
use watchpost_probe::Result;

/// How often a differing chunk is hashed again before giving up on it.
const RECHECKS: usize = 3;

/// A range's rows as one value: equal digests, equal rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    pub rows: u64,
    /// The sum of the row hashes (`None` for no rows).
    pub hash: Option<String>,
}

/// The first rows of a range on the primary.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub digest: Digest,
    /// The last of those rows' key (`None` when there were none).
    pub last: Option<Key>,
}

/// What the walk reads from the two databases.
pub trait Source {
    /// The first `limit` rows of `range` on the primary.
    fn primary_chunk(&mut self, range: &Range, limit: usize) -> Result<Chunk>;
    /// Every row of `range` on the primary, and the WAL position after.
    fn primary_range(&mut self, range: &Range) -> Result<(Digest, Lsn)>;
    /// Every row of `range` on the standby, read once it has replayed past
    /// `lsn` (at once for `None`); `None` when it did not replay that far
    /// in the time left.
    fn standby_range(&mut self, range: &Range, lsn: Option<Lsn>) -> Result<Option<Digest>>;
}

/// How the comparison of one chunk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Same,
    Different,
    /// The primary's rows kept changing while they were compared.
    Unsettled,
    /// The standby did not replay far enough in the time left.
    StandbyBehind,
}

/// What one walk found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Walk {
    /// Chunks compared (any verdict but "standby behind").
    pub chunks: usize,
    /// Rows compared on the primary.
    pub rows: u64,
    /// Ranges whose rows differ, in the order found.
    pub mismatches: Vec<Range>,
    /// Chunks left undecided because their rows kept changing.
    pub unsettled: usize,
    /// The walk stopped because the standby did not replay in time.
    pub standby_behind: bool,
    /// Every key was compared.
    pub complete: bool,
}

/// Compare the table from `start` on, `rows_per_chunk` rows at a time,
/// until it is done or `out_of_time()` says to stop.
pub fn walk(
    source: &mut dyn Source,
    start: Option<Key>,
    rows_per_chunk: usize,
    out_of_time: &dyn Fn() -> bool,
) -> Result<Walk> {
    let segments = match start {
        Some(key) => vec![
            Range {
                after: Some(key.clone()),
                through: None,
            },
            Range {
                after: None,
                through: Some(key),
            },
        ],
        None => vec![Range::default()],
    };
    let mut found = Walk::default();
    for segment in segments {
        let mut after = segment.after.clone();
        loop {
            if out_of_time() {
                return Ok(found);
            }
            let ask = Range {
                after: after.clone(),
                through: segment.through.clone(),
            };
            let chunk = source.primary_chunk(&ask, rows_per_chunk)?;
            let segment_ends = (chunk.digest.rows as usize) < rows_per_chunk;
            let range = Range {
                after: after.clone(),
                through: if segment_ends {
                    segment.through.clone()
                } else {
                    chunk.last.clone()
                },
            };
            match compare(source, &range, &chunk)? {
                Verdict::StandbyBehind => {
                    found.standby_behind = true;
                    return Ok(found);
                }
                Verdict::Different => found.mismatches.push(range),
                Verdict::Unsettled => found.unsettled += 1,
                Verdict::Same => {}
            }
            found.chunks += 1;
            found.rows += chunk.digest.rows;
            if segment_ends {
                break;
            }
            after = chunk.last;
        }
    }
    found.complete = true;
    Ok(found)
}

fn compare(source: &mut dyn Source, range: &Range, chunk: &Chunk) -> Result<Verdict> {
    // Equal now means equal: no need to wait for replay.
    match source.standby_range(range, None)? {
        None => return Ok(Verdict::StandbyBehind),
        Some(standby) if standby == chunk.digest => return Ok(Verdict::Same),
        Some(_) => {}
    }
    for _ in 0..RECHECKS {
        let (before, lsn) = source.primary_range(range)?;
        let Some(standby) = source.standby_range(range, Some(lsn))? else {
            return Ok(Verdict::StandbyBehind);
        };
        if standby == before {
            return Ok(Verdict::Same);
        }
        let (after, _) = source.primary_range(range)?;
        if after == before {
            return Ok(Verdict::Different);
        }
    }
    Ok(Verdict::Unsettled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::BTreeMap;

    /// Two in-memory tables keyed by integers, with a WAL position that
    /// the standby may lag behind and writes that happen on the primary
    /// between reads.
    #[derive(Default)]
    struct Fake {
        primary: BTreeMap<i64, String>,
        standby: BTreeMap<i64, String>,
        /// Range reads, for checking that chunks follow each other.
        chunks: Vec<Range>,
        standby_stuck: bool,
        /// Change this key on the primary on every primary read (a busy row).
        churn: Option<i64>,
        reads: u64,
    }

    fn bound(key: &Option<Key>) -> Option<i64> {
        key.as_ref().map(|k| k[0].parse().unwrap())
    }

    fn rows<'a>(table: &'a BTreeMap<i64, String>, range: &Range) -> Vec<(&'a i64, &'a String)> {
        let (after, through) = (bound(&range.after), bound(&range.through));
        table
            .iter()
            .filter(|(k, _)| after.is_none_or(|a| **k > a) && through.is_none_or(|t| **k <= t))
            .collect()
    }

    fn digest(rows: &[(&i64, &String)]) -> Digest {
        Digest {
            rows: rows.len() as u64,
            hash: if rows.is_empty() {
                None
            } else {
                Some(rows.iter().map(|(k, v)| format!("{k}={v};")).collect())
            },
        }
    }

    impl Fake {
        fn with_rows(n: i64) -> Fake {
            let table: BTreeMap<i64, String> = (1..=n).map(|k| (k, format!("v{k}"))).collect();
            Fake {
                primary: table.clone(),
                standby: table,
                ..Fake::default()
            }
        }

        fn touch(&mut self) {
            self.reads += 1;
            if let Some(key) = self.churn {
                self.primary.insert(key, format!("busy{}", self.reads));
            }
        }
    }

    impl Source for Fake {
        fn primary_chunk(&mut self, range: &Range, limit: usize) -> Result<Chunk> {
            self.touch();
            let rows: Vec<_> = rows(&self.primary, range).into_iter().take(limit).collect();
            self.chunks.push(range.clone());
            Ok(Chunk {
                digest: digest(&rows),
                last: rows.last().map(|(k, _)| vec![k.to_string()]),
            })
        }

        fn primary_range(&mut self, range: &Range) -> Result<(Digest, Lsn)> {
            self.touch();
            Ok((digest(&rows(&self.primary, range)), Lsn(self.reads)))
        }

        fn standby_range(&mut self, range: &Range, lsn: Option<Lsn>) -> Result<Option<Digest>> {
            if self.standby_stuck && lsn.is_some() {
                return Ok(None);
            }
            Ok(Some(digest(&rows(&self.standby, range))))
        }
    }

    fn key(k: i64) -> Option<Key> {
        Some(vec![k.to_string()])
    }

    #[test]
    fn a_healthy_table_is_covered_by_contiguous_chunks() {
        let mut fake = Fake::with_rows(25);
        let found = walk(&mut fake, None, 10, &|| false).unwrap();
        assert_eq!(
            found,
            Walk {
                chunks: 3,
                rows: 25,
                complete: true,
                ..Walk::default()
            }
        );
        // (start, 10], (10, 20], (20, end]: each asked from the last key on.
        let asked: Vec<Option<i64>> = fake.chunks.iter().map(|r| bound(&r.after)).collect();
        assert_eq!(asked, [None, Some(10), Some(20)]);
    }

    #[test]
    fn an_exact_multiple_of_the_chunk_size_ends_with_an_empty_chunk() {
        let mut fake = Fake::with_rows(20);
        let found = walk(&mut fake, None, 10, &|| false).unwrap();
        assert_eq!((found.chunks, found.rows, found.complete), (3, 20, true));
        assert!(found.mismatches.is_empty());
    }

    #[test]
    fn a_changed_row_is_reported_with_its_chunk() {
        let mut fake = Fake::with_rows(30);
        fake.standby.insert(15, "changed".into());
        let found = walk(&mut fake, None, 10, &|| false).unwrap();
        assert_eq!(
            found.mismatches,
            vec![Range {
                after: key(10),
                through: key(20)
            }]
        );
        assert!(found.complete);
    }

    #[test]
    fn rows_only_on_the_standby_past_the_last_key_are_found() {
        let mut fake = Fake::with_rows(25);
        fake.standby.insert(1000, "extra".into());
        let found = walk(&mut fake, None, 10, &|| false).unwrap();
        assert_eq!(
            found.mismatches,
            vec![Range {
                after: key(20),
                through: None
            }]
        );
    }

    #[test]
    fn a_start_key_wraps_around_and_still_covers_everything() {
        let mut fake = Fake::with_rows(30);
        fake.standby.remove(&3);
        fake.standby.insert(28, "changed".into());
        let found = walk(&mut fake, key(12), 10, &|| false).unwrap();
        assert!(found.complete);
        assert_eq!(found.rows, 30);
        assert_eq!(
            found.mismatches,
            vec![
                Range {
                    after: key(22),
                    through: None
                },
                Range {
                    after: None,
                    through: key(10)
                },
            ]
        );
    }

    #[test]
    fn the_walk_stops_when_time_is_up() {
        let mut fake = Fake::with_rows(100);
        let calls = Cell::new(0);
        let found = walk(&mut fake, None, 10, &|| {
            calls.set(calls.get() + 1);
            calls.get() > 3
        })
        .unwrap();
        assert_eq!((found.chunks, found.rows, found.complete), (3, 30, false));
    }

    #[test]
    fn equal_chunks_need_no_waiting_for_replay() {
        let mut fake = Fake::with_rows(25);
        fake.standby_stuck = true;
        let found = walk(&mut fake, None, 10, &|| false).unwrap();
        assert!(found.complete && !found.standby_behind);
        assert_eq!(found.chunks, 3);
    }

    #[test]
    fn a_standby_that_does_not_replay_stops_the_walk_at_a_difference() {
        let mut fake = Fake::with_rows(30);
        fake.standby_stuck = true;
        fake.standby.insert(15, "not replayed yet".into());
        let found = walk(&mut fake, None, 10, &|| false).unwrap();
        assert!(found.standby_behind && !found.complete);
        assert_eq!(found.chunks, 1);
        assert!(found.mismatches.is_empty());
    }

    #[test]
    fn a_row_that_keeps_changing_is_unsettled_not_a_mismatch() {
        let mut fake = Fake::with_rows(30);
        fake.churn = Some(5);
        let found = walk(&mut fake, None, 10, &|| false).unwrap();
        assert!(found.mismatches.is_empty(), "{found:?}");
        assert_eq!(found.unsettled, 1);
        assert!(found.complete);
    }
}
