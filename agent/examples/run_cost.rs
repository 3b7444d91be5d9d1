//! Per-run cost of a probe inside one agent process: load it once (through
//! the compile cache), then run `check` N times, each in a fresh sandbox as
//! the agent does, and print the p50 and p99 of the run time.
//!
//! ```sh
//! cargo run --example run_cost -- PROBE.wasm [RUNS] [--set KEY=VALUE]...
//! ```
//!
//! Unlike a loop of `watchpost check`, this leaves out process start-up and
//! loading, and measures runs after the first, as in the agent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use watchpost::runtime::cache::CacheSettings;
use watchpost::runtime::engine::PoolSize;
use watchpost::runtime::{Grants, Limits, Runtime, Services};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or_else(|| {
        anyhow::anyhow!("usage: run_cost PROBE.wasm [RUNS] [--set KEY=VALUE]...")
    })?);
    let mut runs = 200usize;
    let mut config = BTreeMap::new();
    while let Some(arg) = args.next() {
        if arg == "--set" {
            let pair = args.next().unwrap_or_default();
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--set expects KEY=VALUE, got {pair:?}"))?;
            config.insert(key.to_string(), value.to_string());
        } else {
            runs = arg.parse()?;
        }
    }
    let state_dir = watchpost::config::default_state_dir();
    let runtime = Runtime::new(PoolSize { instances: 8 })?
        .with_cache(CacheSettings::in_state_dir(&state_dir, 1 << 30));
    let services = Arc::new(Services::default());
    let started = Instant::now();
    let probe = runtime.load_file(&path, &services).await?;
    let load = started.elapsed();
    let grants = Arc::new(Grants {
        name: probe.info.name.clone(),
        config,
        targets: Vec::new(),
    });
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let report = runtime
            .run(&probe, &grants, &services, Limits::default())
            .await;
        if let Some(error) = report.error {
            anyhow::bail!("run failed: {} ({})", error.message, error.kind);
        }
        times.push(report.duration);
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{}: load {:.1} ms ({:?}), {runs} runs: p50 {:.3} ms, p99 {:.3} ms",
        probe.info.name,
        load.as_secs_f64() * 1000.0,
        runtime.cache_stats().unwrap_or_default(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
    );
    Ok(())
}
