//! `pg_controldata`: what a data directory's control file says, read the
//! same way by the cluster mode (a clean stop before a rewind, where a
//! switchover's old primary ended its WAL) and by the failover's
//! pre-check (was the primary stopped on purpose). The program runs as
//! the data directory's owner, untranslated ([`super::UNTRANSLATED`]:
//! its field names are read), bounded; its output becomes a typed
//! [`ControlData`], so that no caller reads its lines itself.

use super::lsn::parse_lsn;
use crate::process::{self, CommandSpec};
use crate::safefs::Owner;
use std::path::Path;
use std::time::Duration;

/// The program's name, for messages that name it.
pub const PROGRAM: &str = "pg_controldata";

/// How long the program may run: it reads one small file.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The fields of the control file the agent decides on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlData {
    /// `Database cluster state`: `shut down`, `shut down in recovery`,
    /// `shutting down`, `in production`, `in archive recovery`...
    pub state: Option<String>,
    /// `Latest checkpoint location`, in bytes from 0/0.
    pub checkpoint: Option<u64>,
    /// `Latest checkpoint's TimeLineID`.
    pub timeline: Option<u64>,
}

/// Where a cleanly stopped server's WAL ends: its shutdown checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownCheckpoint {
    /// The checkpoint record's start, bytes from 0/0.
    pub location: u64,
    pub timeline: u64,
}

impl ControlData {
    /// The fields of `output`, the program's (untranslated) output.
    pub fn parse(output: &str) -> ControlData {
        let field = |name: &str| {
            output
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        ControlData {
            state: field("Database cluster state:"),
            checkpoint: field("Latest checkpoint location:").and_then(|v| parse_lsn(&v)),
            timeline: field("Latest checkpoint's TimeLineID:").and_then(|v| v.parse().ok()),
        }
    }

    /// The cluster state; an error when the output had none.
    pub fn state(&self) -> Result<&str, String> {
        self.state
            .as_deref()
            .ok_or_else(|| format!("{PROGRAM} printed no cluster state"))
    }

    /// The shutdown checkpoint of a server that is cleanly shut down
    /// (state `shut down`); an error naming the state otherwise, or the
    /// field the output lacked.
    pub fn shutdown_checkpoint(&self) -> Result<ShutdownCheckpoint, String> {
        let state = self.state.as_deref().unwrap_or_default();
        if state != "shut down" {
            return Err(format!(
                "the server is not cleanly shut down ({PROGRAM}: {state:?})"
            ));
        }
        Ok(ShutdownCheckpoint {
            location: self
                .checkpoint
                .ok_or_else(|| format!("{PROGRAM} printed no latest checkpoint location"))?,
            timeline: self
                .timeline
                .ok_or_else(|| format!("{PROGRAM} printed no timeline"))?,
        })
    }
}

/// Run `BIN_DIR/pg_controldata -D DATA_DIR` as `user` (the data
/// directory's owner when the agent is root, see
/// [`super::pgdata::owner_if_root`]) from `/` (a directory any user may
/// enter), untranslated, within [`TIMEOUT`]: its fields, or an error
/// naming the failure (the program's last line).
pub async fn read(
    bin_dir: &Path,
    data_dir: &Path,
    user: Option<Owner>,
) -> Result<ControlData, String> {
    let spec = CommandSpec {
        argv: vec![
            bin_dir.join(PROGRAM).display().to_string(),
            "-D".into(),
            data_dir.display().to_string(),
        ],
        env: [super::UNTRANSLATED]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timeout: TIMEOUT,
        user,
        current_dir: Some("/".into()),
    };
    let out = process::run(&spec).await?;
    if !out.success() {
        return Err(format!("{PROGRAM} failed: {}", out.summary()));
    }
    Ok(ControlData::parse(&out.output))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL 16's output, cut to the fields around those read.
    const SHUT_DOWN: &str = "pg_control version number:            1300
Catalog version number:               202307071
Database system identifier:           7301234567890123456
Database cluster state:               shut down
pg_control last modified:             Mon 04 Dec 2026 10:00:00 AM UTC
Latest checkpoint location:           0/3000028
Latest checkpoint's REDO location:    0/3000028
Latest checkpoint's REDO WAL file:    000000020000000000000003
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   2
";

    #[test]
    fn the_fields_are_read_from_the_output() {
        let read = ControlData::parse(SHUT_DOWN);
        assert_eq!(
            read,
            ControlData {
                state: Some("shut down".into()),
                checkpoint: Some(0x3000028),
                timeline: Some(2),
            }
        );
        assert_eq!(read.state(), Ok("shut down"));
        assert_eq!(
            read.shutdown_checkpoint(),
            Ok(ShutdownCheckpoint {
                location: 0x3000028,
                timeline: 2
            })
        );
    }

    #[test]
    fn a_server_not_cleanly_shut_down_or_a_missing_field_is_an_error() {
        let running = ControlData::parse(&SHUT_DOWN.replace("shut down", "in production"));
        assert_eq!(running.state(), Ok("in production"));
        assert_eq!(
            running.shutdown_checkpoint(),
            Err("the server is not cleanly shut down (pg_controldata: \"in production\")".into())
        );
        let in_recovery =
            ControlData::parse(&SHUT_DOWN.replace("shut down", "shut down in recovery"));
        assert!(in_recovery.shutdown_checkpoint().is_err());
        let nothing = ControlData::parse("pg_controldata: error: could not open file");
        assert_eq!(
            nothing.state(),
            Err("pg_controldata printed no cluster state".into())
        );
        let no_timeline =
            ControlData::parse(&SHUT_DOWN.replace("Latest checkpoint's TimeLineID:       2\n", ""));
        assert_eq!(
            no_timeline.shutdown_checkpoint(),
            Err("pg_controldata printed no timeline".into())
        );
        let bad_location = ControlData::parse(&SHUT_DOWN.replace(
            "0/3000028\nLatest checkpoint's REDO location",
            "x\nLatest checkpoint's REDO location",
        ));
        assert_eq!(
            bad_location.shutdown_checkpoint(),
            Err("pg_controldata printed no latest checkpoint location".into())
        );
    }

    #[tokio::test]
    async fn a_program_that_fails_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(dir.path(), dir.path(), None).await.unwrap_err();
        assert!(err.contains(PROGRAM), "{err}");
    }
}
