//! How loaded the server is, from `INFO`: memory against `maxmemory`,
//! fragmentation, evictions, clients against `maxclients`. Pure, so that
//! every outcome is tested here without a server.

use watchpost_probe::redis::Info;
use watchpost_probe::{Findings, Status, Threshold, measurement};

/// The limits of this part.
pub struct Limits {
    /// Used memory over `maxmemory`.
    pub memory: Threshold,
    /// `mem_fragmentation_ratio`, applied past `fragmentation_min_bytes`.
    pub fragmentation: Threshold,
    pub fragmentation_min_bytes: f64,
    /// Connected clients over `maxclients`.
    pub clients: Threshold,
    /// Blocked clients (off unless configured).
    pub blocked: Option<Threshold>,
}

/// Record `value` against `limit` (a problem past it, a note within).
fn judge(f: &mut Findings, limit: &Threshold, value: f64, text: String) {
    let status = limit.status(value);
    if status == Status::Ok {
        f.note(text);
    } else {
        f.problem(
            status,
            format!("{text} (limits {} / {})", limit.warning, limit.critical),
        );
    }
}

/// Memory: used of `maxmemory`, fragmentation, evictions.
///
/// At `maxmemory` a server with an eviction policy evicts keys (a
/// `warning`, the evictions named: a cache may live there, a store loses
/// data); one with `noeviction` refuses writes with `OOM` (`critical`).
pub fn memory(target: &str, info: &Info, limits: &Limits, f: &mut Findings) {
    let used = info.number("used_memory").unwrap_or(0.0);
    f.push(measurement("redis.memory.used", used, "By"));
    if let Some(rss) = info.number("used_memory_rss") {
        f.push(measurement("redis.memory.rss", rss, "By"));
    }
    let evicted = info.number("evicted_keys").unwrap_or(0.0);
    f.push(measurement("redis.keys.evicted", evicted, "{key}"));
    let policy = info.get("maxmemory_policy").unwrap_or("noeviction");
    let max = info.number("maxmemory").unwrap_or(0.0);
    let evictions = if evicted > 0.0 {
        format!(", {evicted:.0} keys evicted since the server started")
    } else {
        String::new()
    };
    if max > 0.0 {
        f.push(measurement("redis.maxmemory", max, "By"));
        let ratio = used / max;
        f.push(measurement("redis.memory.used_ratio", ratio, "1"));
        let status = limits.memory.status(ratio);
        let text = format!(
            "{target}: memory {:.1} MiB of maxmemory {:.1} MiB ({:.0} %), policy {policy}{evictions}",
            used / 1048576.0,
            max / 1048576.0,
            ratio * 100.0
        );
        let limits_text = format!(
            " (limits {} / {})",
            limits.memory.warning, limits.memory.critical
        );
        match status {
            Status::Ok => f.note(text),
            _ if policy != "noeviction" => f.problem(
                Status::Warning,
                format!("{text}: at the limit keys are evicted{limits_text}"),
            ),
            Status::Critical => f.problem(
                Status::Critical,
                format!("{text}: at the limit writes fail with OOM{limits_text}"),
            ),
            other => f.problem(other, format!("{text}{limits_text}")),
        }
    } else {
        f.note(format!(
            "{target}: memory {:.1} MiB, no maxmemory set{evictions}",
            used / 1048576.0
        ));
    }
    if let Some(ratio) = info.number("mem_fragmentation_ratio") {
        f.push(measurement("redis.memory.fragmentation_ratio", ratio, "1"));
        let wasted = info
            .number("mem_fragmentation_bytes")
            .or_else(|| Some(info.number("used_memory_rss")? - used))
            .unwrap_or(0.0);
        // A small server's ratio says nothing (a few MiB of RSS over
        // almost no data); only waste that matters is judged.
        if wasted > limits.fragmentation_min_bytes {
            judge(
                f,
                &limits.fragmentation,
                ratio,
                format!(
                    "{target}: fragmentation ratio {ratio:.2}, {:.0} MiB resident beyond the data",
                    wasted / 1048576.0
                ),
            );
        }
    }
}

