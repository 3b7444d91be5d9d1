//! Walking one table chunk by chunk within its share of the budget.
//!
//! Each chunk is first digested on the primary, then on the replica at
//! once: equal digests mean equal rows, each side as it was when read,
//! which settles most chunks with two statements. (A divergence that a
//! transaction the replica has not applied yet happens to cancel, say an
//! unlogged `x = x + 1` repeated on the primary, reads equal until the
//! replica applies it: a later run finds it.) A chunk that differs is
//! settled in this order: the primary's GTID position, the replica's wait
//! for that position, the replica's digest. Equal digests settle it.
//! Different ones are taken again on the primary: only if the primary's
//! rows were unchanged around the replica's read (the replica read at a
//! position between the two primary reads) is the chunk a mismatch;
//! otherwise it is being written and is counted apart. A replica that
//! cannot reach the position within the budget pauses the walk (it lags;
//! nothing is concluded).
//!
//! Chunks are sized by time, as `pt-table-checksum`'s `--chunk-time`: the
//! first holds `rows_per_chunk` rows, and each next one is resized so
//! that its digest on the primary takes about `chunk_time` (at most
//! twice or half the last size, never more than a quarter of the time
//! left); `chunk_time = "0s"` keeps every chunk at `rows_per_chunk`. A
//! chunk larger than `rows_per_chunk` that differs is settled again in
//! parts of `rows_per_chunk` rows, each on its own, so that the ranges
//! named are as narrow as fixed chunks would name them (past the
//! deadline, what is left of it is settled as one part).
//!
//! A table bigger than one run can walk starts at a random key (integer
//! keys) and wraps round to it, so that successive runs cover all of it.

use crate::chunk::{self, Key};
use crate::tables::Table;
use std::time::{Duration, Instant};
use watchpost_probe::Result;
use watchpost_probe::sql::{self, Value};

/// Where the two servers are and how a walk may proceed.
pub struct Sides<'a> {
    pub primary: &'a str,
    pub replica: &'a str,
    pub mariadb: bool,
    /// The replica replicates (else it is compared as it is).
    pub replicating: bool,
    /// The first chunk's rows (and every chunk's when `chunk_time` is 0),
    /// and the size a differing chunk is compared again in.
    pub rows_per_chunk: usize,
    /// The time a chunk's digest on the primary should take (0: fixed
    /// chunks).
    pub chunk_time: Duration,
}

/// The most rows one chunk may hold, whatever its time.
const MAX_CHUNK_ROWS: usize = 1_000_000;

/// The rows of the chunk after one of `rows` whose digest took `took`:
/// sized to take `target`, within half and twice `rows`, within a quarter
/// of `left` (the primary's digest, the replica's at once, and when they
/// differ the replica's again and the primary's again), and within
/// 1 ..= [`MAX_CHUNK_ROWS`].
fn next_rows(rows: usize, took: Duration, target: Duration, left: Duration) -> usize {
    if target.is_zero() {
        return rows;
    }
    let per_row = took.as_secs_f64().max(1e-6) / rows.max(1) as f64;
    let aimed = (target.as_secs_f64() / per_row)
        .clamp(rows as f64 / 2.0, rows as f64 * 2.0)
        .min(left.as_secs_f64() / 4.0 / per_row);
    (aimed.round() as usize).clamp(1, MAX_CHUNK_ROWS)
}

/// One table's walk.
#[derive(Default)]
pub struct Walked {
    pub compared_rows: i64,
    /// Mismatched ranges: (past this key, up to this key).
    pub mismatches: Vec<(Option<Key>, Option<Key>)>,
    /// Chunks that differed while the primary wrote them.
    pub changing: usize,
    /// Every key was compared.
    pub complete: bool,
    /// The replica did not apply the primary's position in time.
    pub lagging: Option<String>,
}

/// Where a run starts: a random key of an integer key's range, else the
/// table's start.
fn start_key(sides: &Sides, table: &Table) -> Result<Option<Key>> {
    if !table.integer_key || table.estimated_rows <= sides.rows_per_chunk as f64 {
        return Ok(None);
    }
    let key = mysql_common::quote(&table.key[0]);
    let rows = sql::query(
        sides.primary,
        &format!(
            "SELECT MIN({key}) AS lo, MAX({key}) AS hi FROM {}",
            table.quoted()
        ),
        &[],
    )?;
    let row = rows.first()?;
    let (Some(lo), Some(hi)) = (row.int("lo")?, row.int("hi")?) else {
        return Ok(None);
    };
    if hi <= lo {
        return Ok(None);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs().wrapping_mul(0x9e37_79b9))
        .unwrap_or(0);
    let span = (hi - lo) as u64;
    Ok(Some(vec![Value::Int(lo + (nanos % span) as i64)]))
}

