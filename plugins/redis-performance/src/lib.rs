//! `redis-performance`: how fast and how loaded is the Redis (or Valkey)
//! server?
//!
//! - A canary: `PING` run `tries` times on the pooled connection (after
//!   one untimed `PING` that opens it), timed as a client sees it: each try
//!   one `db.client.operation.duration` (s) {db.system.name = `redis`}
//!   sample, and `redis.canary.duration` (s) {statistic = `p50` | `max`};
//!   the limits apply to the median.
//! - Memory (`INFO memory`): used of `maxmemory`. At the limit a server
//!   with an eviction policy evicts keys (`warning` naming the evictions:
//!   fine for a cache, data lost for a store; a `volatile-*` policy only
//!   evicts keys with a TTL), one with `noeviction` refuses writes with
//!   `OOM` (`critical`). Fragmentation is judged only when the memory
//!   resident beyond the data exceeds `fragmentation_min_bytes`.
//! - Evictions: `evicted_keys`, the server's counter since it started.
//! - Clients: connected of `maxclients`, blocked (`BLPOP`, `WAIT`, ...).
//! - Latency events (`LATENCY LATEST`, recorded by the server when
//!   `latency-monitor-threshold` is set; off by default, and said so): a
//!   spike within the last `window` seconds is judged by
//!   `spike_warning` / `spike_critical`.
//! - The slow log (`SLOWLOG GET`): entries logged within the last `window`
//!   seconds are new (`redis.slowlog.new`, the slowest named by its
//!   command, never its arguments); `redis.slowlog.last_id` grows by one
//!   per entry, so its increase between runs is the exact count. A probe
//!   keeps nothing between runs: set `window` to the probe's `every`.
//!
//! Each part stands alone: one the probe's ACL user may not read is
//! `unknown` with the server's words, the others keep reporting. A server
//! that does not answer the canary ends the run (`critical`; refusing:
//! `warning`).
//!
//! Config (defaults in brackets; limits are upper limits):
//! - `target`: the target to check [`primary`].
//! - `tries`: canary PINGs, 1 to 100 [5].
//! - `latency_warning` / `latency_critical`: median canary seconds
//!   [0.05 / 0.5].
//! - `memory_warning` / `memory_critical`: used of `maxmemory` [0.9 / 0.95].
//! - `fragmentation_warning` / `fragmentation_critical`:
//!   `mem_fragmentation_ratio` [1.5 / 3]; `fragmentation_min_bytes`: bytes
//!   resident beyond the data before it is judged [104857600].
//! - `clients_warning` / `clients_critical`: connected of `maxclients`
//!   [0.8 / 0.95].
//! - `blocked_warning` / `blocked_critical`: blocked clients [off].
//! - `window`: seconds back that count as new for latency spikes and
//!   slow-log entries [60].
//! - `spike_warning` / `spike_critical`: seconds of a latency spike within
//!   the window [0.1 / 1].
//! - `slowlog_warning` / `slowlog_critical`: new slow-log entries [off].
//!
//! Measurements (after OpenTelemetry's Redis receiver where it has one):
//! `db.client.operation.duration`, `redis.canary.duration`,
//! `redis.memory.used`, `redis.memory.rss`, `redis.maxmemory` (By),
//! `redis.memory.used_ratio`, `redis.memory.fragmentation_ratio`,
//! `redis.keys.evicted`, `redis.clients.connected`,
//! `redis.clients.blocked`, `redis.clients.used_ratio`,
//! `redis.latency.spike` (s, per `event`), `redis.slowlog.new`,
//! `redis.slowlog.last_id`.

mod canary;
mod events;
mod load;

use watchpost_probe::redis::{self, Info};
use watchpost_probe::{
    Findings, Info as ProbeInfo, Kind, Measurement, Probe, Report, Result, Status, Threshold, bail,
    config, measurement,
};

struct RedisPerformance;

/// The limits of the canary and of the events.
struct Limits {
    latency: Threshold,
    spike: Threshold,
    slowlog: Option<Threshold>,
    window: f64,
}

