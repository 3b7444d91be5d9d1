//! Evidence for the failover pre-check that only the primary's own data
//! directory holds, when it is on this node: where its WAL ends
//! (`pg_waldump`), i.e. how far a standby's received position is from the
//! primary's last flush. (Whether it was stopped cleanly is its control
//! file's: [`crate::pgserver::controldata`].)

use crate::pgserver::lsn::parse_lsn;
use crate::pgserver::{UNTRANSLATED, program_says};
use crate::safefs::Owner;
use std::path::Path;

/// A command for a PostgreSQL program, run as `owner` when given (the
/// data directory's owner: root never reads the database user's files).
fn as_owner(program: &Path, owner: Option<Owner>) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command.current_dir("/");
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}

/// Bytes of valid WAL in `wal_dir` past `from` (an LSN such as `0/3000148`):
/// `pg_waldump` reads from there to the end of valid WAL and names it.
pub async fn wal_beyond(
    pg_waldump: &Path,
    wal_dir: &Path,
    from: &str,
    owner: Option<Owner>,
) -> Result<f64, String> {
    let output = as_owner(pg_waldump, owner)
        .arg("--quiet")
        .arg("--path")
        .arg(wal_dir)
        .arg("--start")
        .arg(from)
        .env(UNTRANSLATED.0, UNTRANSLATED.1)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("{}: {e}", pg_waldump.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    wal_end(&stderr, from)
}

/// Bytes of valid WAL past `from`, from what `pg_waldump` said on
/// `stderr`: decided on its own messages alone (its lines
/// `pg_waldump: LEVEL: ...`), never on a line that merely holds the
/// words, as one naming the WAL directory (the user's path) may.
fn wal_end(stderr: &str, from: &str) -> Result<f64, String> {
    const PROGRAM: &str = "pg_waldump";
    if program_says(stderr, PROGRAM, "could not find a valid record after").is_some() {
        return Ok(0.0);
    }
    let start = parse_lsn(from).ok_or_else(|| format!("{from:?} is not an LSN"))?;
    // The WAL ends where a record is invalid, or where the next segment
    // was never written (after a segment switch).
    let end = if let Some(message) = program_says(stderr, PROGRAM, "error in WAL record") {
        message
            .split_whitespace()
            .rev()
            .find_map(|word| parse_lsn(word.trim_end_matches([':', ',', '.'])))
    } else {
        program_says(stderr, PROGRAM, "could not find file \"")
            .and_then(|message| missing_segment_start(message, WAL_SEGMENT))
            .filter(|end| *end > start)
    };
    match end {
        Some(end) => Ok(end.saturating_sub(start) as f64),
        None => Err(format!("pg_waldump: {}", stderr.trim())),
    }
}

/// WAL segment size: PostgreSQL's default, which the test servers and
/// distribution packages use.
const WAL_SEGMENT: u64 = 16 * 1024 * 1024;

/// The start LSN of the segment pg_waldump could not find
/// (`could not find file "000000010000000000000004"`).
fn missing_segment_start(stderr: &str, segment: u64) -> Option<u64> {
    let name = stderr
        .split("could not find file \"")
        .nth(1)?
        .split('"')
        .next()?;
    if name.len() != 24 {
        return None;
    }
    let high = u64::from_str_radix(&name[8..16], 16).ok()?;
    let low = u64::from_str_radix(&name[16..24], 16).ok()?;
    let per_id = 0x1_0000_0000 / segment;
    Some((high * per_id + low) * segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_positions_read_from_pg_waldump() {
        let missing =
            "pg_waldump: error: could not find file \"000000010000000000000004\": No such file";
        assert_eq!(
            missing_segment_start(missing, WAL_SEGMENT),
            Some(4 * WAL_SEGMENT)
        );
        let next_id = "could not find file \"000000010000000100000000\"";
        assert_eq!(missing_segment_start(next_id, WAL_SEGMENT), Some(1 << 32));
    }

    /// pg_waldump's own messages (PostgreSQL 15's words) decide; a WAL
    /// directory whose path holds them is only a path.
    #[test]
    fn the_wal_end_is_read_from_pg_waldumps_messages_never_from_a_path() {
        let said = |stderr: &str| wal_end(stderr, "0/1511A68");
        assert_eq!(
            said("pg_waldump: error: could not find a valid record after 0/1511A68\n"),
            Ok(0.0)
        );
        assert_eq!(
            said(
                "pg_waldump: error: error in WAL record at 0/1511A68: invalid record length at \
                 0/1511AE0: wanted 24, got 0\n"
            ),
            Ok((0x1511AE0 - 0x1511A68) as f64)
        );
        assert_eq!(
            said(
                "pg_waldump: error: could not find file \"000000010000000000000002\": No such \
                 file or directory\n"
            ),
            Ok((2 * WAL_SEGMENT - 0x1511A68) as f64)
        );
        for dir in [
            "/srv/could not find a valid record after/pg_wal",
            "/srv/error in WAL record 0/9000000/pg_wal",
            "/srv/could not find file \"000000010000000000000009\"/pg_wal",
        ] {
            let stderr = format!(
                "pg_waldump: error: could not open directory \"{dir}\": No such file or \
                 directory\npg_waldump: hint: Try \"pg_waldump --help\" for more information.\n"
            );
            assert!(said(&stderr).is_err(), "{dir}: {:?}", said(&stderr));
        }
    }
}
