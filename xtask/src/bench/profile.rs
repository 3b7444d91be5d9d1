//! `--only profile`: where a run's CPU goes in the running agent. The
//! release agent on N copies of the trivial probe every 1 s (`--counts`,
//! default 1,000), after every probe has run and a warm-up, is sampled by
//! `perf record -e cpu-clock --call-graph dwarf` (every thread, kernel
//! included) over a window; each sample is put in one stage of the run's
//! path by the frames of its call chain (see [`STAGES`]), and the share
//! of each stage is turned into µs per run with the agent's CPU time and
//! run count over the same window.
//!
//! `cpu-clock` samples CPU time (this machine has no hardware counters,
//! and valgrind cannot hold wasmtime's pooled address space, over 1 TiB
//! reserved), so the figures move with the load; the shares are steadier
//! than the totals. The raw profile stays in `target/bench/profile.data`
//! (`perf report -i target/bench/profile.data --no-children`).

use super::agent::{RunningAgent, fresh_state};
use super::footprint::total;
use super::{Built, Options, Row};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Stages, in order of precedence: a sample belongs to the first stage
/// one of whose markers a frame of its call chain contains (so `malloc`
/// under `StateWriter::save` counts for the state hand-off, a timer set
/// by a run's timeout for the sandbox, and the rest of `run_once`, which
/// the compiler inlines into its caller, for the pipeline glue). Frames
/// in `/tmp/perf-PID.map` are the probe's compiled code.
const STAGES: &[(&str, &[&str])] = &[
    (
        "state writer task (journal, fsync, snapshot)",
        &[
            "store::writer::run",
            "store::writer::write",
            "writer::Task",
            "store::journal",
            "store::atomic",
        ],
    ),
    (
        "state hand-off per run (StateWriter::save)",
        &["writer::StateWriter"],
    ),
    (
        "policy (ProbeState::apply)",
        &[
            "policy::state",
            "policy::confirm",
            "policy::flap",
            "policy::thresholds",
        ],
    ),
    ("recent measurements ring", &["telemetry::recent"]),
    (
        "metrics (counters, histograms)",
        &["telemetry::counters", "telemetry::histogram"],
    ),
    (
        "event bus",
        &["events::Bus", "events::RunEvent", "AgentEvent"],
    ),
    ("OTLP export", &["telemetry::otlp", "opentelemetry"]),
    (
        "logging",
        &["tracing_subscriber", "tracing_core", "pipeline::log"],
    ),
    (
        "status API (the bench's /metrics reads)",
        &["watchpost::api", "hyper", "axum"],
    ),
    ("semaphore", &["batch_semaphore", "Semaphore"]),
    (
        "sandbox (instantiate, call, reset the slot)",
        &[
            "runtime::run::",
            "Runtime::run",
            "ProbePre",
            "wasmtime",
            "cranelift",
            "runtime::state",
            "runtime::output",
            "/tmp/perf-",
        ],
    ),
    ("epoch ticker thread", &["runtime::engine::tick"]),
    (
        "pipeline glue (run_once, inlined)",
        &[
            "daemon::pipeline",
            "AssertUnwindSafe<F> as core::future::future::Future>::poll",
        ],
    ),
    (
        "scheduling (timing loops)",
        &["watchpost::schedule", "task_tracker::TrackedFuture"],
    ),
    (
        "tokio (task wake-ups, timers, worker parking)",
        &["tokio::"],
    ),
];

/// Samples by stage, from `perf script` output (`comm`, then the call
/// chain one frame a line, leaf first, samples separated by blank lines).
fn classify(script: &str) -> BTreeMap<String, u64> {
    let mut by_stage: BTreeMap<String, u64> = BTreeMap::new();
    for sample in script.split("\n\n") {
        let mut lines = sample.lines().filter(|l| !l.trim().is_empty());
        let Some(header) = lines.next() else { continue };
        let frames: Vec<&str> = lines.collect();
        let stage = STAGES
            .iter()
            .find(|(_, markers)| {
                frames
                    .iter()
                    .any(|frame| markers.iter().any(|m| frame.contains(m)))
            })
            .map(|(stage, _)| (*stage).to_string())
            .unwrap_or_else(|| {
                let thread = header.split_whitespace().next().unwrap_or("?");
                if thread.starts_with("watchpost-epoc") {
                    "epoch ticker thread".into()
                } else if frames.iter().all(|f| f.contains("[kernel.kallsyms]")) {
                    format!("kernel, no user frames ({thread})")
                } else {
                    format!("other ({thread})")
                }
            });
        *by_stage.entry(stage).or_default() += 1;
    }
    by_stage
}

fn perf(args: &[&str]) -> Result<std::process::Output, String> {
    Command::new("perf")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run perf (Debian: apt-get install linux-perf): {e}"))
}

pub fn run(built: &Built, options: &Options) -> Result<Vec<Row>, String> {
    let count = options.counts.first().copied().unwrap_or(1000);
    let (warmup, window) = if options.quick { (2, 10) } else { (5, 30) };
    let state = fresh_state(built, "profile-state")?;
    let agent = RunningAgent::start(built, &format!("profile-{count}"), count, "1s", &state)?;
    agent.wait_all_run(count, Instant::now(), Duration::from_millis(50))?;
    std::thread::sleep(Duration::from_secs(warmup));
    let data = built.dir.join("profile.data");
    let data = data.to_string_lossy().to_string();
    let pid = agent.pid().to_string();
    let runs = |agent: &RunningAgent| {
        agent
            .get("/metrics")
            .map(|m| total(&m, "watchpost_probe_runs_total"))
            .ok_or("the agent's /metrics does not answer")
    };
    let (runs_before, cpu_before) = (runs(&agent)?, agent.cpu_seconds());
    eprintln!("xtask: profile, {count} probes every 1s: perf record for {window} s");
    let recorded = perf(&[
        "record",
        "-e",
        "cpu-clock",
        "-F",
        "997",
        "--call-graph",
        "dwarf,16384",
        "-p",
        &pid,
        "-o",
        &data,
        "--",
        "sleep",
        &window.to_string(),
    ])?;
    let (runs_after, cpu_after) = (runs(&agent)?, agent.cpu_seconds());
    agent.stop();
    if !recorded.status.success() {
        return Err(format!(
            "perf record failed: {}",
            String::from_utf8_lossy(&recorded.stderr)
        ));
    }
    let script = perf(&["script", "-i", &data, "-F", "comm,tid,ip,sym,dso"])?;
    let by_stage = classify(&String::from_utf8_lossy(&script.stdout));
    let samples: u64 = by_stage.values().sum();
    let run_count = (runs_after - runs_before).max(1.0);
    // perf's own unwinding slows the agent: the µs are indicative, the
    // shares are the profile.
    let per_run_us = (cpu_after - cpu_before) / run_count * 1e6;
    let mut stages: Vec<(String, u64)> = by_stage.into_iter().collect();
    stages.sort_by_key(|s| std::cmp::Reverse(s.1));
    let mut rows = vec![Row::new(
        format!("profile, {count} probes every 1s: CPU per run while sampled"),
        format!("{per_run_us:.1} µs"),
        format!("{samples} samples of cpu-clock over {window} s, {run_count:.0} runs"),
    )];
    for (stage, n) in stages {
        let share = n as f64 / samples.max(1) as f64;
        rows.push(Row::new(
            format!("profile: {stage}"),
            format!("{:.1} %", share * 100.0),
            format!("~{:.1} µs per run", share * per_run_us),
        ));
    }
    Ok(rows)
}