impl Probe for RedisPerformance {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "redis-performance",
            Kind::Performance,
            "Redis latency, memory, fragmentation, evictions, clients, latency spikes and slow log",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .measures(
            "db.client.operation.duration",
            "s",
            "duration of each canary PING",
        )
        .measures(
            "redis.canary.duration",
            "s",
            "canary PING latency, p50 and max",
        )
        .measures(
            "redis.memory.used",
            "By",
            "memory allocated by the server (used_memory)",
        )
        .measures(
            "redis.memory.rss",
            "By",
            "memory resident (used_memory_rss)",
        )
        .measures("redis.maxmemory", "By", "the maxmemory limit, when set")
        .measures("redis.memory.used_ratio", "1", "used memory over maxmemory")
        .measures(
            "redis.memory.fragmentation_ratio",
            "1",
            "resident memory over used memory",
        )
        .measures(
            "redis.keys.evicted",
            "{key}",
            "keys evicted since the server started",
        )
        .measures("redis.clients.connected", "{client}", "client connections")
        .measures(
            "redis.clients.blocked",
            "{client}",
            "clients blocked in BLPOP, WAIT, ...",
        )
        .measures(
            "redis.clients.used_ratio",
            "1",
            "connected clients over maxclients",
        )
        .measures(
            "redis.latency.spike",
            "s",
            "the latest latency spike of an event, when within the window",
        )
        .measures(
            "redis.slowlog.new",
            "{entry}",
            "slow-log entries logged within the window",
        )
        .measures(
            "redis.slowlog.last_id",
            "{entry}",
            "id of the newest slow-log entry (grows by one per entry)",
        )
    }

    fn check() -> Result<Report> {
        let target: String = config::get_or("target", "primary".to_string())?;
        let tries: usize = config::get_or("tries", 5)?;
        if !(1..=100).contains(&tries) {
            bail!("config `tries` = {tries} must be between 1 and 100");
        }
        let window: f64 = config::get_or("window", 60.0)?;
        if window.is_nan() || window <= 0.0 {
            bail!("config `window` = {window} must be a number of seconds above 0");
        }
        let limits = Limits {
            latency: Threshold::above(0.05, 0.5)
                .configured("latency_warning", "latency_critical")?,
            spike: Threshold::above(0.1, 1.0).configured("spike_warning", "spike_critical")?,
            slowlog: Threshold::optional_above("slowlog_warning", "slowlog_critical")?,
            window,
        };
        let load_limits = load::Limits {
            memory: Threshold::above(0.9, 0.95).configured("memory_warning", "memory_critical")?,
            fragmentation: Threshold::above(1.5, 3.0)
                .configured("fragmentation_warning", "fragmentation_critical")?,
            fragmentation_min_bytes: config::get_or("fragmentation_min_bytes", 104857600.0)?,
            clients: Threshold::above(0.8, 0.95)
                .configured("clients_warning", "clients_critical")?,
            blocked: Threshold::optional_above("blocked_warning", "blocked_critical")?,
        };
        let mut findings = Findings::new();

        // The canary opens the pooled connection the other parts reuse; a
        // server that does not answer ends the run here with its status.
        let latency = canary::measure(&target, tries)?;
        report_canary(&target, &latency, &limits, &mut findings);

        let info = redis::info(&target, "all")?;
        load::memory(&target, &info, &load_limits, &mut findings);
        let maxclients = match info.number("maxclients") {
            Some(max) => Some(max),
            // Before 7.0 INFO has no maxclients; CONFIG GET may be refused.
            None => redis::config_get(&target, &["maxclients"])
                .ok()
                .and_then(|p| p.get("maxclients")?.parse().ok()),
        };
        load::clients(&target, &info, maxclients, &load_limits, &mut findings);
        let now = server_now(&target, &info)?;
        findings.part("latency events", |f| spikes(&target, now, &limits, f));
        findings.part("slow log", |f| slow_log(&target, now, &limits, f));
        Ok(findings.into_report())
    }
}

/// Record `value` against `limit`: a problem past it, a note within.
fn judge(findings: &mut Findings, limit: &Threshold, value: f64, text: String) {
    let status = limit.status(value);
    if status == Status::Ok {
        findings.note(text);
    } else {
        findings.problem(
            status,
            format!("{text} (limits {} / {})", limit.warning, limit.critical),
        );
    }
}

