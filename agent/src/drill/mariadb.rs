//! The MariaDB restore drill (`method = "mariadb-backup"`): the newest
//! `mariadb-backup` copy is copied into the scratch directory (the backup
//! is only read), prepared there (`mariadb-backup --prepare`), and
//! `mariadbd` is started on it as the backup's owner, with no option file
//! read (`--no-defaults`: no `init_file`, plugin or replication setting of
//! the backup's or this host's config), only InnoDB's layout settings
//! taken from the copy's `backup-my.cnf`, on a private socket in the
//! scratch directory, without TCP (`--skip-networking`), without starting
//! replication, binary log or event scheduler, read-only, and without the
//! grant tables (nothing can reach the socket but the agent and the
//! owner; the copy's accounts are not needed, and plugins installed in
//! `mysql.plugin` are then not loaded). Then `CHECK TABLE` on every table
//! and the configured queries (each in `START TRANSACTION READ ONLY`),
//! within the drill's deadline; then the server is stopped (SIGTERM: a
//! clean shutdown) and the scratch directory removed by the caller.

use super::copy;
use super::disk;
use super::outcome::{self, Restored};
use super::program;
use super::scratch::{self, Scratch};
use super::server::{self, Server};
use super::verify::Findings;
use crate::config::DrillSpec;
use crate::report::{Measurement, Status};
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::time::{Duration, Instant};

/// Settings of `backup-my.cnf` the copy needs to open its files (taken
/// when their value is plain: letters, digits, `:._-`).
const LAYOUT: [&str; 5] = [
    "innodb_page_size",
    "innodb_data_file_path",
    "innodb_undo_tablespaces",
    "innodb_checksum_algorithm",
    "innodb_log_file_size",
];

/// The layout settings of the copy's `backup-my.cnf`, as `--name=value`.
fn layout_options(s: &Scratch) -> Result<Vec<String>, String> {
    let text = s.read(&s.data.join("backup-my.cnf"))?.unwrap_or_default();
    let plain = |v: &str| {
        !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ":._-".contains(c))
    };
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().replace('-', "_"), v.trim()))
        .filter(|(k, v)| LAYOUT.contains(&k.as_str()) && plain(v))
        .map(|(k, v)| format!("--{k}={v}"))
        .collect())
}

/// Run the drill of the copy under `root` in `s`; the caller tears `s`
/// down.
pub async fn drill(
    spec: &DrillSpec,
    root: &Path,
    s: &Scratch,
    drills: &Path,
    deadline: Instant,
    out: &mut Vec<Measurement>,
) -> Result<(Status, String), String> {
    let mariadbd = server::find(&spec.bin_dir, "mariadbd")?;
    let backup_tool = server::find(&spec.bin_dir, "mariadb-backup")?;
    let root = root.to_path_buf();
    let backup = tokio::task::spawn_blocking(move || copy::newest_mariadb(&root))
        .await
        .map_err(|e| e.to_string())??;
    let started = Instant::now();
    disk::guarded(drills, spec.reserve, "copying and preparing", async {
        copy::copy_dir(s, &backup, &s.data, deadline).await?;
        // The scratch directory's own tmpdir for the prepare and the server:
        // a starting mariadbd deletes every `#sql*` file in its tmpdir
        // (MariaDB's `mysql_rm_tmp_tables`), which in the shared /tmp are the
        // production server's temporary tables.
        s.make_dir(&s.dir.join("tmp"))?;
        let prepare = vec![
            backup_tool.display().to_string(),
            "--no-defaults".into(),
            "--prepare".into(),
            format!("--target-dir={}", s.data.display()),
            format!("--tmpdir={}", s.dir.join("tmp").display()),
        ];
        let left = deadline.saturating_duration_since(Instant::now());
        let ran = program::run(&prepare, s.owner, &s.dir, &[], left).await?;
        if !ran.ok {
            return Err(format!(
                "mariadb-backup --prepare failed on the copy of {}: {}",
                backup.display(),
                prepare_says(&ran)
            ));
        }
        Ok(())
    })
    .await?;
    s.make_dir(&s.dir.join("files"))?;
    let socket = s.dir.join("sock");
    let mut argv = vec![
        mariadbd.display().to_string(),
        "--no-defaults".into(),
        format!("--datadir={}", s.data.display()),
        format!("--socket={}", socket.display()),
        format!("--pid-file={}", s.dir.join("mariadbd.pid").display()),
        format!("--tmpdir={}", s.dir.join("tmp").display()),
        format!("--secure-file-priv={}", s.dir.join("files").display()),
        "--skip-networking".into(),
        "--skip-grant-tables".into(),
        "--skip-slave-start".into(),
        "--skip-log-bin".into(),
        "--skip-symbolic-links".into(),
        "--event-scheduler=OFF".into(),
        "--local-infile=0".into(),
        "--read-only".into(),
    ];
    argv.extend(layout_options(s)?);
    let mut srv = server::start(&argv, s.owner, &s.dir, &s.dir.join("server.log"))?;
    disk::guarded(drills, spec.reserve, "starting the copy", async {
        wait_ready(&mut srv, &socket, deadline).await
    })
    .await?;
    let rto = started.elapsed().as_secs_f64();
    let size = scratch::tree_size_async(&s.dir).await;
    let verify_started = Instant::now();
    let mut found = Findings::default();
    disk::guarded(drills, spec.reserve, "verifying", async {
        check_tables(&mut srv, &socket, deadline, &mut found).await;
        queries(spec, &mut srv, &socket, deadline, &mut found).await;
        Ok(())
    })
    .await?;
    if let Err(e) = srv.stop(deadline).await {
        found.failures.push(format!("stopping the copy: {e}"));
    }
    let verify = verify_started.elapsed().as_secs_f64();
    let restored = Restored {
        engine: "mysql",
        source: format!("mariadb-backup {}", backup.display()),
        size,
        rto,
        verify,
    };
    Ok(outcome::finish(restored, found, out))
}