/// Clients: connected of `maxclients`, blocked.
pub fn clients(
    target: &str,
    info: &Info,
    maxclients: Option<f64>,
    limits: &Limits,
    f: &mut Findings,
) {
    let connected = info.number("connected_clients").unwrap_or(0.0);
    let blocked = info.number("blocked_clients").unwrap_or(0.0);
    f.push(measurement(
        "redis.clients.connected",
        connected,
        "{client}",
    ));
    f.push(measurement("redis.clients.blocked", blocked, "{client}"));
    if let Some(max) = info
        .number("maxclients")
        .or(maxclients)
        .filter(|m| *m > 0.0)
    {
        let ratio = connected / max;
        f.push(measurement("redis.clients.used_ratio", ratio, "1"));
        judge(
            f,
            &limits.clients,
            ratio,
            format!("{target}: {connected:.0} of {max:.0} clients connected"),
        );
    }
    if let Some(limit) = &limits.blocked {
        judge(
            f,
            limit,
            blocked,
            format!("{target}: {blocked:.0} clients blocked (BLPOP, WAIT, ...)"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchpost_probe::Report;

    fn info(pairs: &[(&str, &str)]) -> Info {
        Info(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn limits() -> Limits {
        Limits {
            memory: Threshold::above(0.9, 0.95),
            fragmentation: Threshold::above(1.5, 3.0),
            fragmentation_min_bytes: 100.0 * 1048576.0,
            clients: Threshold::above(0.8, 0.95),
            blocked: None,
        }
    }

    fn memory_report(pairs: &[(&str, &str)]) -> Report {
        let mut f = Findings::new();
        memory("cache", &info(pairs), &limits(), &mut f);
        f.into_report()
    }

    #[test]
    fn full_memory_is_critical_only_without_eviction() {
        let full = [
            ("used_memory", "990"),
            ("maxmemory", "1000"),
            ("maxmemory_policy", "noeviction"),
        ];
        let report = memory_report(&full);
        assert_eq!(report.status, Status::Critical, "{}", report.message);
        assert!(report.message.contains("OOM"), "{}", report.message);
        let evicting = [
            ("used_memory", "990"),
            ("maxmemory", "1000"),
            ("maxmemory_policy", "allkeys-lru"),
            ("evicted_keys", "42"),
        ];
        let report = memory_report(&evicting);
        assert_eq!(report.status, Status::Warning, "{}", report.message);
        assert!(
            report.message.contains("42 keys evicted"),
            "{}",
            report.message
        );
        let fine = [("used_memory", "500"), ("maxmemory", "1000")];
        assert_eq!(memory_report(&fine).status, Status::Ok);
        let unlimited = memory_report(&[("used_memory", "500"), ("maxmemory", "0")]);
        assert_eq!(unlimited.status, Status::Ok);
        assert!(unlimited.message.contains("no maxmemory"));
        assert!(
            !unlimited
                .measurements
                .iter()
                .any(|m| m.name == "redis.memory.used_ratio")
        );
    }

    #[test]
    fn fragmentation_counts_only_past_the_bytes_floor() {
        let small = [
            ("used_memory", "1000000"),
            ("mem_fragmentation_ratio", "8.5"),
            ("mem_fragmentation_bytes", "7500000"),
        ];
        assert_eq!(memory_report(&small).status, Status::Ok);
        let big = [
            ("used_memory", "1000000000"),
            ("mem_fragmentation_ratio", "2.0"),
            ("mem_fragmentation_bytes", "1000000000"),
        ];
        let report = memory_report(&big);
        assert_eq!(report.status, Status::Warning, "{}", report.message);
        assert!(report.message.contains("fragmentation"));
    }

    #[test]
    fn clients_against_maxclients() {
        let mut f = Findings::new();
        let pairs = info(&[("connected_clients", "97"), ("blocked_clients", "3")]);
        clients("cache", &pairs, Some(100.0), &limits(), &mut f);
        let report = f.into_report();
        assert_eq!(report.status, Status::Critical, "{}", report.message);
        assert!(report.message.contains("97 of 100"), "{}", report.message);
        let mut f = Findings::new();
        let strict = Limits {
            blocked: Some(Threshold::above(1.0, 10.0)),
            ..limits()
        };
        let pairs = info(&[
            ("connected_clients", "5"),
            ("blocked_clients", "3"),
            ("maxclients", "10000"),
        ]);
        clients("cache", &pairs, None, &strict, &mut f);
        let report = f.into_report();
        assert_eq!(report.status, Status::Warning, "{}", report.message);
        assert!(report.message.contains("3 clients blocked"));
    }
}