fn canary_series(statistic: &str, seconds: f64) -> Measurement {
    measurement("redis.canary.duration", seconds, "s").attr("statistic", statistic)
}

fn report_canary(target: &str, latency: &canary::Latency, limits: &Limits, f: &mut Findings) {
    let p50 = latency.median.as_secs_f64();
    for try_ in &latency.tries {
        f.push(
            measurement("db.client.operation.duration", try_.as_secs_f64(), "s")
                .attr("db.system.name", "redis"),
        );
    }
    f.push(canary_series("p50", p50));
    f.push(canary_series("max", latency.max.as_secs_f64()));
    judge(
        f,
        &limits.latency,
        p50,
        format!(
            "{target}: PING p50 {:.2} ms, max {:.2} ms over {} tries",
            p50 * 1000.0,
            latency.max.as_secs_f64() * 1000.0,
            latency.tries.len()
        ),
    );
}

/// The server's clock in seconds: `INFO server`'s `server_time_usec`, or
/// `TIME` on servers without it.
fn server_now(target: &str, info: &Info) -> Result<f64> {
    if let Some(usec) = info.number("server_time_usec") {
        return Ok(usec / 1e6);
    }
    let reply = redis::call(target, &["TIME"])?;
    let parts = reply.items().unwrap_or_default();
    match (
        parts.first().and_then(|s| s.int()),
        parts.get(1).and_then(|u| u.int()),
    ) {
        (Some(seconds), Some(micros)) => Ok(seconds as f64 + micros as f64 / 1e6),
        _ => bail!("{target}: TIME gave no time: {reply:?}"),
    }
}

/// `LATENCY LATEST`: spikes within the window.
fn spikes(target: &str, now: f64, limits: &Limits, f: &mut Findings) -> Result<()> {
    let reply = redis::call(target, &["LATENCY", "LATEST"])?;
    let all = events::spikes(&reply);
    if all.is_empty() {
        let threshold = redis::config_get(target, &["latency-monitor-threshold"])
            .ok()
            .and_then(|p| p.get("latency-monitor-threshold").cloned());
        if threshold.as_deref() == Some("0") {
            f.note(format!(
                "{target}: the latency monitor is off (latency-monitor-threshold 0)"
            ));
        }
        return Ok(());
    }
    let mut quiet = true;
    for spike in all
        .iter()
        .filter(|s| events::recent(s.at, now, limits.window))
    {
        quiet = false;
        f.push(measurement("redis.latency.spike", spike.latest, "s").attr("event", &spike.event));
        judge(
            f,
            &limits.spike,
            spike.latest,
            format!(
                "{target}: a `{}` latency spike of {:.0} ms {:.0} s ago (largest {:.0} ms)",
                spike.event,
                spike.latest * 1000.0,
                (now - spike.at as f64).max(0.0),
                spike.max * 1000.0
            ),
        );
    }
    if quiet {
        f.note(format!(
            "{target}: no latency spike in the last {} s",
            limits.window
        ));
    }
    Ok(())
}

/// `SLOWLOG GET`: entries within the window.
fn slow_log(target: &str, now: f64, limits: &Limits, f: &mut Findings) -> Result<()> {
    let reply = redis::call(target, &["SLOWLOG", "GET", "128"])?;
    let entries = events::slow_entries(&reply);
    if let Some(newest) = entries.iter().map(|e| e.id).max() {
        f.push(measurement(
            "redis.slowlog.last_id",
            newest as f64,
            "{entry}",
        ));
    }
    let new: Vec<&events::Slow> = entries
        .iter()
        .filter(|e| events::recent(e.at, now, limits.window))
        .collect();
    f.push(measurement(
        "redis.slowlog.new",
        new.len() as f64,
        "{entry}",
    ));
    let Some(slowest) = new.iter().max_by(|a, b| a.took.total_cmp(&b.took)) else {
        return Ok(());
    };
    let text = format!(
        "{target}: {} slow-log entries in the last {} s, the slowest `{}` {:.0} ms",
        new.len(),
        limits.window,
        slowest.command,
        slowest.took * 1000.0
    );
    match &limits.slowlog {
        Some(limit) => judge(f, limit, new.len() as f64, text),
        None => f.note(text),
    }
    Ok(())
}

watchpost_probe::export_probe!(RedisPerformance);
