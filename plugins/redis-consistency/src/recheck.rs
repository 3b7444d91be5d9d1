//! The "seen unchanged" rule for the keys whose digests differed on the
//! first look: digests on the primary, then the primary's replication
//! offset; the replica read once its offset has passed that one; the
//! primary read again. A key counts as different only when the primary's
//! digest was the same before and after and the replica's is not it: the
//! replica had every write up to the primary's first read, and none came
//! between. Keys written meanwhile are left for a later run.

use crate::digest::{self, Difference, Verdict};
use std::time::{Duration, Instant};
use watchpost_probe::Result;
use watchpost_probe::redis::{self, Info};

/// First pause between two reads of the replica's offset, and the longest.
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(100);

/// What the second look found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Keys that differ, with how.
    pub differing: Vec<(Vec<u8>, Difference)>,
    /// Keys written around the second look: not judged.
    pub changing: usize,
    /// Keys not re-checked because the replica did not pass the primary's
    /// offset in time: the offsets, `(primary, replica)`.
    pub behind: Option<(u64, u64, usize)>,
}

/// How to wait for the replica.
pub enum Wait {
    /// Until its offset passes the primary's, at most this long.
    ForOffset(Duration),
    /// Not at all: it is not replicating from this primary (promoted, or
    /// another replication id), so it is compared as it is.
    No,
}

/// Re-check `keys` (in batches of `batch`) between `primary` and `replica`.
pub fn recheck(
    primary: &str,
    replica: &str,
    keys: &[Vec<u8>],
    batch: usize,
    wait: Wait,
) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    if keys.is_empty() {
        return Ok(outcome);
    }
    let before = digests(primary, keys, batch)?;
    if let Wait::ForOffset(limit) = wait {
        let target = offset(&redis::info(primary, "replication")?, "master_repl_offset");
        let deadline = Instant::now() + limit;
        let reached = wait_for_offset(replica, target, deadline)?;
        if reached < target {
            outcome.behind = Some((target, reached, keys.len()));
            return Ok(outcome);
        }
    }
    let on_replica = digests(replica, keys, batch)?;
    let after = digests(primary, keys, batch)?;
    for (i, key) in keys.iter().enumerate() {
        match digest::verdict(&before[i], &on_replica[i], &after[i]) {
            Verdict::Same => {}
            Verdict::Changing => outcome.changing += 1,
            Verdict::Differs(how) => outcome.differing.push((key.clone(), how)),
        }
    }
    Ok(outcome)
}

fn digests(target: &str, keys: &[Vec<u8>], batch: usize) -> Result<Vec<String>> {
    let mut all = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(batch.max(1)) {
        all.extend(digest::digests(target, chunk)?);
    }
    Ok(all)
}

/// An offset field of `INFO replication`, 0 when absent.
pub fn offset(info: &Info, key: &str) -> u64 {
    info.get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The replica's offset of what it applied: `slave_repl_offset`, or
/// `master_repl_offset` on servers without it.
pub fn replica_offset(info: &Info) -> u64 {
    if info.get("slave_repl_offset").is_some() {
        offset(info, "slave_repl_offset")
    } else {
        offset(info, "master_repl_offset")
    }
}

/// Poll `replica` until its offset reaches `target` or `deadline` comes;
/// the last offset seen.
fn wait_for_offset(replica: &str, target: u64, deadline: Instant) -> Result<u64> {
    let mut pause = POLL_FIRST;
    loop {
        let seen = replica_offset(&redis::info(replica, "replication")?);
        if seen >= target || Instant::now() + pause > deadline {
            return Ok(seen);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(POLL_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pairs: &[(&str, &str)]) -> Info {
        Info(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_replica_offset_is_what_it_applied() {
        let replica = info(&[("slave_repl_offset", "120"), ("master_repl_offset", "150")]);
        assert_eq!(replica_offset(&replica), 120);
        assert_eq!(replica_offset(&info(&[("master_repl_offset", "99")])), 99);
        assert_eq!(replica_offset(&info(&[])), 0);
    }
}
