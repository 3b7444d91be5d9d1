//! `cargo xtask bench [--quick] [--rounds N]`: the benchmark suite behind
//! BENCHMARKS.md, in one run, each figure the median (and range) of
//! several rounds:
//!
//! - [`per_run`]: a trivial Rust probe through `watchpost bench` against
//!   fork + exec of a tiny native program and of `check_dummy`; `pg-alive`
//!   against `check_pgsql` on the local PostgreSQL; `mysql-alive` against
//!   `check_mysql` and `mysqladmin ping` on a private MariaDB;
//!   `redis-alive` against `redis-cli ping` and `check_tcp` on a private
//!   Redis;
//! - [`footprint`]: the release agent's RSS, CPU and scheduling lateness
//!   over a window with 10, 100 and 1,000 probes every second and 20 every
//!   5 s;
//! - [`cold_start`]: start to every probe's first report, with an empty
//!   and with a warm compile cache;
//! - the failover and restart benchmark on a real PostgreSQL pair
//!   (`tests/examples/failover_bench.rs`);
//! - the cluster-mode benchmark: node loss and crashes on three nodes with
//!   a 3-member etcd, and the client-visible write gap of a planned
//!   switchover and a rolling restart through HAProxy, and the commit
//!   latency asynchronous and synchronous (`tests/examples/cluster_bench.rs`);
//! - [`etcd`]: etcd revisions per second of an idle three-node cluster and
//!   of one under a steady write load (`tests/examples/etcd_revisions.rs`),
//!   and Patroni's three members the same way
//!   (`xtask/peers/patroni_revisions.sh`);
//! - the MariaDB pair failover after `kill -9` of the primary
//!   (`tests/examples/mysql_failover_bench.rs`);
//! - the Redis failover after `kill -9` of the primary, side by side with
//!   Redis Sentinel (three sentinels, quorum 2) at its tuned minimum and
//!   with its defaults (`tests/examples/redis_failover_bench.rs`);
//! - [`partition`]: the Redis cluster's primary cut off by a network
//!   partition, side by side with Redis Sentinel (writes acknowledged by
//!   two primaries, acknowledged writes lost;
//!   `tests/examples/redis_partition_bench.rs`): `redis-partition`;
//! - the MariaDB and Redis cluster-mode node loss (three nodes, a 3-member
//!   etcd, the shipped lease; `tests/examples/engine_cluster_bench.rs`):
//!   `mysql-cluster` and `redis-cluster`;
//! - [`consistency`]: `mysql-consistency` against `pt-table-checksum`
//!   finding one changed row of a 1,000,000-row table
//!   (`tests/examples/mysql_consistency_bench.rs`).
//!
//! - [`overhead`]: the agent's own cost around the runs: idle CPU and RSS
//!   of the embedded default config, state writes (fsyncs and bytes per
//!   second) at 1,000 probes, RSS after a cold and a warm start;
//! - [`monit`]: Debian's Monit with equivalent checks, side by side;
//! - [`backup`]: the restore drill's cost per GiB of a ~1 GiB database and
//!   `pg-integrity`'s scan cost (pgbench TPS with and without it)
//!   (`tests/examples/backup_bench.rs`);
//! - [`peers`]: the failover time of repmgr, Patroni and pg_auto_failover
//!   from their Debian packages, by our own method (`xtask/peers/`), and
//!   Patroni's planned switchover under the writer and HAProxy of the
//!   cluster benchmark (`tests/examples/patroni_switchover_bench.rs`);
//!   `--only peers` runs it with every other section that measures a peer
//!   (`monit`, `per-run`, `etcd`, `redis-failover`, `redis-partition`,
//!   `mysql-consistency`: Monit, the Nagios checks, Patroni's etcd
//!   revisions, Redis Sentinel,
//!   `pt-table-checksum`), every comparison with a peer in one run;
//! - [`profile`]: where a run's CPU goes in the running agent, by stage
//!   (`perf record`), not part of a full run.
//!
//! `--only SECTION[,SECTION]` runs some sections: `per-run`, `cold-start`,
//! `footprint`, `idle`, `io`, `rss`, `monit`, `failover`, `cluster`, `backup`,
//! `etcd`, `mysql-failover`, `redis-failover`, `redis-partition`,
//! `mysql-cluster`, `redis-cluster`, `mysql-consistency`, `peers` (with every section that has a
//! peer), and
//! `profile` (only when named); `--counts 10,100` limits the footprint to
//! those probe counts (the profile takes the first, default 1,000).
//!
//! Results go to stdout and `target/bench/results.md`.

