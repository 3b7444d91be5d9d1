//! Sends the Redis command in config `cmd` (arguments separated by `|`,
//! e.g. `CONFIG|SET|maxmemory|1`) to `target` (default `primary`). The
//! report is ok with the reply's shape in its message, or critical with a
//! message starting `error KIND:` (`not-allowed`, `server`, ...). With
//! `scan = true` it walks the keyspace instead (`SCAN` with `count`,
//! default 1000) until the cursor returns to 0 or a call fails, and
//! reports `redis.scan.keys` and `redis.scan.calls`; a failure ends the
//! walk with a warning naming its kind.

use watchpost_probe::redis::{self, RedisError, Reply};
use watchpost_probe::{Info, Kind, Probe, Report, Result, config, measurement};

struct RedisRun;

fn kind(error: &RedisError) -> &'static str {
    match error {
        RedisError::NotGranted(_) => "not-granted",
        RedisError::NotAllowed(_) => "not-allowed",
        RedisError::Unreachable(_) => "unreachable",
        RedisError::Refused(_) => "refused",
        RedisError::Timeout(_) => "timeout",
        RedisError::Server(_) => "server",
        RedisError::TooLarge(_) => "too-large",
    }
}

fn scan(target: &str) -> Result<Report> {
    let count: u64 = config::get_or("count", 1000)?;
    let count = count.to_string();
    let mut cursor = "0".to_string();
    let (mut keys, mut calls) = (0u64, 0u64);
    let failure = loop {
        match redis::call(target, &["SCAN", cursor.as_str(), "COUNT", count.as_str()]) {
            Ok(reply) => {
                calls += 1;
                let items = reply.items().unwrap_or_default();
                cursor = items.first().and_then(Reply::text).unwrap_or_default();
                keys += items.get(1).and_then(Reply::items).map_or(0, |k| k.len()) as u64;
                if cursor == "0" {
                    break None;
                }
            }
            Err(error) => break Some(error),
        }
    };
    let mut report = match failure {
        None => Report::ok(format!("scanned {keys} keys in {calls} calls")),
        Some(error) => Report::warning(format!(
            "error {}: after {keys} keys in {calls} calls: {}",
            kind(&error),
            error.describe()
        )),
    };
    report.push(measurement("redis.scan.keys", keys as f64, "{key}"));
    report.push(measurement("redis.scan.calls", calls as f64, "{call}"));
    Ok(report)
}

impl Probe for RedisRun {
    fn describe() -> Info {
        Info::new(
            "redisrun",
            Kind::Availability,
            "sends one Redis command from its config",
        )
    }

    fn check() -> Result<Report> {
        let target: String = config::get_or("target", "primary".to_string())?;
        if config::get_or("scan", false)? {
            return scan(&target);
        }
        let cmd: String = config::require("cmd")?;
        let args: Vec<&str> = cmd.split('|').collect();
        match redis::call(&target, &args) {
            Ok(reply) => Ok(Report::ok(format!("reply {reply:?}"))),
            Err(error) => Ok(Report::critical(format!(
                "error {}: {}",
                kind(&error),
                error.describe()
            ))),
        }
    }
}

watchpost_probe::export_probe!(RedisRun);
