//! The walk's reads from the real databases: chunk and range digests on
//! the primary, range digests on the standby once it has replayed past
//! the primary's WAL position (polled, within the table's time budget).

use crate::chunks::{Key, Range, Table};
use crate::lsn::Lsn;
use crate::walk::{Chunk, Digest, Source};
use std::time::{Duration, Instant};
use watchpost_probe::sql::{self, Rows};
use watchpost_probe::{Error, Result};

/// Polling the standby's replay position: first wait, longest wait.
const POLL_FIRST: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(100);

pub struct SqlSource<'a> {
    pub table: &'a Table,
    pub primary: &'a str,
    pub standby: &'a str,
    /// False when the standby was promoted: it replays nothing, so its
    /// rows are read at once.
    pub standby_in_recovery: bool,
    /// The standby has replayed at least this far (it only moves forward).
    pub replayed: Lsn,
    /// When to stop waiting for the standby.
    pub deadline: Instant,
}

fn digest(rows: &Rows) -> Result<Digest> {
    let row = rows.first()?;
    Ok(Digest {
        rows: row.int("rows")?.unwrap_or(0).max(0) as u64,
        hash: row.text("hash")?.map(String::from),
    })
}

fn lsn_of(rows: &Rows) -> Result<Lsn> {
    let text = rows.first()?.text("lsn")?.unwrap_or_default();
    Lsn::parse(text).ok_or_else(|| Error::msg(format!("not a WAL position: {text:?}")))
}

/// The key columns `key0`, `key1`, ... of a row; `None` if they are NULL.
pub fn key_of(row: &sql::Row<'_>, columns: usize) -> Result<Option<Key>> {
    let mut key = Vec::with_capacity(columns);
    for i in 0..columns {
        match row.text(&format!("key{i}"))? {
            Some(value) => key.push(value.to_string()),
            None => return Ok(None),
        }
    }
    Ok(Some(key))
}

/// The primary's WAL insert position now.
pub fn primary_position(primary: &str) -> Result<Lsn> {
    lsn_of(&sql::query(
        primary,
        "SELECT pg_current_wal_insert_lsn()::text AS lsn",
        &[],
    )?)
}

/// Wait until `standby` has replayed past `lsn`, polling its replay
/// position (`replayed` keeps the last one seen); false if `deadline`
/// came first.
pub fn wait_for_replay(
    standby: &str,
    lsn: Lsn,
    replayed: &mut Lsn,
    deadline: Instant,
) -> Result<bool> {
    let mut pause = POLL_FIRST;
    while *replayed < lsn {
        let rows = sql::query(standby, "SELECT pg_last_wal_replay_lsn()::text AS lsn", &[])?;
        *replayed = (*replayed).max(lsn_of(&rows)?);
        if *replayed >= lsn {
            break;
        }
        if Instant::now() + pause > deadline {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(POLL_MAX);
    }
    Ok(true)
}

impl Source for SqlSource<'_> {
    fn primary_chunk(&mut self, range: &Range, limit: usize) -> Result<Chunk> {
        let (statement, params) = self.table.chunk_statement(range, limit);
        let rows = sql::query(self.primary, &statement, &params)?;
        Ok(Chunk {
            digest: digest(&rows)?,
            last: key_of(&rows.first()?, self.table.key.len())?,
        })
    }

    fn primary_range(&mut self, range: &Range) -> Result<(Digest, Lsn)> {
        let (statement, params) = self
            .table
            .range_statement(range, Some("pg_current_wal_insert_lsn"));
        let rows = sql::query(self.primary, &statement, &params)?;
        Ok((digest(&rows)?, lsn_of(&rows)?))
    }

    fn standby_range(&mut self, range: &Range, lsn: Option<Lsn>) -> Result<Option<Digest>> {
        if let Some(lsn) = lsn
            && self.standby_in_recovery
            && !wait_for_replay(self.standby, lsn, &mut self.replayed, self.deadline)?
        {
            return Ok(None);
        }
        let (statement, params) = self.table.range_statement(range, None);
        let rows = sql::query(self.standby, &statement, &params)?;
        Ok(Some(digest(&rows)?))
    }
}
