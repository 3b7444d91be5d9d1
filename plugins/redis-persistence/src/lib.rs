//! `redis-persistence`: does the Redis (or Valkey) server write its data
//! to disk, and did the last writes succeed?
//!
//! It reads `INFO all` (the `persistence` and `stats` sections) and
//! `CONFIG GET save appendonly dir dbfilename appenddirname
//! stop-writes-on-bgsave-error`:
//!
//! - RDB snapshots: the last `BGSAVE` ok or failed, seconds since the last
//!   successful save, changes since then. A failed `BGSAVE` is `critical`
//!   and names the directory and file it could not write (the server's
//!   log says why: permissions, space); with `stop-writes-on-bgsave-error`
//!   the server refuses writes until a save succeeds, and the message says
//!   so. With a save schedule and changes pending, a last save older than
//!   `age_warning` / `age_critical` is a problem too.
//! - AOF: enabled, the last write ok (`critical` when it failed: the
//!   server then refuses writes), the last rewrite ok (`warning`).
//! - The latest fork's duration (`BGSAVE`, AOF rewrite and full syncs
//!   fork; a long fork stalls every client).
//!
//! A server with neither a save schedule (`save ""`) nor AOF is stated as
//! such: `ok` with the message "no persistence configured" (a cache), or
//! `warning` when the config says `required`. When `CONFIG GET` is not
//! allowed to the probe's ACL user, the save schedule is unknown and said
//! so; the rest is judged from `INFO`.
//!
//! Config (defaults in brackets):
//! - `target`: the target to check [`primary`].
//! - `age_warning` / `age_critical`: seconds since the last successful
//!   save while changes are pending and a save schedule is set
//!   [7200 / 86400].
//! - `fork_warning` / `fork_critical`: seconds the latest fork took
//!   [0.5 / 2].
//! - `required`: `true` when no persistence at all is a `warning` [false].
//!
//! Measurements (after OpenTelemetry's Redis receiver where it has one):
//! `redis.rdb.changes_since_last_save`, `redis.rdb.last_save.age` (s),
//! `redis.rdb.last_bgsave.ok`, `redis.rdb.enabled`, `redis.aof.enabled`,
//! `redis.aof.last_write.ok`, `redis.aof.last_rewrite.ok`,
//! `redis.latest_fork` (us).

mod assess;

use assess::{Limits, Server};
use watchpost_probe::redis::{self, RedisError};
use watchpost_probe::{Info as ProbeInfo, Kind, Probe, Report, Result, Threshold, config};

struct RedisPersistence;

/// The parameters read with `CONFIG GET` (none of them secret).
const PARAMETERS: &[&str] = &[
    "save",
    "appendonly",
    "dir",
    "dbfilename",
    "appenddirname",
    "stop-writes-on-bgsave-error",
];

impl Probe for RedisPersistence {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "redis-persistence",
            Kind::Integrity,
            "Redis RDB snapshots and AOF: configured, last writes ok, age, fork time",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "redis.rdb.changes_since_last_save",
            "{change}",
            "changes since the last successful RDB save",
        )
        .measures(
            "redis.rdb.last_save.age",
            "s",
            "time since the last successful RDB save (or the server's start)",
        )
        .measures(
            "redis.rdb.last_bgsave.ok",
            "1",
            "1 when the last BGSAVE succeeded, 0 when it failed",
        )
        .measures(
            "redis.rdb.enabled",
            "1",
            "1 when a save schedule is set (CONFIG GET save)",
        )
        .measures(
            "redis.aof.enabled",
            "1",
            "1 when the append-only file is on",
        )
        .measures(
            "redis.aof.last_write.ok",
            "1",
            "1 when the last AOF write succeeded (AOF on only)",
        )
        .measures(
            "redis.aof.last_rewrite.ok",
            "1",
            "1 when the last AOF rewrite succeeded (AOF on only)",
        )
        .measures(
            "redis.latest_fork",
            "us",
            "duration of the latest fork (BGSAVE, AOF rewrite, full sync)",
        )
    }

    fn check() -> Result<Report> {
        let target: String = config::get_or("target", "primary".to_string())?;
        let limits = Limits {
            age: Threshold::above(7200.0, 86400.0).configured("age_warning", "age_critical")?,
            fork: Threshold::above(0.5, 2.0).configured("fork_warning", "fork_critical")?,
            required: config::get_or("required", false)?,
        };
        let info = redis::info(&target, "all")?;
        // CONFIG GET may be refused to the probe's user (NOPERM) or by an
        // old server; the rest is judged from INFO alone.
        let parameters = match redis::config_get(&target, PARAMETERS) {
            Ok(parameters) => Ok(parameters),
            Err(error @ (RedisError::Unreachable(_) | RedisError::Timeout(_))) => {
                return Err(error.into());
            }
            Err(error) => Err(error.describe()),
        };
        let now = match info.number("server_time_usec") {
            Some(usec) => usec / 1e6,
            None => server_time(&target)?,
        };
        let server = Server {
            target: &target,
            info: &info,
            parameters,
            now,
        };
        Ok(assess::assess(&server, &limits).into_report())
    }
}

/// The server's clock (`TIME`), in seconds since the epoch.
fn server_time(target: &str) -> Result<f64> {
    let reply = redis::call(target, &["TIME"])?;
    let parts = reply.items().unwrap_or_default();
    match (
        parts.first().and_then(|s| s.int()),
        parts.get(1).and_then(|u| u.int()),
    ) {
        (Some(seconds), Some(micros)) => Ok(seconds as f64 + micros as f64 / 1e6),
        _ => watchpost_probe::bail!("{target}: TIME gave no time: {reply:?}"),
    }
}

watchpost_probe::export_probe!(RedisPersistence);
