//! The agent's footprint and scheduling accuracy: the release agent with
//! N copies of the trivial probe, measured over a window after a warm-up.
//! RSS from /proc; CPU from the process's CPU time over the window;
//! lateness (actual minus planned start of each run) from the
//! `watchpost_schedule_lateness_seconds` histogram's growth over the
//! window, summed over probes: the p99 is the bucket bound it falls in.

use super::agent::{RunningAgent, fresh_state};
use super::stats::median_range;
use super::{Built, Options, Row};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What /metrics says at one moment.
struct Sample {
    at: Instant,
    cpu: f64,
    /// Lateness buckets summed over probes: (le, cumulative count).
    lateness: BTreeMap<String, f64>,
    runs: f64,
    skipped: f64,
}

/// The sum of a metric over its label sets.
pub(super) fn total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn sample(agent: &RunningAgent) -> Result<Sample, String> {
    let metrics = agent
        .get("/metrics")
        .ok_or("the agent's /metrics does not answer")?;
    let mut lateness = BTreeMap::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("watchpost_schedule_lateness_seconds_bucket{"))
    {
        let Some(le) = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()) else {
            continue;
        };
        let count: f64 = line
            .rsplit_once(' ')
            .and_then(|(_, c)| c.parse().ok())
            .unwrap_or(0.0);
        *lateness.entry(le.to_string()).or_insert(0.0) += count;
    }
    Ok(Sample {
        at: Instant::now(),
        cpu: agent.cpu_seconds(),
        lateness,
        runs: total(&metrics, "watchpost_probe_runs_total"),
        skipped: total(&metrics, "watchpost_probe_skipped_ticks_total"),
    })
}

/// The p99 bucket bound of the lateness growth between two samples.
fn lateness_p99(a: &Sample, b: &Sample) -> String {
    let mut bounds: Vec<(f64, String, f64)> = b
        .lateness
        .iter()
        .map(|(le, count)| {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            (
                bound,
                le.clone(),
                count - a.lateness.get(le).copied().unwrap_or(0.0),
            )
        })
        .collect();
    bounds.sort_by(|x, y| x.0.total_cmp(&y.0));
    let all = bounds.last().map_or(0.0, |b| b.2);
    bounds
        .iter()
        .find(|(_, _, count)| *count >= 0.99 * all)
        .map_or("?".into(), |(bound, le, _)| {
            if bound.is_finite() {
                format!("≤ {} ms", bound * 1000.0)
            } else {
                format!("> {le}")
            }
        })
}

struct Figures {
    rss_mib: f64,
    cpu_percent: f64,
    /// All-in CPU of the agent per run, in µs.
    cpu_per_run_us: f64,
    runs_per_second: f64,
    skipped: f64,
    p99: String,
}

fn measure(built: &Built, count: usize, every: &str, options: &Options) -> Result<Figures, String> {
    let (warmup, window) = if options.quick { (2, 10) } else { (5, 60) };
    let state = fresh_state(built, "footprint-state")?;
    let agent = RunningAgent::start(built, &format!("footprint-{count}"), count, every, &state)?;
    agent.wait_all_run(count, Instant::now(), Duration::from_millis(50))?;
    std::thread::sleep(Duration::from_secs(warmup));
    let a = sample(&agent)?;
    std::thread::sleep(Duration::from_secs(window));
    let b = sample(&agent)?;
    let seconds = b.at.duration_since(a.at).as_secs_f64();
    let figures = Figures {
        rss_mib: agent.status_kib("VmRSS") / 1024.0,
        cpu_percent: (b.cpu - a.cpu) / seconds * 100.0,
        cpu_per_run_us: (b.cpu - a.cpu) / (b.runs - a.runs).max(1.0) * 1e6,
        runs_per_second: (b.runs - a.runs) / seconds,
        skipped: b.skipped - a.skipped,
        p99: lateness_p99(&a, &b),
    };
    agent.stop();
    Ok(figures)
}

pub fn run(built: &Built, options: &Options) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (count, every, goal) in [
        (20, "5s", "goal: RSS ≤ 30 MB, CPU ≤ 1 %"),
        (10, "1s", ""),
        (100, "1s", ""),
        (1000, "1s", "goal: sustained, lateness p99 < 50 ms"),
    ] {
        if !options.counts.is_empty() && !options.counts.contains(&count) {
            continue;
        }
        let mut all = Vec::new();
        for round in 0..options.rounds {
            eprintln!(
                "xtask: footprint, {count} probes every {every}, round {}",
                round + 1
            );
            all.push(measure(built, count, every, options)?);
        }
        let col = |f: fn(&Figures) -> f64| all.iter().map(f).collect::<Vec<_>>();
        let p99: Vec<&str> = all.iter().map(|f| f.p99.as_str()).collect();
        rows.push(Row::new(
            format!("agent, {count} probes every {every}: RSS"),
            median_range(&col(|f| f.rss_mib), "MiB", 1),
            goal,
        ));
        rows.push(Row::new(
            format!("agent, {count} probes every {every}: CPU per run, all in"),
            median_range(&col(|f| f.cpu_per_run_us), "µs", 1),
            "the agent's CPU time over the window / runs in it; goal ≤ 60 µs",
        ));
        rows.push(Row::new(
            format!("agent, {count} probes every {every}: CPU of one core"),
            median_range(&col(|f| f.cpu_percent), "%", 2),
            format!(
                "{} runs/s, {} ticks skipped, lateness p99 {}",
                median_range(&col(|f| f.runs_per_second), "", 0),
                median_range(&col(|f| f.skipped), "", 0),
                p99.join(", ")
            ),
        ));
    }
    Ok(rows)
}
