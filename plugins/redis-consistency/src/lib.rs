//! `redis-consistency`: does the Redis (or Valkey) replica hold the same
//! values as its primary?
//!
//! It walks the primary's keys with `SCAN` in batches and reads
//! `DEBUG DIGEST-VALUE` of each batch on both servers. Keys whose digests
//! differ are looked at again under the "seen unchanged" rule: digests on
//! the primary, then the primary's replication offset, the replica's
//! digests once its offset has passed that one, and the primary's digests
//! again. A key counts only when the primary's value was unchanged around
//! the replica's read (keys being written are left for a later run); the
//! message names it and says how it differs (missing on the replica, a
//! different value). A replica that does not replicate from this primary
//! (promoted, another replication id) is compared as it is, without
//! waiting.
//!
//! The work is bounded, so that the probe never loads the servers: one
//! batch (`SCAN ... COUNT batch`, two digest calls) at a time, and no new
//! batch once the run's `time_budget` is spent. A keyspace too big for one
//! run is walked from a random position round to the same position (SCAN's
//! cursor order), so successive runs cover all of it (keys of the first
//! batch met again at the end are not compared twice); the share walked is
//! reported (`redis.consistency.coverage`) and a partial walk is `ok`,
//! never a timeout.
//!
//! `DEBUG DIGEST-VALUE` needs `enable-debug-command` (off by default since
//! Redis 7.0): `yes`, or `local` when the agent connects over loopback or a
//! socket. When a server refuses it, the probe is `unknown` naming that
//! setting; when the probe's ACL user may not, naming `+debug|digest-value`.
//! A digest costs time in proportion to the key's size: a key of millions
//! of elements holds the server for that time. Keys that exist only on the
//! replica are not seen (the walk is on the primary); the database is the
//! one of the targets' URLs.
//!
//! Statuses: `critical` when a key differs; `warning` when the replica did
//! not pass the primary's offset within `wait`, so that the keys that
//! differed on the first look could not be settled; `unknown` when
//! digests cannot be read; `ok` otherwise, partial coverage noted.
//!
//! Config (defaults in brackets):
//! - `primary` / `replica`: the targets [`primary` / `replica`].
//! - `batch`: keys per `SCAN` and per digest call, 1 to 10000 [1000].
//! - `time_budget`: time after which no new batch starts, e.g. `5s`; keep
//!   it and `wait` well below the probe's `timeout` [2s].
//! - `wait`: how long the second look waits for the replica's offset [1s].
//! - `match`: a `SCAN MATCH` pattern limiting the keys compared [every key].
//! - `show`: differing keys named in the message [5].
//!
//! Measurements: `redis.consistency.mismatched_keys`,
//! `redis.consistency.compared_keys`, `redis.consistency.complete` (1 when
//! every key was walked in this run), `redis.consistency.coverage` (share
//! of the keyspace walked, 0 to 1), `redis.consistency.duration` (s).

mod cursor;
mod digest;
mod recheck;

use cursor::Walk;
use recheck::{Outcome, Wait};
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};
use watchpost_probe::redis::{self, Reply};
use watchpost_probe::{
    Findings, Info as ProbeInfo, Kind, Probe, Report, Result, Status, bail, config, measurement,
};

struct RedisConsistency;

/// Keys that differed on the first look past which the walk stops: the
/// replica is plainly not a copy, and the second look must fit the run.
const MAX_SUSPECTS: usize = 10_000;

/// The probe's settings.
struct Settings {
    primary: String,
    replica: String,
    batch: usize,
    budget: Duration,
    wait: Duration,
    pattern: Option<String>,
    show: usize,
}

impl Settings {
    fn from_config() -> Result<Settings> {
        let batch: usize = config::get_or("batch", 1000)?;
        if !(1..=10_000).contains(&batch) {
            bail!("config `batch` = {batch} must be between 1 and 10000");
        }
        Ok(Settings {
            primary: config::get_or("primary", "primary".to_string())?,
            replica: config::get_or("replica", "replica".to_string())?,
            batch,
            budget: config::get_or("time_budget", Duration::from_secs(2))?,
            wait: config::get_or("wait", Duration::from_secs(1))?,
            pattern: config::get("match")?,
            show: config::get_or("show", 5)?,
        })
    }
}

