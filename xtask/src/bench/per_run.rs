//! Per-run cost, side by side: a trivial Rust probe through
//! `watchpost bench` (a fresh sandbox per run, as the agent does) against
//! fork + exec of a tiny native program and of the Nagios `check_dummy`
//! plugin; `pg-alive` against `check_pgsql` on the local PostgreSQL; and
//! `mysql-alive` against `check_mysql` and `mysqladmin ping` on a private
//! MariaDB ([`super::mariadb`]); `redis-alive` against `redis-cli ping` and
//! `check_tcp` sending PING and expecting +PONG on a private Redis
//! ([`super::redis`]).
//! Spawned checks are timed from this process (spawn to exit), their CPU
//! from this process's and its children's CPU times.

use super::stats::{median_range, quantile, summary};
use super::{Built, Options, Row, watchpost, write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const PLUGINS: &str = "/usr/lib/nagios/plugins";
/// The local PostgreSQL (the machine's service) both PostgreSQL checks use.
const PG_DSN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/// Debian packages of the Nagios plugins the comparison needs, if missing.
pub fn missing_plugins() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !Path::new(PLUGINS).join("check_dummy").exists() {
        missing.push("monitoring-plugins-basic");
    }
    if !Path::new(PLUGINS).join("check_pgsql").exists() {
        missing.push("monitoring-plugins-standard");
    }
    for package in super::mariadb::missing_packages()
        .into_iter()
        .chain(super::redis::missing_packages())
    {
        if !missing.contains(&package) {
            missing.push(package);
        }
    }
    missing
}

/// One `watchpost bench --json` result.
struct Bench {
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
    per_second: f64,
}

