//! `watchpost bench PROBE [-n N] [--concurrency C] [--json]`: the per-run
//! cost of a probe, measured through the same path the agent uses (a fresh
//! sandbox per run: instantiate, call, tear down), after loading it once.
//! Prints p50/p90/p99 per run, runs per second, CPU time per run and the
//! peak linear memory of a run.

use super::cache::CacheArg;
use super::probe_source::{ProbeArgs, ResolveError, read_config, resolve};
use crate::config::units::human_bytes;
use crate::report::Status;
use crate::runtime::{Runtime, engine::PoolSize};
use serde::Serialize;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,
    #[command(flatten)]
    pub cache: CacheArg,
    /// Runs to measure.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub runs: usize,
    /// Runs in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Runs before measuring (warm caches and pools).
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What a benchmark measured.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub probe: String,
    pub runs: usize,
    pub concurrency: usize,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    pub runs_per_second: f64,
    /// CPU time of the whole process per run (user + system).
    pub cpu_per_run_us: f64,
    pub peak_memory_bytes: u64,
    /// Runs that did not end `ok`, by status.
    pub not_ok: usize,
    pub last_status: Status,
    pub last_message: String,
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1e6
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.runs > 0, "-n must be at least 1");
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let config = read_config(&args.probe).map_err(anyhow::Error::msg)?;
    let instances = (args.concurrency as u32 * 2 + 8).max(16);
    let runtime = Arc::new(args.cache.apply(
        Runtime::new(PoolSize { instances })?,
        config.as_ref().map(|c| &c.agent),
    ));
    let resolved = match resolve(&args.probe, config.as_ref(), &runtime).await {
        Ok(resolved) => Arc::new(resolved),
        Err(ResolveError::Usage(message)) => anyhow::bail!(message),
        Err(ResolveError::Load(_, error)) => anyhow::bail!(error.message),
    };
    for _ in 0..args.warmup {
        runtime
            .run(
                &resolved.probe,
                &resolved.grants,
                &resolved.services,
                resolved.limits,
            )
            .await;
    }
    let cpu_before = cpu_time();
    let started = Instant::now();
    let per_task = args.runs.div_ceil(args.concurrency);
    let mut tasks = Vec::new();
    for task in 0..args.concurrency {
        let runs = per_task.min(args.runs.saturating_sub(task * per_task));
        let (runtime, resolved) = (runtime.clone(), resolved.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(runs);
            let mut last = None;
            for _ in 0..runs {
                let t = Instant::now();
                let report = runtime
                    .run(
                        &resolved.probe,
                        &resolved.grants,
                        &resolved.services,
                        resolved.limits,
                    )
                    .await;
                samples.push((t.elapsed(), report.status, report.peak_memory));
                last = Some(report);
            }
            (samples, last)
        }));
    }
    let mut samples = Vec::with_capacity(args.runs);
    let mut last = None;
    for task in tasks {
        let (s, l) = task.await?;
        samples.extend(s);
        last = l.or(last);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let mut durations: Vec<Duration> = samples.iter().map(|(d, _, _)| *d).collect();
    durations.sort_unstable();
    let n = durations.len().max(1) as f64;
    let last = last.ok_or_else(|| anyhow::anyhow!("no run was measured"))?;
    let result = BenchResult {
        probe: resolved.name.clone(),
        runs: samples.len(),
        concurrency: args.concurrency,
        p50_us: percentile(&durations, 0.50),
        p90_us: percentile(&durations, 0.90),
        p99_us: percentile(&durations, 0.99),
        max_us: percentile(&durations, 1.0),
        mean_us: durations.iter().map(Duration::as_secs_f64).sum::<f64>() / n * 1e6,
        runs_per_second: samples.len() as f64 / elapsed.as_secs_f64(),
        cpu_per_run_us: cpu.as_secs_f64() / n * 1e6,
        peak_memory_bytes: samples.iter().map(|(_, _, m)| *m).max().unwrap_or(0),
        not_ok: samples.iter().filter(|(_, s, _)| *s != Status::Ok).count(),
        last_status: last.status,
        last_message: last.message.clone(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!(
            "{}: {} runs, concurrency {}\n  per run: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs, mean {:.1} µs\n  {:.0} runs/s, CPU {:.1} µs per run, peak memory per run {}\n  last run: {} - {}{}",
            result.probe,
            result.runs,
            result.concurrency,
            result.p50_us,
            result.p90_us,
            result.p99_us,
            result.max_us,
            result.mean_us,
            result.runs_per_second,
            result.cpu_per_run_us,
            human_bytes(result.peak_memory_bytes),
            result.last_status.nagios_word(),
            result.last_message,
            if result.not_ok > 0 {
                format!(" ({} runs not ok)", result.not_ok)
            } else {
                String::new()
            },
        );
    }
    Ok(ExitCode::SUCCESS)
}
