//! The Redis restore drill (`method = "redis-rdb"`): the newest RDB copy
//! (and the AOF directory, with `aof`) is copied into the scratch
//! directory (the backup is only read), checked with `redis-check-rdb`
//! (and `redis-check-aof` on the AOF's manifest), then `redis-server` is
//! started on the copy as the backup's owner with no config file, no TCP
//! (`--port 0`), a unix socket in the scratch directory (mode 700), no
//! saving (`--save ''`), no replication, no `DEBUG` or `MODULE` command,
//! and — with an AOF — the AOF loaded, a truncated one refused. Then
//! `DBSIZE`, the configured checks (read commands with an integer reply,
//! `REDIS_DRILL_COMMANDS`) and the configured keys' existence; then the
//! server is stopped and the scratch directory removed by the caller.

use super::copy;
use super::disk;
use super::outcome::{self, Restored};
use super::program;
use super::scratch::{self, Scratch};
use super::server::{self, Server};
use super::verify::Findings;
use crate::config::{DrillSpec, redis_check_words};
use crate::report::{Measurement, Status};
use ::redis::aio::MultiplexedConnection;
use std::path::Path;
use std::time::{Duration, Instant};

/// The AOF directory's name in the copy.
const AOF_DIR: &str = "appendonlydir";

/// What a `redis-check-rdb` / `redis-check-aof` run complained about:
/// the lines that say what is wrong, else its last line.
fn complaint(ran: &program::Ran) -> String {
    let mut after_marker = false;
    let mut picked = Vec::new();
    for line in ran.output.lines() {
        let line = line.trim();
        if line.contains("ERROR DETECTED") {
            after_marker = true;
            continue;
        }
        let telling = line.contains("not valid")
            || line.contains("Expected")
            || line.contains("Bad file format")
            || line.contains("Unexpected")
            || line.contains("Wrong")
            || line.contains("rror");
        if (after_marker && (line.starts_with("[offset") || line.starts_with("[additional info]")))
            || (!after_marker && telling)
        {
            picked.push(line.to_string());
        }
    }
    if picked.is_empty() {
        ran.last_line().to_string()
    } else {
        picked.truncate(3);
        picked.join(" / ")
    }
}

/// Run a checker (`argv`) on the copy; Err with its complaint.
async fn checked(
    s: &Scratch,
    argv: Vec<String>,
    what: &str,
    deadline: Instant,
) -> Result<(), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let ran = program::run(&argv, s.owner, &s.data, &[], left).await?;
    if ran.ok {
        Ok(())
    } else {
        let tool = Path::new(&argv[0])
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        Err(format!("{what} is invalid ({tool}): {}", complaint(&ran)))
    }
}

/// The AOF manifest in the copy's AOF directory.
fn manifest(dir: &Path) -> Result<String, String> {
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".manifest"))
        .ok_or_else(|| {
            format!(
                "no *.manifest in the AOF directory: `aof` names a Redis 7 append-only directory ({AOF_DIR})"
            )
        })
}

/// Run the drill of the newest RDB under `root` (and the AOF directory
/// `aof`) in `s`; the caller tears `s` down.
pub async fn drill(
    spec: &DrillSpec,
    root: &Path,
    aof: Option<&Path>,
    s: &Scratch,
    drills: &Path,
    deadline: Instant,
    out: &mut Vec<Measurement>,
) -> Result<(Status, String), String> {
    let redis_server = server::find(&spec.bin_dir, "redis-server")?;
    let check_rdb = server::find(&spec.bin_dir, "redis-check-rdb")?;
    let check_aof = match aof {
        Some(_) => Some(server::find(&spec.bin_dir, "redis-check-aof")?),
        None => None,
    };
    let root = root.to_path_buf();
    let rdb = tokio::task::spawn_blocking(move || copy::newest_rdb(&root))
        .await
        .map_err(|e| e.to_string())??;
    let started = Instant::now();
    let copy = s.data.join("dump.rdb");
    disk::guarded(drills, spec.reserve, "copying and checking", async {
        s.make_dir(&s.data)?;
        copy::copy_file(s, &rdb, &copy, deadline).await?;
        let argv = vec![check_rdb.display().to_string(), copy.display().to_string()];
        checked(s, argv, &format!("the RDB {}", rdb.display()), deadline).await?;
        if let (Some(aof), Some(check_aof)) = (aof, &check_aof) {
            let into = s.data.join(AOF_DIR);
            copy::copy_dir(s, aof, &into, deadline).await?;
            let manifest = manifest(&into)?;
            let argv = vec![
                check_aof.display().to_string(),
                into.join(&manifest).display().to_string(),
            ];
            checked(s, argv, &format!("the AOF {}", aof.display()), deadline).await?;
        }
        Ok(())
    })
    .await?;
    let socket = s.dir.join("sock");
    let mut argv: Vec<String> = vec![
        redis_server.display().to_string(),
        "--port".into(),
        "0".into(),
        "--unixsocket".into(),
        socket.display().to_string(),
        "--unixsocketperm".into(),
        "700".into(),
        "--dir".into(),
        s.data.display().to_string(),
        "--dbfilename".into(),
        "dump.rdb".into(),
        "--save".into(),
        "".into(),
        "--daemonize".into(),
        "no".into(),
        "--protected-mode".into(),
        "yes".into(),
        "--enable-debug-command".into(),
        "no".into(),
        "--enable-module-command".into(),
        "no".into(),
        "--logfile".into(),
        "".into(),
    ];
    if aof.is_some() {
        argv.extend(
            [
                "--appendonly",
                "yes",
                "--appenddirname",
                AOF_DIR,
                "--aof-load-truncated",
                "no",
            ]
            .map(String::from),
        );
    } else {
        argv.extend(["--appendonly", "no"].map(String::from));
    }
    let mut srv = server::start(&argv, s.owner, &s.dir, &s.dir.join("server.log"))?;
    let mut conn = disk::guarded(drills, spec.reserve, "loading the copy", async {
        wait_ready(&mut srv, &socket, deadline).await
    })
    .await?;
    let rto = started.elapsed().as_secs_f64();
    let size = scratch::tree_size_async(&s.dir).await;
    let verify_started = Instant::now();
    let mut found = Findings::default();
    verify(spec, &mut srv, &mut conn, deadline, &mut found).await;
    drop(conn);
    if let Err(e) = srv.stop(deadline).await {
        found.failures.push(format!("stopping the copy: {e}"));
    }
    let source = match aof {
        Some(aof) => format!("RDB {} with the AOF {}", rdb.display(), aof.display()),
        None => format!("RDB {}", rdb.display()),
    };
    let restored = Restored {
        engine: "redis",
        source,
        size,
        rto,
        verify: verify_started.elapsed().as_secs_f64(),
    };
    Ok(outcome::finish(restored, found, out))
}