mod agent;
mod backup;
mod cold_start;
mod consistency;
mod etcd;
mod example;
mod footprint;
mod mariadb;
mod monit;
mod overhead;
mod partition;
mod peers;
mod per_run;
mod profile;
mod redis;
mod stats;

use crate::{cargo, root, run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Options of one suite run.
pub struct Options {
    /// Shorter windows and fewer runs: a smoke run of the suite.
    pub quick: bool,
    /// Rounds of each measurement.
    pub rounds: usize,
    /// Sections to run (empty: all).
    pub only: Vec<String>,
    /// Probe counts of the footprint section (empty: all).
    pub counts: Vec<usize>,
}

/// Every section `--only` may name.
pub const SECTIONS: &[&str] = &[
    "per-run",
    "cold-start",
    "footprint",
    "idle",
    "io",
    "rss",
    "monit",
    "failover",
    "cluster",
    "backup",
    "etcd",
    "mysql-failover",
    "redis-failover",
    "redis-partition",
    "mysql-cluster",
    "redis-cluster",
    "mysql-consistency",
    "peers",
    "profile",
];

/// The sections that measure a peer beside us, which `--only peers` runs
/// with the failover peers of [`peers`]: Monit, `check_pgsql` /
/// `check_mysql` / `redis-cli` (`per-run`), Patroni's etcd revisions
/// (`etcd`), Redis Sentinel (`redis-failover`, `redis-partition`) and `pt-table-checksum`
/// (`mysql-consistency`).
const PEER_SECTIONS: &[&str] = &[
    "monit",
    "per-run",
    "etcd",
    "redis-failover",
    "redis-partition",
    "mysql-consistency",
];

impl Options {
    /// Whether the section `name` runs.
    pub fn wants(&self, name: &str) -> bool {
        // The profile needs perf and is slow: only when asked for.
        (self.only.is_empty() && name != "profile")
            || self.only.iter().any(|s| s == name)
            // Every comparison with a peer in one run.
            || (PEER_SECTIONS.contains(&name) && self.only.iter().any(|s| s == "peers"))
    }
}

/// One line of the results table.
pub struct Row {
    pub what: String,
    pub figure: String,
    pub note: String,
}

impl Row {
    pub fn new(what: impl Into<String>, figure: impl Into<String>, note: impl Into<String>) -> Row {
        Row {
            what: what.into(),
            figure: figure.into(),
            note: note.into(),
        }
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        rounds: 3,
        only: Vec::new(),
        counts: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--rounds" => {
                options.rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--rounds needs a positive number")?;
            }
            "--only" => {
                let list = args.next().ok_or("--only needs a list of sections")?;
                for name in list.split(',') {
                    if !SECTIONS.contains(&name) {
                        return Err(format!(
                            "unknown bench section {name:?}: sections are {}",
                            SECTIONS.join(", ")
                        ));
                    }
                    options.only.push(name.to_string());
                }
            }
            "--counts" => {
                let list = args.next().ok_or("--counts needs a list of probe counts")?;
                for n in list.split(',') {
                    options.counts.push(
                        n.parse()
                            .map_err(|_| format!("--counts: {n:?} is not a number"))?,
                    );
                }
            }
            other => {
                return Err(format!(
                    "unknown bench option {other:?}: use --quick, --rounds N, --only SECTION[,SECTION], --counts N[,N]"
                ));
            }
        }
    }
    Ok(options)
}

/// Paths of what the suite runs.
pub struct Built {
    pub watchpost: PathBuf,
    pub trivial: PathBuf,
    pub dir: PathBuf,
}

fn build() -> Result<Built, String> {
    let root = root();
    run(cargo().args(["build", "--release", "-p", "watchpost"]))?;
    // The e2e crate's helpers (`peak_rss`, which the examples run the
    // agent under), beside the release agent.
    run(cargo().args(["build", "--release", "-p", "watchpost-e2e", "--bins"]))?;
    let trivial = watchpost_probe_build::build(&root, &["trivial"])?.remove(0);
    // The probe build's directory is TARGET/wasm.
    let wasm_target = watchpost_probe_build::target_dir(&root);
    let target = wasm_target.parent().unwrap_or(&wasm_target).to_path_buf();
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    Ok(Built {
        watchpost: target.join("release/watchpost"),
        trivial,
        dir,
    })
}

