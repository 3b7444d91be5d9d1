//! `redis-replication`: is replication between Redis (or Valkey) servers
//! healthy, and is there exactly one primary?
//!
//! On its `target` it reads `INFO replication` and `INFO stats`:
//!
//! - a replica: the link to its primary up (`warning` when down,
//!   `critical` when down longer than `link_down_critical`), seconds since
//!   the last I/O on it, how long it has been down;
//! - a primary: each replica's state, lag in bytes (the primary's offset
//!   minus the replica's) and in seconds (since its last ack), replicas
//!   seen online (`critical` below `replicas_min`), the backlog size;
//! - both: full resyncs and partial-sync errors so far (counters of the
//!   server since its start; compare runs for "since the last run").
//!
//! Across every `redis` target the probe is granted it counts the
//! servers that claim to be primary: more than one is a split brain
//! (`critical`); a target that cannot be asked is named, not counted.
//!
//! Config (defaults in brackets):
//! - `target`: the target to check [`primary`].
//! - `lag_bytes_warning` / `lag_bytes_critical`: a replica's lag in bytes
//!   [1048576 / 67108864].
//! - `lag_seconds_warning` / `lag_seconds_critical`: seconds since a
//!   replica's last ack [10 / 60].
//! - `link_down_critical`: seconds a replica's link may be down [10].
//! - `replicas_min`: replicas a primary must see online [0].
//!
//! Measurements: `redis.replication.link.up`, `redis.replication.link.last_io`
//! (s), `redis.replication.link.down_duration` (s),
//! `redis.replication.offset` (bytes), `redis.slaves.connected`,
//! `redis.replication.replica.lag` (bytes, per `replica`),
//! `redis.replication.replica.delay` (s, per `replica`),
//! `redis.replication.backlog.size` (bytes), `redis.sync.full`,
//! `redis.sync.partial.errors`, `redis.replication.primaries`.

use watchpost_probe::redis::{self, Info};
use watchpost_probe::{
    Findings, Info as ProbeInfo, Kind, Probe, Report, Result, Status, Threshold, config,
    measurement,
};

struct RedisReplication;

impl Probe for RedisReplication {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "redis-replication",
            Kind::Consistency,
            "Redis replication links, lag, resyncs, and exactly one primary",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "redis.replication.link.up",
            "1",
            "1 when a replica's link to its primary is up",
        )
        .measures(
            "redis.replication.link.last_io",
            "s",
            "seconds since the replica last heard from its primary",
        )
        .measures(
            "redis.replication.link.down_duration",
            "s",
            "how long the replica's link has been down",
        )
        .measures(
            "redis.replication.offset",
            "By",
            "the server's replication offset",
        )
        .measures(
            "redis.slaves.connected",
            "{replica}",
            "replicas connected to a primary",
        )
        .measures(
            "redis.replication.replica.lag",
            "By",
            "a replica's lag behind the primary, in bytes",
        )
        .measures(
            "redis.replication.replica.delay",
            "s",
            "seconds since a replica's last ack",
        )
        .measures(
            "redis.replication.backlog.size",
            "By",
            "the primary's replication backlog size",
        )
        .measures(
            "redis.sync.full",
            "{sync}",
            "full resyncs served since the server started",
        )
        .measures(
            "redis.sync.partial.errors",
            "{sync}",
            "partial resyncs refused since the server started",
        )
        .measures(
            "redis.replication.primaries",
            "{server}",
            "granted servers that claim to be primary",
        )
    }

    fn check() -> Result<Report> {
        let target: String = config::get_or("target", "primary".to_string())?;
        let mut findings = Findings::new();
        let info = redis::info(&target, "all")?;
        let role = info.get("role").unwrap_or("unknown").to_string();
        if let Some(offset) = info.number("master_repl_offset") {
            findings.push(measurement("redis.replication.offset", offset, "By"));
        }
        for (key, name) in [
            ("sync_full", "redis.sync.full"),
            ("sync_partial_err", "redis.sync.partial.errors"),
        ] {
            if let Some(v) = info.number(key) {
                findings.push(measurement(name, v, "{sync}"));
            }
        }
        match role.as_str() {
            "slave" => findings.part("link", |f| replica(&target, &info, f)),
            "master" => findings.part("replicas", |f| primary(&target, &info, f)),
            other => {
                findings.problem(
                    Status::Unknown,
                    format!("{target}: INFO replication says role {other:?}"),
                );
                true
            }
        };
        findings.part("primaries", primaries);
        Ok(findings.into_report())
    }
}