/// What the walk saw.
struct Walked {
    compared: usize,
    /// Keys whose digests differed, each once.
    suspects: Vec<Vec<u8>>,
    walk: Walk,
}

impl Probe for RedisConsistency {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "redis-consistency",
            Kind::Consistency,
            "Redis replica values compared with the primary's by digest, within a time budget",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "redis.consistency.mismatched_keys",
            "{key}",
            "keys whose value differs on the replica, seen unchanged on the primary",
        )
        .measures(
            "redis.consistency.compared_keys",
            "{key}",
            "keys compared this run",
        )
        .measures(
            "redis.consistency.complete",
            "1",
            "1 when every key was walked in this run",
        )
        .measures(
            "redis.consistency.coverage",
            "1",
            "share of the keyspace walked this run",
        )
        .measures(
            "redis.consistency.duration",
            "s",
            "time the comparison took",
        )
    }

    fn check() -> Result<Report> {
        let settings = Settings::from_config()?;
        let started = Instant::now();
        digest::usable(&settings.primary)?;
        digest::usable(&settings.replica)?;
        let wait = how_to_wait(&settings)?;
        let walked = walk(&settings, started)?;
        let outcome = recheck::recheck(
            &settings.primary,
            &settings.replica,
            &walked.suspects,
            settings.batch,
            wait.0,
        )?;
        let mut findings = Findings::new();
        if let Some(note) = wait.1 {
            findings.note(note);
        }
        report(
            &settings,
            &walked,
            &outcome,
            started.elapsed(),
            &mut findings,
        );
        Ok(findings.into_report())
    }
}

/// Whether the second look waits for the replica's offset: only when it
/// replicates from this primary (the same replication id); else a note.
fn how_to_wait(settings: &Settings) -> Result<(Wait, Option<String>)> {
    let primary = redis::info(&settings.primary, "replication")?;
    let replica = redis::info(&settings.replica, "replication")?;
    let replica_name = &settings.replica;
    if replica.get("role") != Some("slave") {
        return Ok((
            Wait::No,
            Some(format!(
                "{replica_name} is not a replica (promoted?): compared as it is, without waiting"
            )),
        ));
    }
    if replica.get("master_replid") != primary.get("master_replid") {
        return Ok((
            Wait::No,
            Some(format!(
                "{replica_name} has another replication id than {} (not its replica, or \
                 resyncing): compared as it is, without waiting",
                settings.primary
            )),
        ));
    }
    Ok((Wait::ForOffset(settings.wait), None))
}

/// Walk the primary's keys from a random position within the budget,
/// comparing digests batch by batch.
fn walk(settings: &Settings, started: Instant) -> Result<Walked> {
    let start = std::collections::hash_map::RandomState::new().hash_one(0u64);
    let mut walked = Walked {
        compared: 0,
        suspects: Vec::new(),
        walk: Walk::new(start),
    };
    let count = settings.batch.to_string();
    // SCAN may return a key twice, and the walk's last batch, which ends
    // past the start position, meets the keys of its first batch again:
    // those are remembered (one batch) and not compared twice.
    let mut first_batch: Option<HashSet<Vec<u8>>> = None;
    let mut suspected: HashSet<Vec<u8>> = HashSet::new();
    while let Some(cursor) = walked.walk.next_cursor() {
        if started.elapsed() >= settings.budget || walked.suspects.len() >= MAX_SUSPECTS {
            break;
        }
        let cursor = cursor.to_string();
        let mut args = vec!["SCAN", cursor.as_str(), "COUNT", count.as_str()];
        if let Some(pattern) = &settings.pattern {
            args.extend(["MATCH", pattern.as_str()]);
        }
        let reply = redis::call(&settings.primary, &args)?;
        let (next, mut keys) = scanned(&settings.primary, &reply)?;
        match &first_batch {
            None => first_batch = Some(keys.iter().cloned().collect()),
            Some(first) if walked.walk.wrapped() => keys.retain(|k| !first.contains(k)),
            Some(_) => {}
        }
        let on_primary = digest::digests(&settings.primary, &keys)?;
        let on_replica = digest::digests(&settings.replica, &keys)?;
        for (i, key) in keys.into_iter().enumerate() {
            if on_primary[i] != on_replica[i] && suspected.insert(key.clone()) {
                walked.suspects.push(key);
            }
            walked.compared += 1;
        }
        walked.walk.advance(next);
    }
    Ok(walked)
}

