//! `redis-backup`: is there a recent RDB copy of the Redis (or Valkey)
//! data, and is it whole?
//!
//! Reads a directory of RDB copies through a `dirs` grant (read-only; the
//! probe sees nothing else of the filesystem): every `*.rdb` file in it
//! and in its subdirectories (two levels down). The newest copy (by
//! modification time) gives the age and size; the copies checked
//! (`verify`: the newest, or all) are read whole: the header (`REDIS` and
//! a four-digit version), the `EOF` opcode at the end and the CRC-64 of
//! the contents against the one stored after it. A corrupted or truncated
//! copy is `invalid`, named with why. A copy written with `rdbchecksum no`
//! (stored checksum 0) cannot be checked and is said so (`warning`).
//! Write copies under another name and rename them into place: a copy
//! read while it is being written is truncated.
//!
//! Statuses: no copy at all, or an invalid one, `critical`; the newest
//! copy's age follows its limits; a version newer than this probe knows
//! is a note (it is checked all the same).
//!
//! Not here yet: the restore drill (starting `redis-server` on a copy on
//! a private socket and checking `DBSIZE` and a key), which belongs to the
//! agent, not to a sandboxed probe.
//!
//! Config (defaults in brackets):
//! - `repo`: the name of the granted directory holding the copies [`repo`].
//! - `age_warning` / `age_critical`: seconds since the newest copy was
//!   written [93600 (26 h) / 180000 (50 h)].
//! - `verify`: `newest` or `all` copies read and checked [`newest`].
//!
//! Measurements (attribute `repository`: the grant's name):
//! `redis.backup.age` (s since the newest copy was written),
//! `redis.backup.size` (By, the newest copy), `redis.backup.count`
//! (copies found), `redis.backup.valid` (1 when the newest copy is whole),
//! `redis.backup.invalid` (copies checked and found broken).

mod files;
mod rdb;

use files::Copy;
use rdb::Verdict;
use std::time::SystemTime;
use watchpost_probe::config::{self, FromConfig};
use watchpost_probe::{
    Findings, Info, Kind, Probe, Report, Result, Status, Threshold, dirs, measurement,
};

struct RedisBackup;

/// Which copies are read whole.
#[derive(Clone, Copy, PartialEq)]
enum Verify {
    Newest,
    All,
}

impl FromConfig for Verify {
    const EXPECTED: &'static str = "\"newest\" or \"all\"";
    fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "newest" => Some(Verify::Newest),
            "all" => Some(Verify::All),
            _ => None,
        }
    }
}

impl Probe for RedisBackup {
    fn describe() -> Info {
        Info::new(
            "redis-backup",
            Kind::Integrity,
            "RDB copies of Redis data: the newest one's age and size, header, end and CRC-64",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "redis.backup.age",
            "s",
            "time since the newest RDB copy was written",
        )
        .measures("redis.backup.size", "By", "size of the newest RDB copy")
        .measures("redis.backup.count", "{copy}", "RDB copies found")
        .measures(
            "redis.backup.valid",
            "1",
            "1 when the newest copy's header, end and checksum are right",
        )
        .measures(
            "redis.backup.invalid",
            "{copy}",
            "copies checked and found corrupted or truncated",
        )
    }

    fn check() -> Result<Report> {
        let repo: String = config::get_or("repo", "repo".to_string())?;
        let age = Threshold::above(93600.0, 180000.0).configured("age_warning", "age_critical")?;
        let verify: Verify = config::get_or("verify", Verify::Newest)?;
        let root = dirs::require(&repo)?;
        let copies = files::rdb_copies(&root)?;
        let mut f = Findings::new();
        let attr = |m: watchpost_probe::Measurement| m.attr("repository", repo.as_str());
        f.push(attr(measurement(
            "redis.backup.count",
            copies.len() as f64,
            "{copy}",
        )));
        let Some(newest) = copies.first() else {
            f.problem(
                Status::Critical,
                format!("{repo}: no RDB copy (`*.rdb`) in the directory or below it"),
            );
            return Ok(f.into_report());
        };
        let seconds = SystemTime::now()
            .duration_since(newest.modified)
            .map_or(0.0, |d| d.as_secs_f64());
        f.push(attr(measurement("redis.backup.age", seconds, "s")));
        f.push(attr(measurement(
            "redis.backup.size",
            newest.size as f64,
            "By",
        )));
        let status = age.status(seconds);
        let age_text = format!(
            "{repo}: the newest copy {} was written {:.1} h ago",
            newest.name,
            seconds / 3600.0
        );
        if status == Status::Ok {
            f.note(format!("{age_text}, {} bytes", newest.size));
        } else {
            f.problem(
                status,
                format!(
                    "{age_text} (limits {:.0} / {:.0} h)",
                    age.warning / 3600.0,
                    age.critical / 3600.0
                ),
            );
        }
        let checked: &[Copy] = match verify {
            Verify::Newest => &copies[..1],
            Verify::All => &copies,
        };
        let mut invalid = 0usize;
        for (i, copy) in checked.iter().enumerate() {
            let verdict = files::verify(copy)?;
            if i == 0 {
                let valid = matches!(verdict, Verdict::Valid { .. });
                f.push(attr(measurement(
                    "redis.backup.valid",
                    if valid { 1.0 } else { 0.0 },
                    "1",
                )));
            }
            match verdict {
                Verdict::Valid { version } => {
                    if version > rdb::NEWEST_KNOWN {
                        f.note(format!(
                            "{repo}: {} is RDB version {version}, newer than this probe knows \
                             ({}); its checksum is right",
                            copy.name,
                            rdb::NEWEST_KNOWN
                        ));
                    }
                }
                Verdict::Unchecked { version } => f.problem(
                    Status::Warning,
                    format!(
                        "{repo}: {} (RDB version {version}) has no checksum (written with \
                         `rdbchecksum no`, or older than version 5): its contents cannot be checked",
                        copy.name
                    ),
                ),
                Verdict::Invalid(why) => {
                    invalid += 1;
                    f.problem(
                        Status::Critical,
                        format!("{repo}: {} is invalid: {why}", copy.name),
                    );
                }
            }
        }
        f.push(attr(measurement(
            "redis.backup.invalid",
            invalid as f64,
            "{copy}",
        )));
        f.note(format!(
            "{} of {} copies checked whole",
            checked.len() - invalid,
            copies.len()
        ));
        Ok(f.into_report())
    }
}

watchpost_probe::export_probe!(RedisBackup);