/// Record a failed command, with what the server logged when it died.
fn failed(found: &mut Findings, label: String, e: String, srv: &mut Server) {
    let why = match srv.exited() {
        Some(exit) => format!("{e}; {exit}: {}", server_says(srv)),
        None => e,
    };
    found.failures.push(format!("{label}: {why}"));
}

fn server_says(srv: &Server) -> String {
    srv.log_lines(|l| !l.trim().is_empty(), 3).join(" / ")
}

/// `args` on `conn` within the deadline.
async fn call<T: ::redis::FromRedisValue>(
    conn: &mut MultiplexedConnection,
    args: &[&str],
    deadline: Instant,
) -> Result<T, String> {
    let mut cmd = ::redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, cmd.query_async::<T>(conn)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("the drill's time ran out".into()),
    }
}

/// Wait until the copy answers `PING` (a copy still loading answers
/// `LOADING`), or fail with what it logged when it exits.
async fn wait_ready(
    srv: &mut Server,
    socket: &Path,
    deadline: Instant,
) -> Result<MultiplexedConnection, String> {
    let url = format!("unix://{}", socket.display());
    let client = ::redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(exit) = srv.exited() {
            return Err(format!(
                "the restored copy did not load ({exit}): {}",
                server_says(srv)
            ));
        }
        if socket.exists() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, client.get_multiplexed_async_connection()).await {
                Ok(Ok(mut conn)) => match call::<String>(&mut conn, &["PING"], deadline).await {
                    Ok(_) => return Ok(conn),
                    Err(e) => last = e,
                },
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("the restored copy did not answer in time ({last})"))
}

/// `DBSIZE`, the checks and the keys.
async fn verify(
    spec: &DrillSpec,
    srv: &mut Server,
    conn: &mut MultiplexedConnection,
    deadline: Instant,
    found: &mut Findings,
) {
    match call::<i64>(conn, &["DBSIZE"], deadline).await {
        Ok(n) => found.passed.push(format!("{n} keys in db 0")),
        Err(e) => failed(found, "DBSIZE".into(), e, srv),
    }
    for check in &spec.queries {
        let label = format!("check {:?} in db {}", check.query, check.database);
        let words = match redis_check_words(&check.query) {
            Ok(w) => w,
            Err(e) => {
                found.failures.push(format!("{label}: {e}"));
                continue;
            }
        };
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let value = match call::<()>(conn, &["SELECT", &check.database], deadline).await {
            Ok(()) => call::<i64>(conn, &words, deadline).await,
            Err(e) => Err(e),
        };
        match value {
            Ok(v) => outcome::bounds(check, &label, Some(v.to_string()), found),
            Err(e) => failed(found, label, e, srv),
        }
    }
    if spec.keys.is_empty() {
        return;
    }
    if let Err(e) = call::<()>(conn, &["SELECT", "0"], deadline).await {
        failed(found, "SELECT 0".into(), e, srv);
        return;
    }
    let mut missing = Vec::new();
    for key in &spec.keys {
        match call::<i64>(conn, &["EXISTS", key], deadline).await {
            Ok(1) => {}
            Ok(_) => missing.push(key.clone()),
            Err(e) => failed(found, format!("EXISTS {key:?}"), e, srv),
        }
    }
    if missing.is_empty() {
        found
            .passed
            .push(format!("{} keys present", spec.keys.len()));
    } else {
        found.failures.push(format!(
            "keys missing from the copy: {}",
            missing.join(", ")
        ));
    }
}
