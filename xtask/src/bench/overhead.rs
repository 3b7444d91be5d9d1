//! The agent's own cost around the runs:
//!
//! - `idle`: the embedded default config (3 host probes every 10-30 s,
//!   its status API) with a warm compile cache, CPU over a 60 s window
//!   after a warm-up, and its RSS (total and anonymous);
//! - `io`: state writes at 1,000 probes every 1 s over a window: bytes
//!   handed to the block layer (`write_bytes` of `/proc/PID/io`), bytes
//!   written by any `write` (`wchar`, sockets and the log included), and
//!   the `fsync`/`fdatasync` calls counted by `strace -c -f` attached to
//!   the agent for the window (strace slows the agent; CPU is not taken
//!   from this run);
//! - `rss`: RSS of the embedded default config once every probe has run,
//!   started with an empty compile cache (cold) and again on the cache
//!   the first start left (warm).

use super::agent::{RunningAgent, free_port, fresh_state};
use super::stats::median_range;
use super::{Built, Options, Row};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The embedded default config with its state in `state` and its API on
/// `port` (the probes and their schedule as shipped).
fn default_config(state: &Path, port: u16) -> Result<String, String> {
    let path = crate::root().join("agent/src/config/default.toml");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let listen = "listen = \"127.0.0.1:9464\"";
    if !text.contains(listen) {
        return Err(format!(
            "{} no longer has `{listen}`: update the idle benchmark",
            path.display()
        ));
    }
    Ok(text.replace(
        listen,
        &format!(
            "listen = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"",
            state.display()
        ),
    ))
}

/// Probes in the embedded default config.
const DEFAULT_PROBES: usize = 3;

fn start_default(built: &Built, state: &Path) -> Result<RunningAgent, String> {
    let port = free_port();
    let agent = RunningAgent::start_config(built, "default", &default_config(state, port)?, port)?;
    agent.wait_all_run(DEFAULT_PROBES, Instant::now(), Duration::from_millis(20))?;
    Ok(agent)
}

pub fn idle(built: &Built, options: &Options) -> Result<Vec<Row>, String> {
    let (warmup, window) = if options.quick { (2, 10) } else { (5, 60) };
    let (mut cpu, mut rss, mut anon) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        eprintln!("xtask: idle, embedded default config, round {}", round + 1);
        let state = fresh_state(built, "idle-state")?;
        // A first start fills the compile cache.
        start_default(built, &state)?.stop();
        let agent = start_default(built, &state)?;
        std::thread::sleep(Duration::from_secs(warmup));
        let (a, at) = (agent.cpu_seconds(), Instant::now());
        std::thread::sleep(Duration::from_secs(window));
        let b = agent.cpu_seconds();
        cpu.push((b - a) / at.elapsed().as_secs_f64() * 100.0);
        rss.push(agent.status_kib("VmRSS") / 1024.0);
        anon.push(agent.status_kib("RssAnon") / 1024.0);
        agent.stop();
    }
    Ok(vec![
        Row::new(
            format!("agent idle, embedded default config: CPU of one core over {window} s"),
            median_range(&cpu, "%", 3),
            "goal ≤ 0.05 %; from /proc/PID/stat (10 ms ticks)",
        ),
        Row::new(
            "agent idle, embedded default config: RSS (warm cache)",
            median_range(&rss, "MiB", 1),
            format!("of which anonymous {}", median_range(&anon, "MiB", 1)),
        ),
    ])
}

/// `/proc/PID/io` field `key`.
fn proc_io(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// fsync-family calls of `pid` (all threads) over `window`, with strace.
fn count_fsyncs(pid: u32, window: Duration, out: &Path) -> Result<f64, String> {
    let mut strace = Command::new("strace")
        .args([
            "-c",
            "-f",
            "-e",
            "trace=fsync,fdatasync,syncfs,sync_file_range",
            "-o",
        ])
        .arg(out)
        .args(["-p", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run strace (apt-get install strace): {e}"))?;
    std::thread::sleep(window);
    // SIGINT: strace detaches and writes its summary.
    let _ = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = strace.wait();
    let text = std::fs::read_to_string(out).unwrap_or_default();
    // Summary lines: "% time seconds usecs/call calls [errors] syscall".
    Ok(text
        .lines()
        .filter(|l| {
            ["fsync", "fdatasync", "syncfs", "sync_file_range"]
                .iter()
                .any(|s| l.trim_end().ends_with(&format!(" {s}")))
        })
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<f64>().ok())
        .sum())
}

pub fn io(built: &Built, options: &Options) -> Result<Vec<Row>, String> {
    let (warmup, window) = if options.quick { (2, 10) } else { (5, 30) };
    let count = 1000;
    let (mut fsyncs, mut disk, mut wchar) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        eprintln!(
            "xtask: state writes, {count} probes every 1s, round {}",
            round + 1
        );
        let state = fresh_state(built, "io-state")?;
        let agent = RunningAgent::start(built, "io", count, "1s", &state)?;
        agent.wait_all_run(count, Instant::now(), Duration::from_millis(50))?;
        std::thread::sleep(Duration::from_secs(warmup));
        let pid = agent.pid();
        let (d0, w0, at) = (
            proc_io(pid, "write_bytes"),
            proc_io(pid, "wchar"),
            Instant::now(),
        );
        // Bytes over the window without strace, then fsyncs with it.
        std::thread::sleep(Duration::from_secs(window));
        let seconds = at.elapsed().as_secs_f64();
        disk.push((proc_io(pid, "write_bytes") - d0) / seconds / 1024.0);
        wchar.push((proc_io(pid, "wchar") - w0) / seconds / 1024.0);
        let calls = count_fsyncs(
            pid,
            Duration::from_secs(window),
            &built.dir.join("io-strace.txt"),
        )?;
        fsyncs.push(calls / window as f64);
        agent.stop();
    }
    Ok(vec![
        Row::new(
            format!("agent, {count} probes every 1s: fsyncs per second"),
            median_range(&fsyncs, "/s", 1),
            "goal ≤ 2/s; fsync + fdatasync of every thread (strace -c -f)",
        ),
        Row::new(
            format!("agent, {count} probes every 1s: bytes written to disk"),
            median_range(&disk, "KiB/s", 0),
            format!(
                "goal ≤ 1 MB/s; write_bytes of /proc/PID/io; all write calls (wchar, logs and API included): {}",
                median_range(&wchar, "KiB/s", 0)
            ),
        ),
    ])
}

pub fn rss(built: &Built, options: &Options) -> Result<Vec<Row>, String> {
    let (mut cold, mut warm, mut cold_anon, mut warm_anon) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        eprintln!("xtask: RSS cold and warm, round {}", round + 1);
        let state = fresh_state(built, "rss-state")?;
        for (rss, anon) in [(&mut cold, &mut cold_anon), (&mut warm, &mut warm_anon)] {
            let agent = start_default(built, &state)?;
            std::thread::sleep(Duration::from_secs(2));
            rss.push(agent.status_kib("VmRSS") / 1024.0);
            anon.push(agent.status_kib("RssAnon") / 1024.0);
            agent.stop();
        }
    }
    Ok(vec![
        Row::new(
            "agent, embedded default config: RSS after a cold start (empty compile cache)",
            median_range(&cold, "MiB", 1),
            format!("anonymous {}", median_range(&cold_anon, "MiB", 1)),
        ),
        Row::new(
            "agent, embedded default config: RSS after a warm start",
            median_range(&warm, "MiB", 1),
            format!("anonymous {}", median_range(&warm_anon, "MiB", 1)),
        ),
    ])
}