/// The link of a replica to its primary.
fn replica(target: &str, info: &Info, f: &mut Findings) -> Result<()> {
    let down_limit: f64 = config::get_or("link_down_critical", 10.0)?;
    let up = info.get("master_link_status") == Some("up");
    f.push(measurement(
        "redis.replication.link.up",
        if up { 1.0 } else { 0.0 },
        "1",
    ));
    if let Some(io) = info
        .number("master_last_io_seconds_ago")
        .filter(|s| *s >= 0.0)
    {
        f.push(measurement("redis.replication.link.last_io", io, "s"));
    }
    let primary = format!(
        "{}:{}",
        info.get("master_host").unwrap_or("?"),
        info.get("master_port").unwrap_or("?")
    );
    if up {
        f.push(measurement(
            "redis.replication.link.down_duration",
            0.0,
            "s",
        ));
        f.note(format!("{target} replicates from {primary}, link up"));
        return Ok(());
    }
    let down = info
        .number("master_link_down_since_seconds")
        .filter(|s| *s >= 0.0);
    if let Some(down) = down {
        f.push(measurement(
            "redis.replication.link.down_duration",
            down,
            "s",
        ));
    }
    let syncing = info.get("master_sync_in_progress") == Some("1");
    let status = match down {
        Some(down) if down > down_limit => Status::Critical,
        _ => Status::Warning,
    };
    f.problem(
        status,
        format!(
            "{target}: the link to its primary {primary} is down{}{} (critical past {down_limit} s)",
            down.map(|d| format!(" for {d} s")).unwrap_or_default(),
            if syncing { ", a sync in progress" } else { "" },
        ),
    );
    Ok(())
}

/// The replicas of a primary: state and lag of each.
fn primary(target: &str, info: &Info, f: &mut Findings) -> Result<()> {
    let bytes = Threshold::above(1048576.0, 67108864.0)
        .configured("lag_bytes_warning", "lag_bytes_critical")?;
    let seconds =
        Threshold::above(10.0, 60.0).configured("lag_seconds_warning", "lag_seconds_critical")?;
    let replicas_min: f64 = config::get_or("replicas_min", 0.0)?;
    let offset = info.number("master_repl_offset").unwrap_or(0.0);
    if let Some(size) = info.number("repl_backlog_size") {
        f.push(measurement("redis.replication.backlog.size", size, "By"));
    }
    let count = info.number("connected_slaves").unwrap_or(0.0) as usize;
    let mut online = 0usize;
    for i in 0..count {
        let Some(fields) = info.fields(&format!("slave{i}")) else {
            continue;
        };
        let name = format!(
            "{}:{}",
            fields.get("ip").map_or("?", String::as_str),
            fields.get("port").map_or("?", String::as_str)
        );
        let state = fields.get("state").map_or("?", String::as_str);
        if state != "online" {
            f.problem(
                Status::Warning,
                format!("{target}: replica {name} is {state}, not online"),
            );
            continue;
        }
        online += 1;
        if let Some(replica_offset) = fields.get("offset").and_then(|o| o.parse::<f64>().ok()) {
            let lag = (offset - replica_offset).max(0.0);
            f.push(measurement("redis.replication.replica.lag", lag, "By").attr("replica", &name));
            let status = bytes.status(lag);
            if status != Status::Ok {
                f.problem(
                    status,
                    format!(
                        "{target}: replica {name} is {lag} bytes behind (limits {} / {})",
                        bytes.warning, bytes.critical
                    ),
                );
            }
        }
        if let Some(delay) = fields.get("lag").and_then(|l| l.parse::<f64>().ok()) {
            f.push(
                measurement("redis.replication.replica.delay", delay, "s").attr("replica", &name),
            );
            let status = seconds.status(delay);
            if status != Status::Ok {
                f.problem(
                    status,
                    format!(
                        "{target}: replica {name} last acked {delay} s ago (limits {} / {} s)",
                        seconds.warning, seconds.critical
                    ),
                );
            }
        }
    }
    f.push(measurement(
        "redis.slaves.connected",
        online as f64,
        "{replica}",
    ));
    if (online as f64) < replicas_min {
        f.problem(
            Status::Critical,
            format!("{target}: {online} replicas online, `replicas_min` is {replicas_min}"),
        );
    }
    f.note(format!(
        "{target} is a primary with {online} replicas online"
    ));
    Ok(())
}

/// How many granted servers claim to be primary.
fn primaries(f: &mut Findings) -> Result<()> {
    let mut claiming = Vec::new();
    let mut unknown = Vec::new();
    for target in redis::targets() {
        match redis::info(&target, "replication") {
            Ok(info) if info.get("role") == Some("master") => claiming.push(target),
            Ok(_) => {}
            Err(error) => unknown.push(format!("{target} ({})", error.describe())),
        }
    }
    f.push(measurement(
        "redis.replication.primaries",
        claiming.len() as f64,
        "{server}",
    ));
    if claiming.len() > 1 {
        f.problem(
            Status::Critical,
            format!(
                "split brain: {} servers claim to be primary ({})",
                claiming.len(),
                claiming.join(", ")
            ),
        );
    }
    if !unknown.is_empty() {
        f.note(format!("not counted (cannot ask): {}", unknown.join(", ")));
    }
    Ok(())
}

watchpost_probe::export_probe!(RedisReplication);