/// The next cursor and the keys of a `SCAN` reply.
fn scanned(target: &str, reply: &Reply) -> Result<(u64, Vec<Vec<u8>>)> {
    let parts = reply.items().unwrap_or_default();
    let next = parts
        .first()
        .and_then(Reply::text)
        .and_then(|c| c.parse::<u64>().ok());
    let keys = parts.get(1).and_then(Reply::items);
    match (next, keys) {
        (Some(next), Some(keys)) => Ok((
            next,
            keys.iter()
                .filter_map(|k| match k {
                    Reply::Bulk(bytes) => Some(bytes.clone()),
                    other => other.text().map(String::into_bytes),
                })
                .collect(),
        )),
        _ => bail!("{target}: SCAN gave no cursor and keys: {reply:?}"),
    }
}

fn report(
    settings: &Settings,
    walked: &Walked,
    outcome: &Outcome,
    took: Duration,
    f: &mut Findings,
) {
    let (primary, replica) = (&settings.primary, &settings.replica);
    let complete = walked.walk.complete();
    let coverage = walked.walk.covered();
    f.push(measurement(
        "redis.consistency.mismatched_keys",
        outcome.differing.len() as f64,
        "{key}",
    ));
    f.push(measurement(
        "redis.consistency.compared_keys",
        walked.compared as f64,
        "{key}",
    ));
    f.push(measurement(
        "redis.consistency.complete",
        if complete { 1.0 } else { 0.0 },
        "1",
    ));
    f.push(measurement("redis.consistency.coverage", coverage, "1"));
    f.push(measurement(
        "redis.consistency.duration",
        took.as_secs_f64(),
        "s",
    ));
    if !outcome.differing.is_empty() {
        let named: Vec<String> = outcome
            .differing
            .iter()
            .take(settings.show)
            .map(|(key, how)| format!("`{}` ({})", digest::shown(key), how.describe()))
            .collect();
        let more = outcome.differing.len().saturating_sub(settings.show);
        f.problem(
            Status::Critical,
            format!(
                "{replica} differs from {primary} in {} keys, unchanged on the primary around the \
                 check: {}{}",
                outcome.differing.len(),
                named.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ),
        );
    }
    if let Some((wanted, reached, keys)) = outcome.behind {
        f.problem(
            Status::Warning,
            format!(
                "{keys} keys differed on the first look but could not be settled: {replica} did \
                 not reach {primary}'s offset {wanted} within {:?} (it is at {reached}; lagging \
                 or its link down)",
                settings.wait
            ),
        );
    }
    if outcome.changing > 0 {
        f.note(format!(
            "{} keys were being written and are left for a later run",
            outcome.changing
        ));
    }
    let scope = if complete {
        "the whole keyspace".to_string()
    } else {
        format!(
            "{:.1} % of the keyspace from a random position (time budget {:?}{}; later runs cover \
             the rest)",
            coverage * 100.0,
            settings.budget,
            if walked.suspects.len() >= MAX_SUSPECTS {
                format!(", stopped at {MAX_SUSPECTS} differing keys")
            } else {
                String::new()
            }
        )
    };
    f.note(format!(
        "{} keys compared between {primary} and {replica}, {scope}",
        walked.compared
    ));
}

watchpost_probe::export_probe!(RedisConsistency);