/// The summary lines of the failover benchmark `example`, run with the
/// rounds and then `extra` as its arguments.
fn failover(options: &Options, example: &str, extra: &[&str]) -> Result<Vec<Row>, String> {
    let rounds = if options.quick { 1 } else { options.rounds };
    let mut args = vec![rounds.to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut rows = Vec::new();
    for value in example::json_lines("failover", example, &args)? {
        if value.get("median_ms").is_none() {
            continue;
        }
        let (what, goal) = match value["benchmark"].as_str() {
            Some("failover") => (
                "failover: primary stopped -> write on the promoted standby",
                "goal < 2 s",
            ),
            Some("cluster-node-loss") => (
                "cluster: leader's node lost (agent kill -9 + server stopped) -> write on the new primary",
                "goal < 5 s; Patroni 26 s (defaults), ~20 s (floor)",
            ),
            Some("cluster-crash-at-once") => (
                "cluster: leader's server crashed, restart_timeout = 0s -> write on the new primary",
                "goal < 2 s",
            ),
            Some("cluster-switchover") => (
                "cluster: planned switchover, longest gap between acknowledged writes (every 50 ms, through HAProxy)",
                "goal < 1 s",
            ),
            Some("patroni-switchover") => (
                "Patroni 3.0 (defaults) planned switchover (`patronictl switchover`), longest gap between acknowledged writes (every 50 ms, through the same HAProxy, checking `/primary`)",
                "the peer of the cluster switchover row, same clock (tests/examples/patroni_switchover_bench.rs)",
            ),
            Some("cluster-rolling-restart") => (
                "cluster: rolling restart (`watchpost cluster restart`), longest gap between acknowledged writes (every 50 ms, through HAProxy)",
                "goal < 1 s",
            ),
            Some("cluster-commit-async") => (
                "cluster: commit latency on the leader, asynchronous (median of 1,000 autocommit INSERTs, loopback, fsync off)",
                "",
            ),
            Some("cluster-commit-synchronous") => (
                "cluster: commit latency on the leader, `synchronous = true` (quorum 1 of 2 standbys; same load)",
                "the cost of zero lost acknowledged writes",
            ),
            Some("mysql-failover") => (
                "MariaDB pair failover: primary kill -9 -> write on the promoted replica (polled every 100 ms)",
                "goal < 2 s; Orchestrator ~10-13 s (GitHub), MHA 10-30 s (documented)",
            ),
            Some("redis-failover") => (
                "Redis failover (primary + 2 replicas): primary kill -9 -> SET on a new primary (polled every 100 ms)",
                "goal < 2 s",
            ),
            Some("redis-sentinel-1s") => (
                "Redis Sentinel (3 sentinels, quorum 2, down-after-milliseconds 1000), same set and clock",
                "the peer at its tuned minimum",
            ),
            Some("redis-sentinel-defaults") => (
                "Redis Sentinel (3 sentinels, quorum 2, defaults: down-after 30 s), same set and clock",
                "the peer as shipped",
            ),
            Some("mysql-cluster-node-loss") => (
                "MariaDB cluster: leader's node lost (agent kill -9 + mariadbd kill -9) -> INSERT as the application on the new primary (polled every 100 ms)",
                "goal < 5 s; Orchestrator ~10-13 s (GitHub), MHA 10-30 s (documented)",
            ),
            Some("redis-cluster-node-loss") => (
                "Redis cluster: leader's node lost (agent kill -9 + redis-server kill -9) -> SET on the new primary (polled every 100 ms)",
                "goal < 5 s; Sentinel: see the redis-failover rows",
            ),
            Some("cluster-crash-restart") => (
                "cluster: leader's server crashed (default) -> restarted in place, write accepted",
                "",
            ),
            _ => ("restart: postmaster SIGKILLed -> accepting connections", ""),
        };
        rows.push(Row::new(
            what,
            format!(
                "{} ms (range {}-{} ms, {} rounds)",
                value["median_ms"], value["min_ms"], value["max_ms"], value["rounds"]
            ),
            goal,
        ));
    }
    Ok(rows)
}

fn render(rows: &[Row]) -> String {
    let mut out = String::from("| measurement | figure | note |\n|---|---|---|\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            row.what, row.figure, row.note
        ));
    }
    out
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// The 1, 5 and 15 minute load averages (other work on the machine skews
/// CPU figures; they are printed with the results).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