fn watchpost_bench(built: &Built, args: &[&str]) -> Result<Bench, String> {
    let output = watchpost(built)
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .map_err(|e| format!("cannot run watchpost bench: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "watchpost bench {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("watchpost bench printed no JSON ({e})"))?;
    if v["not_ok"].as_u64() != Some(0) {
        return Err(format!("watchpost bench {args:?}: runs were not ok: {v}"));
    }
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    Ok(Bench {
        p50_us: f("p50_us"),
        p99_us: f("p99_us"),
        cpu_us: f("cpu_per_run_us"),
        per_second: f("runs_per_second"),
    })
}

/// CPU time of this process and its waited-for children, in seconds.
fn cpu_with_children() -> f64 {
    super::proc_cpu_seconds("/proc/self/stat", true)
}

/// One round of spawns: p50 and p99 of spawn to exit, and CPU per run,
/// in microseconds.
type Spawned = (f64, f64, f64);

/// Spawn `argv` `n` times (stdout discarded).
fn spawned(argv: &[&str], n: usize) -> Result<Spawned, String> {
    let mut times = Vec::with_capacity(n);
    let cpu = cpu_with_children();
    for _ in 0..n {
        let started = Instant::now();
        let status = Command::new(argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
        if !status.success() {
            return Err(format!("{argv:?} exited with {status}"));
        }
    }
    let cpu_us = (cpu_with_children() - cpu) * 1e6 / n as f64;
    Ok((quantile(&times, 0.5), quantile(&times, 0.99), cpu_us))
}

fn tiny_program(built: &Built) -> Result<String, String> {
    let source = write(
        &built.dir,
        "tiny.c",
        "#include <stdio.h>\nint main(void) { puts(\"OK - tiny\"); return 0; }\n",
    )?;
    let exe = built.dir.join("tiny");
    crate::run(
        Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&exe)
            .arg(&source),
    )?;
    Ok(exe.display().to_string())
}

/// The rows of one comparison: the Wasm probe, each spawned check, ratios.
fn compare(label: &str, wasm: &[Bench], spawned_checks: &[(&str, Vec<Spawned>)]) -> Vec<Row> {
    let col = |f: fn(&Bench) -> f64| wasm.iter().map(f).collect::<Vec<_>>();
    let mut rows = vec![
        Row::new(
            format!("{label}: per run p50"),
            median_range(&col(|b| b.p50_us), "µs", 1),
            format!("p99 {}", median_range(&col(|b| b.p99_us), "µs", 1)),
        ),
        Row::new(
            format!("{label}: CPU per run"),
            median_range(&col(|b| b.cpu_us), "µs", 1),
            format!(
                "{} runs/s on one core",
                median_range(&col(|b| b.per_second), "", 0)
            ),
        ),
    ];
    let (wasm_p50, _, _) = summary(&col(|b| b.p50_us));
    let (wasm_cpu, _, _) = summary(&col(|b| b.cpu_us));
    for (name, rounds) in spawned_checks {
        let p50: Vec<f64> = rounds.iter().map(|r| r.0).collect();
        let p99: Vec<f64> = rounds.iter().map(|r| r.1).collect();
        let cpu: Vec<f64> = rounds.iter().map(|r| r.2).collect();
        let (spawn_p50, _, _) = summary(&p50);
        let (spawn_cpu, _, _) = summary(&cpu);
        rows.push(Row::new(
            format!("{name}: fork + exec per run p50"),
            median_range(&p50, "µs", 0),
            format!(
                "p99 {}; CPU {}",
                median_range(&p99, "µs", 0),
                median_range(&cpu, "µs", 0)
            ),
        ));
        rows.push(Row::new(
            format!("ratio {name} / {label}"),
            format!(
                "{:.0}x wall, {:.0}x CPU",
                spawn_p50 / wasm_p50,
                spawn_cpu / wasm_cpu
            ),
            "",
        ));
    }
    rows
}

pub fn run(built: &Built, options: &Options) -> Result<Vec<Row>, String> {
    let (runs, spawns, pg_runs) = if options.quick {
        ("2000", 200, 100)
    } else {
        ("20000", 2000, 500)
    };
    let trivial = built.trivial.display().to_string();
    let tiny = tiny_program(built)?;
    let dummy = format!("{PLUGINS}/check_dummy");
    let check_pgsql = format!("{PLUGINS}/check_pgsql");
    let mut wasm = Vec::new();
    let mut tiny_rounds = Vec::new();
    let mut dummy_rounds = Vec::new();
    let mut pg = Vec::new();
    let mut pgsql_rounds = Vec::new();
    let target = format!("primary={PG_DSN}");
    let mariadb = super::mariadb::Server::start(&built.dir)?;
    let port = mariadb.port.to_string();
    let mysql_target = format!("primary=mysql://watchpost@127.0.0.1:{port}/");
    let (mut mysql, mut check_mysql_rounds, mut mysqladmin_rounds) = (vec![], vec![], vec![]);
    let redis = super::redis::Server::start(&built.dir)?;
    let redis_port = redis.port.to_string();
    let redis_target = format!("primary=redis://127.0.0.1:{redis_port}/0");
    let (mut redis_alive, mut redis_cli_rounds, mut check_tcp_rounds) = (vec![], vec![], vec![]);
    for round in 0..options.rounds {
        eprintln!("xtask: per-run cost, round {}", round + 1);
        wasm.push(watchpost_bench(built, &[&trivial, "-n", runs])?);
        tiny_rounds.push(spawned(&[&tiny], spawns)?);
        dummy_rounds.push(spawned(&[&dummy, "0", "OK"], spawns)?);
        pg.push(watchpost_bench(
            built,
            &[
                "builtin:pg-alive",
                "--target",
                &target,
                "-n",
                &pg_runs.to_string(),
            ],
        )?);
        pgsql_rounds.push(spawned(
            &[
                &check_pgsql,
                "-H",
                "127.0.0.1",
                "-P",
                "5432",
                "-l",
                "postgres",
                "-d",
                "postgres",
            ],
            pg_runs,
        )?);
        mysql.push(watchpost_bench(
            built,
            &[
                "builtin:mysql-alive",
                "--target",
                &mysql_target,
                "-n",
                &pg_runs.to_string(),
            ],
        )?);
        let tcp = ["-H", "127.0.0.1", "-P", &port, "-u", "watchpost"];
        let check_mysql: Vec<&str> = [super::mariadb::CHECK_MYSQL]
            .into_iter()
            .chain(tcp)
            .collect();
        check_mysql_rounds.push(spawned(&check_mysql, pg_runs)?);
        let ping = [
            "mysqladmin",
            "--no-defaults",
            "-h",
            "127.0.0.1",
            "-P",
            &port,
        ];
        let ping: Vec<&str> = ping
            .into_iter()
            .chain(["-u", "watchpost", "ping"])
            .collect();
        mysqladmin_rounds.push(spawned(&ping, pg_runs)?);
        redis_alive.push(watchpost_bench(
            built,
            &[
                "builtin:redis-alive",
                "--target",
                &redis_target,
                "-n",
                &pg_runs.to_string(),
            ],
        )?);
        redis_cli_rounds.push(spawned(
            &["redis-cli", "-h", "127.0.0.1", "-p", &redis_port, "ping"],
            pg_runs,
        )?);
        check_tcp_rounds.push(spawned(
            &[
                super::redis::CHECK_TCP,
                "-H",
                "127.0.0.1",
                "-p",
                &redis_port,
                "-E",
                "-s",
                "PING\\r\\n",
                "-e",
                "+PONG",
                "-M",
                "crit",
            ],
            pg_runs,
        )?);
    }
    drop(redis);
    let mut rows = compare(
        "trivial Rust probe",
        &wasm,
        &[
            ("tiny native program", tiny_rounds),
            ("check_dummy", dummy_rounds),
        ],
    );
    rows.extend(compare("pg-alive", &pg, &[("check_pgsql", pgsql_rounds)]));
    rows.extend(compare(
        "mysql-alive",
        &mysql,
        &[
            ("check_mysql", check_mysql_rounds),
            ("mysqladmin ping", mysqladmin_rounds),
        ],
    ));
    rows.extend(compare(
        "redis-alive",
        &redis_alive,
        &[
            ("redis-cli ping", redis_cli_rounds),
            ("check_tcp PING/+PONG", check_tcp_rounds),
        ],
    ));
    Ok(rows)
}