/// Walk `table` until it is done or `deadline` passes.
pub fn walk(sides: &Sides, table: &Table, deadline: Instant) -> Result<Walked> {
    let mut walked = Walked::default();
    let start = start_key(sides, table)?;
    // Past the start to the end, then (when the start was not the
    // beginning) from the beginning up to it.
    let mut phases = vec![(start.clone(), None)];
    if start.is_some() {
        phases.push((None, start));
    }
    let mut rows = sides.rows_per_chunk;
    for (from, stop) in phases {
        let mut lo = from;
        loop {
            if Instant::now() >= deadline {
                return Ok(walked);
            }
            let hi = chunk::upper(sides.primary, table, lo.as_ref(), stop.as_ref(), rows)?;
            let last = hi.is_none() || hi == stop;
            let hi = hi.or_else(|| stop.clone());
            let Some(took) = settle(
                sides,
                table,
                (lo.as_ref(), hi.as_ref()),
                deadline,
                &mut walked,
                Part::Whole,
            )?
            else {
                return Ok(walked);
            };
            if last {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            rows = next_rows(rows, took, sides.chunk_time, left);
            lo = hi;
        }
    }
    walked.complete = true;
    Ok(walked)
}

/// What a settled range is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A chunk of the walk: its rows are counted, and when it differs and
    /// holds more than `rows_per_chunk` rows it is narrowed.
    Whole,
    /// A part of a narrowed chunk (its rows counted with the chunk's).
    Narrowed,
}

/// Settle one chunk (past `lo`, up to `hi`): how long its digest on the
/// primary took, or `None` when the walk must stop (the replica lags).
fn settle(
    sides: &Sides,
    table: &Table,
    (lo, hi): (Option<&Key>, Option<&Key>),
    deadline: Instant,
    walked: &mut Walked,
    part: Part,
) -> Result<Option<Duration>> {
    let started = Instant::now();
    let first = chunk::digest(sides.primary, table, lo, hi)?;
    let took = started.elapsed();
    // The replica read at once first: equal digests are equal rows, each
    // side as it was when read, so most chunks need no wait for the
    // primary's position (and no statement on the primary for it).
    let at_once = chunk::digest(sides.replica, table, lo, hi)?;
    if part == Part::Whole {
        walked.compared_rows += first.rows;
    }
    if at_once == first {
        return Ok(Some(took));
    }
    // A big chunk that differs is narrowed before anything else: each
    // part then settles on its own (one written while compared no longer
    // hides a difference in the others).
    if part == Part::Whole && first.rows > sides.rows_per_chunk as i64 {
        return Ok(narrow(sides, table, (lo, hi), deadline, walked)?.then_some(took));
    }
    let replica = if sides.replicating {
        let position = chunk::position(sides.primary, sides.mariadb)?;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        if !chunk::wait(sides.replica, sides.mariadb, &position, left.max(0.2))? {
            walked.lagging = Some(position);
            return Ok(None);
        }
        chunk::digest(sides.replica, table, lo, hi)?
    } else {
        // Not replicating: nothing to wait for, it was read as it is.
        at_once
    };
    if replica == first {
        return Ok(Some(took));
    }
    let again = chunk::digest(sides.primary, table, lo, hi)?;
    if again == first {
        walked.mismatches.push((lo.cloned(), hi.cloned()));
    } else {
        walked.changing += 1;
    }
    Ok(Some(took))
}

/// Settle `(lo, hi]` in parts of `rows_per_chunk` rows, so that the
/// ranges named are as narrow as fixed chunks would name them; past the
/// deadline, what is left is settled as one part. False when the walk
/// must stop (the replica lags).
fn narrow(
    sides: &Sides,
    table: &Table,
    (lo, hi): (Option<&Key>, Option<&Key>),
    deadline: Instant,
    walked: &mut Walked,
) -> Result<bool> {
    let mut sub = lo.cloned();
    loop {
        let upper = if Instant::now() >= deadline {
            None
        } else {
            chunk::upper(sides.primary, table, sub.as_ref(), hi, sides.rows_per_chunk)?
        };
        let last = upper.is_none() || upper.as_ref() == hi;
        let upper = upper.or_else(|| hi.cloned());
        let part = (sub.as_ref(), upper.as_ref());
        if settle(sides, table, part, deadline, walked, Part::Narrowed)?.is_none() {
            return Ok(false);
        }
        if last {
            return Ok(true);
        }
        sub = upper;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_grow_and_shrink_towards_their_time_within_bounds() {
        let target = Duration::from_millis(250);
        let plenty = Duration::from_secs(60);
        // Fast: doubled at most.
        assert_eq!(
            next_rows(1000, Duration::from_millis(10), target, plenty),
            2000
        );
        // Slow: halved at most.
        assert_eq!(next_rows(1000, Duration::from_secs(5), target, plenty), 500);
        // Near the aim: sized to it.
        assert_eq!(
            next_rows(1000, Duration::from_millis(200), target, plenty),
            1250
        );
        // Never more than a quarter of the time left.
        assert_eq!(
            next_rows(
                1000,
                Duration::from_millis(10),
                target,
                Duration::from_millis(40)
            ),
            1000
        );
        // Fixed chunks.
        assert_eq!(
            next_rows(1000, Duration::from_millis(1), Duration::ZERO, plenty),
            1000
        );
        // Bounded.
        assert_eq!(
            next_rows(MAX_CHUNK_ROWS, Duration::from_millis(1), target, plenty),
            MAX_CHUNK_ROWS
        );
        assert_eq!(
            next_rows(1, Duration::from_secs(9), target, Duration::ZERO),
            1
        );
    }
}