pub fn bench(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    if options.wants("per-run") {
        crate::apt::apt_install(&per_run::missing_plugins())?;
    }
    if options.wants("monit") || options.wants("io") {
        crate::apt::apt_install(&monit::missing_tools())?;
    }
    if options.wants("peers") {
        crate::apt::apt_install(&peers::missing_packages())?;
    }
    if options.wants("etcd") {
        crate::apt::apt_install(&peers::not_installed(etcd::PACKAGES))?;
    }
    if options.wants("mysql-consistency") {
        crate::apt::apt_install(&peers::not_installed(consistency::PACKAGES))?;
    }
    let built = build()?;
    let mut rows = Vec::new();
    // A section that fails is a row saying why; the others still run and
    // are written, and the run fails at the end.
    let mut failed = Vec::new();
    let mut section = |name: &str, outcome: Result<Vec<Row>, String>| match outcome {
        Ok(found) => rows.extend(found),
        Err(e) => {
            eprintln!("xtask: the {name} section failed: {e}");
            rows.push(Row::new(
                format!("{name}: FAILED"),
                e.lines().next().unwrap_or("").to_string(),
                "see the run's output",
            ));
            failed.push(name.to_string());
        }
    };
    if options.wants("per-run") {
        section("per-run", per_run::run(&built, &options));
    }
    if options.wants("cold-start") {
        section("cold-start", cold_start::run(&built, &options));
    }
    if options.wants("footprint") {
        section("footprint", footprint::run(&built, &options));
    }
    if options.wants("idle") {
        section("idle", overhead::idle(&built, &options));
    }
    if options.wants("io") {
        section("io", overhead::io(&built, &options));
    }
    if options.wants("rss") {
        section("rss", overhead::rss(&built, &options));
    }
    if options.wants("monit") {
        section("monit", monit::run(&built, &options));
    }
    if options.wants("profile") {
        section("profile", profile::run(&built, &options));
    }
    if options.wants("failover") {
        section("failover", failover(&options, "failover_bench", &[]));
    }
    if options.wants("cluster") {
        section("cluster", failover(&options, "cluster_bench", &[]));
    }
    if options.wants("backup") {
        section("backup", backup::run(&options));
    }
    if options.wants("etcd") {
        section("etcd", etcd::run(&root(), &options));
    }
    if options.wants("peers") {
        section("peers", peers::run(&root(), &options));
        section("peers", failover(&options, "patroni_switchover_bench", &[]));
    }
    if options.wants("mysql-failover") {
        section(
            "mysql-failover",
            failover(&options, "mysql_failover_bench", &[]),
        );
    }
    if options.wants("redis-failover") {
        if !std::path::Path::new("/usr/bin/redis-sentinel").exists() {
            crate::apt::apt_install(&["redis-sentinel"])?;
        }
        section(
            "redis-failover",
            failover(&options, "redis_failover_bench", &[]),
        );
    }
    if options.wants("redis-partition") {
        section("redis-partition", partition::run(&options));
    }
    if options.wants("mysql-cluster") {
        section(
            "mysql-cluster",
            failover(&options, "engine_cluster_bench", &["mysql"]),
        );
    }
    if options.wants("redis-cluster") {
        section(
            "redis-cluster",
            failover(&options, "engine_cluster_bench", &["redis"]),
        );
    }
    if options.wants("mysql-consistency") {
        section("mysql-consistency", consistency::run(&options));
    }
    let text = format!(
        "Machine: {}. Load average at the end: {}. Rounds: {}{}.\n\n{}",
        machine(),
        load_average(),
        options.rounds,
        if options.quick { " (--quick)" } else { "" },
        render(&rows)
    );
    println!("\n{text}");
    let out = built.dir.join("results.md");
    std::fs::write(&out, &text).map_err(|e| format!("write {}: {e}", out.display()))?;
    eprintln!("xtask: results in {}", out.display());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("sections failed: {}", failed.join(", ")))
    }
}

/// A command for the release agent.
pub fn watchpost(built: &Built) -> Command {
    Command::new(&built.watchpost)
}

/// Write `text` to `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(path)
}

/// CPU seconds from a `/proc/PID/stat` file: user + system, and with
/// `children`, also those of waited-for children (fields 14-17).
pub fn proc_cpu_seconds(stat: &str, children: bool) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the command name start at field 3 (the state).
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let last = if children { 15 } else { 13 };
    (11..last).filter_map(|i| fields.get(i)).sum::<f64>() / 100.0
}
