//! Walking one table chunk by chunk within its share of the budget.
//!
//! Each chunk is settled in this order: its digest on the primary, the
//! primary's GTID position, the replica's wait for that position, the
//! replica's digest. Equal digests settle it. Different ones are taken
//! again on the primary: only if the primary's rows were unchanged around
//! the replica's read (the replica read at a position between the two
//! primary reads) is the chunk a mismatch; otherwise it is being written
//! and is counted apart. A replica that cannot reach the position within
//! the budget pauses the walk (it lags; nothing is concluded).
//!
//! A table bigger than one run can walk starts at a random key (integer
//! keys) and wraps round to it, so that successive runs cover all of it.

use crate::chunk::{self, Key};
use crate::tables::Table;
use std::time::Instant;
use watchpost_probe::Result;
use watchpost_probe::sql::{self, Value};

/// Where the two servers are and how a walk may proceed.
pub struct Sides<'a> {
    pub primary: &'a str,
    pub replica: &'a str,
    pub mariadb: bool,
    /// The replica replicates (else it is compared as it is).
    pub replicating: bool,
    pub rows_per_chunk: usize,
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
    for (from, stop) in phases {
        let mut lo = from;
        loop {
            if Instant::now() >= deadline {
                return Ok(walked);
            }
            let hi = chunk::upper(
                sides.primary,
                table,
                lo.as_ref(),
                stop.as_ref(),
                sides.rows_per_chunk,
            )?;
            let last = hi.is_none();
            let hi = hi.or_else(|| stop.clone());
            if !settle(
                sides,
                table,
                lo.as_ref(),
                hi.as_ref(),
                deadline,
                &mut walked,
            )? {
                return Ok(walked);
            }
            if last {
                break;
            }
            lo = hi;
        }
    }
    walked.complete = true;
    Ok(walked)
}

/// Settle one chunk; false when the walk must stop (the replica lags).
fn settle(
    sides: &Sides,
    table: &Table,
    lo: Option<&Key>,
    hi: Option<&Key>,
    deadline: Instant,
    walked: &mut Walked,
) -> Result<bool> {
    let first = chunk::digest(sides.primary, table, lo, hi)?;
    if sides.replicating {
        let position = chunk::position(sides.primary, sides.mariadb)?;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        if !chunk::wait(sides.replica, sides.mariadb, &position, left.max(0.2))? {
            walked.lagging = Some(position);
            return Ok(false);
        }
    }
    let replica = chunk::digest(sides.replica, table, lo, hi)?;
    walked.compared_rows += first.rows;
    if replica == first {
        return Ok(true);
    }
    let again = chunk::digest(sides.primary, table, lo, hi)?;
    if again == first {
        walked.mismatches.push((lo.cloned(), hi.cloned()));
    } else {
        walked.changing += 1;
    }
    Ok(true)
}