/// What a failed `mariadb-backup --prepare` said: its error lines (and
/// files it found missing), else its last line.
fn prepare_says(ran: &program::Ran) -> String {
    let telling: Vec<&str> = ran
        .output
        .lines()
        .map(str::trim)
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            l.contains("[ERROR]")
                || l.contains("FATAL")
                || lower.contains("not exist")
                || lower.contains("corrupt")
        })
        .collect();
    if telling.is_empty() {
        ran.last_line().to_string()
    } else {
        telling[telling.len().saturating_sub(3)..].join(" / ")
    }
}

/// The server's own account of why it failed: its `[ERROR]` lines, else
/// its last lines.
fn server_says(srv: &Server) -> String {
    let mut lines = srv.log_lines(|l| l.contains("[ERROR]"), 3);
    if lines.is_empty() {
        lines = srv.log_lines(|l| !l.trim().is_empty(), 2);
    }
    lines.join(" / ")
}

async fn connect(
    socket: &Path,
    database: &str,
    deadline: Instant,
) -> Result<mysql_async::Conn, String> {
    let db = (!database.is_empty()).then(|| database.to_string());
    let opts = mysql_async::OptsBuilder::default()
        .socket(Some(socket.display().to_string()))
        .prefer_socket(true)
        .user(Some("root"))
        .db_name(db);
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, mysql_async::Conn::new(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the drill's time ran out".into()),
    }
}

/// Wait until the copy accepts a session on its socket, or fail with
/// what it logged when it exits.
async fn wait_ready(srv: &mut Server, socket: &Path, deadline: Instant) -> Result<(), String> {
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(exit) = srv.exited() {
            return Err(format!(
                "the restored copy did not start ({exit}): {}",
                server_says(srv)
            ));
        }
        if socket.exists() {
            match connect(socket, "", deadline).await {
                Ok(conn) => {
                    let _ = conn.disconnect().await;
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "the restored copy did not accept sessions in time ({last})"
    ))
}

/// Run `sql` within the deadline, its rows as text.
async fn rows(
    conn: &mut mysql_async::Conn,
    sql: &str,
    deadline: Instant,
) -> Result<Vec<Vec<Option<String>>>, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let result: Vec<mysql_async::Row> = tokio::time::timeout(left, conn.query(sql))
        .await
        .map_err(|_| "the drill's time ran out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(result
        .into_iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    row.get_opt::<Option<String>, _>(i)
                        .and_then(Result::ok)
                        .flatten()
                })
                .collect()
        })
        .collect())
}

fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `CHECK TABLE` on every base table of every database.
async fn check_tables(srv: &mut Server, socket: &Path, deadline: Instant, found: &mut Findings) {
    let mut conn = match connect(socket, "", deadline).await {
        Ok(c) => c,
        Err(e) => {
            found
                .failures
                .push(format!("CHECK TABLE: cannot connect: {e}"));
            return;
        }
    };
    let list = "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN \
                ('information_schema', 'performance_schema', 'sys') ORDER BY 1, 2";
    let tables = match rows(&mut conn, list, deadline).await {
        Ok(t) => t,
        Err(e) => {
            found
                .failures
                .push(format!("CHECK TABLE: cannot list the tables: {e}"));
            return;
        }
    };
    let (mut checked, mut bad) = (0, 0);
    for table in &tables {
        let (Some(db), Some(name)) = (&table[0], &table[1]) else {
            continue;
        };
        let label = format!("CHECK TABLE {db}.{name}");
        let sql = format!("CHECK TABLE {}.{}", quoted(db), quoted(name));
        match rows(&mut conn, &sql, deadline).await {
            Ok(result) => {
                checked += 1;
                // Rows of (Table, Op, Msg_type, Msg_text): a broken
                // table has an `error` row or a `status` other than OK;
                // its warnings say where.
                let field = |r: &Vec<Option<String>>, i: usize| {
                    r.get(i).cloned().flatten().unwrap_or_default()
                };
                let broken = result.iter().any(|r| {
                    let kind = field(r, 2);
                    kind.eq_ignore_ascii_case("error")
                        || (kind.eq_ignore_ascii_case("status") && field(r, 3) != "OK")
                });
                let complaints: Vec<String> = result
                    .iter()
                    .filter(|r| !field(r, 2).eq_ignore_ascii_case("note"))
                    .map(|r| field(r, 3))
                    .collect();
                if broken {
                    bad += 1;
                    found
                        .failures
                        .push(format!("{label}: {}", complaints.join(" / ")));
                }
            }
            Err(e) => {
                let exited = srv.exited();
                let why = match exited {
                    Some(exit) => format!("{e}; {exit}: {}", server_says(srv)),
                    None => e,
                };
                found.failures.push(format!("{label}: {why}"));
                if srv.exited().is_some() || Instant::now() >= deadline {
                    return;
                }
                // The session may be gone: a new one for the next table.
                match connect(socket, "", deadline).await {
                    Ok(c) => conn = c,
                    Err(_) => return,
                }
            }
        }
    }
    if bad == 0 && checked == tables.len() {
        found
            .passed
            .push(format!("CHECK TABLE on {checked} tables"));
    }
    let _ = conn.disconnect().await;
}

/// The configured queries, each in a read-only transaction.
async fn queries(
    spec: &DrillSpec,
    srv: &mut Server,
    socket: &Path,
    deadline: Instant,
    found: &mut Findings,
) {
    for check in &spec.queries {
        let label = if check.database.is_empty() {
            format!("check {:?}", check.query)
        } else {
            format!("check {:?} on {}", check.query, check.database)
        };
        let value = async {
            let mut conn = connect(socket, &check.database, deadline).await?;
            rows(&mut conn, "START TRANSACTION READ ONLY", deadline).await?;
            let result = rows(&mut conn, &check.query, deadline).await;
            let _ = rows(&mut conn, "ROLLBACK", deadline).await;
            let _ = conn.disconnect().await;
            result.map(|r| {
                r.into_iter()
                    .next()
                    .and_then(|row| row.into_iter().next().flatten())
            })
        }
        .await;
        match value {
            Ok(text) => outcome::bounds(check, &label, text, found),
            Err(e) => {
                let why = match srv.exited() {
                    Some(exit) => format!("{e}; {exit}: {}", server_says(srv)),
                    None => e,
                };
                found.failures.push(format!("{label}: {why}"));
            }
        }
    }
}
