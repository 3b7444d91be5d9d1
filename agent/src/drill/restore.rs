//! Getting the backup into the scratch directory and ready to recover:
//! copy or unpack a `pg_basebackup` backup (WAL from the archive through
//! `restore_command`), `pgbackrest restore`, or a user's command; then the
//! drill's own settings (a free port, unix socket only in the scratch
//! directory, trust for local sessions only, no archiving, no streaming)
//! appended to `postgresql.auto.conf`, and `recovery.signal`, so that the
//! server recovers to the end of the archive and promotes.

use super::scratch::{self, Scratch};
use crate::config::{DrillMethod, DrillSpec};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The newest backup under `root`: `root` itself when it holds a
/// `backup_manifest` or `PG_VERSION`, else its newest subdirectory that does.
pub fn newest_backup(root: &Path) -> Result<PathBuf, String> {
    let is_backup = |p: &Path| {
        ["backup_manifest", "PG_VERSION", "base.tar", "base.tar.gz"]
            .iter()
            .any(|f| p.join(f).is_file())
    };
    if is_backup(root) {
        return Ok(root.to_path_buf());
    }
    let entries = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_backup(p))
        .max_by_key(|p| {
            std::fs::metadata(p.join("backup_manifest"))
                .or_else(|_| std::fs::metadata(p))
                .and_then(|m| m.modified())
                .ok()
        })
        .ok_or_else(|| {
            format!(
                "no backup in {} (no backup_manifest, PG_VERSION or base.tar in it or its subdirectories)",
                root.display()
            )
        })
}

/// Bytes the restore will need, as far as can be told before it.
pub async fn needed_bytes(spec: &DrillSpec, deadline: Instant, owner: scratch::Owner) -> u64 {
    match &spec.method {
        DrillMethod::PgBasebackup { backup, .. } => newest_backup(backup)
            .map(|b| scratch::tree_size(&b))
            .unwrap_or(0),
        DrillMethod::PgBackRest { stanza, config } => {
            let mut argv = vec!["pgbackrest".to_string()];
            if let Some(config) = config {
                argv.push(format!("--config={}", config.display()));
            }
            argv.extend([
                format!("--stanza={stanza}"),
                "--output=json".into(),
                "info".into(),
            ]);
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(ran) = scratch::run(&argv, owner, Path::new("/"), &[], left).await else {
                return 0;
            };
            let json: serde_json::Value = serde_json::from_str(&ran.output).unwrap_or_default();
            json[0]["backup"]
                .as_array()
                .and_then(|b| b.last())
                .and_then(|b| b["info"]["size"].as_u64())
                .unwrap_or(0)
        }
        DrillMethod::Command(_) => 0,
    }
}

fn left(deadline: Instant) -> std::time::Duration {
    deadline.saturating_duration_since(Instant::now())
}

async fn step(
    argv: Vec<String>,
    s: &Scratch,
    env: &[(String, String)],
    deadline: Instant,
) -> Result<(), String> {
    let ran = scratch::run(&argv, s.owner, &s.dir, env, left(deadline)).await?;
    if ran.ok {
        Ok(())
    } else {
        Err(format!("{} failed: {}", argv[0], ran.last_line()))
    }
}

fn make_data_dir(s: &Scratch) -> Result<(), String> {
    s.make_dir(&s.data)
}

/// Put the backup in `s.data` and make it ready to recover on `port`.
pub async fn restore(
    spec: &DrillSpec,
    s: &Scratch,
    port: u16,
    deadline: Instant,
) -> Result<String, String> {
    let mut recovery = Vec::new();
    let source = match &spec.method {
        DrillMethod::PgBasebackup { backup, archive } => {
            let backup = newest_backup(backup)?;
            let tar = ["base.tar", "base.tar.gz", "base.tar.zst", "base.tar.lz4"]
                .iter()
                .map(|f| backup.join(f))
                .find(|p| p.is_file());
            match tar {
                Some(base) => {
                    make_data_dir(s)?;
                    let data = s.data.display().to_string();
                    step(
                        vec![
                            "tar".into(),
                            "-xf".into(),
                            base.display().to_string(),
                            "-C".into(),
                            data.clone(),
                        ],
                        s,
                        &[],
                        deadline,
                    )
                    .await?;
                    if let Some(wal) = ["pg_wal.tar", "pg_wal.tar.gz"]
                        .iter()
                        .map(|f| backup.join(f))
                        .find(|p| p.is_file())
                    {
                        let wal_dir = format!("{data}/pg_wal");
                        step(
                            vec![
                                "tar".into(),
                                "-xf".into(),
                                wal.display().to_string(),
                                "-C".into(),
                                wal_dir,
                            ],
                            s,
                            &[],
                            deadline,
                        )
                        .await?;
                    }
                }
                None => {
                    step(
                        vec![
                            "cp".into(),
                            "-a".into(),
                            format!("{}/.", backup.display()),
                            s.data.display().to_string(),
                        ],
                        s,
                        &[],
                        deadline,
                    )
                    .await?
                }
            }
            if let Some(archive) = archive {
                let path = archive.display().to_string();
                if path.contains(['\'', '"', '\\', '\n']) {
                    return Err(format!(
                        "the archive path {path:?} has quotes or backslashes; use a plainer path"
                    ));
                }
                recovery.push(format!("restore_command = 'cp \"{path}/%f\" \"%p\"'"));
            }
            format!("pg_basebackup {}", backup.display())
        }
        DrillMethod::PgBackRest { stanza, config } => {
            make_data_dir(s)?;
            let mut argv = vec!["pgbackrest".to_string()];
            if let Some(config) = config {
                argv.push(format!("--config={}", config.display()));
            }
            argv.extend([
                format!("--stanza={stanza}"),
                format!("--pg1-path={}", s.data.display()),
                "--log-level-file=off".into(),
                "--log-level-console=warn".into(),
                "restore".into(),
            ]);
            step(argv, s, &[], deadline).await?;
            format!("pgBackRest stanza {stanza}")
        }
        DrillMethod::Command(argv) => {
            let env = [
                (
                    "WATCHPOST_DRILL_DATA".to_string(),
                    s.data.display().to_string(),
                ),
                (
                    "WATCHPOST_DRILL_DIR".to_string(),
                    s.dir.display().to_string(),
                ),
            ];
            step(argv.clone(), s, &env, deadline).await?;
            if !s.data.join("PG_VERSION").is_file() {
                return Err(format!(
                    "the command left no data directory in $WATCHPOST_DRILL_DATA ({})",
                    s.data.display()
                ));
            }
            format!("command {}", argv[0])
        }
    };
    configure(s, port, &recovery)?;
    Ok(source)
}

fn configure(s: &Scratch, port: u16, recovery: &[String]) -> Result<(), String> {
    let dir = s.dir.display().to_string();
    s.write_new(&s.dir.join("hba.conf"), "local all all trust\n")?;
    s.write_new(&s.dir.join("ident.conf"), "")?;
    // Debian keeps the config in /etc: the data directory may have none.
    if std::fs::symlink_metadata(s.data.join("postgresql.conf")).is_err() {
        s.write_new(&s.data.join("postgresql.conf"), "")?;
    }
    let mut lines = vec![
        "# restore drill (watchpost): a private, throwaway copy".to_string(),
        format!("port = {port}"),
        "listen_addresses = ''".into(),
        format!("unix_socket_directories = '{dir}'"),
        format!("hba_file = '{dir}/hba.conf'"),
        format!("ident_file = '{dir}/ident.conf'"),
        "archive_mode = off".into(),
        "primary_conninfo = ''".into(),
        "primary_slot_name = ''".into(),
        "synchronous_standby_names = ''".into(),
        "hot_standby = off".into(),
        "recovery_target_timeline = 'latest'".into(),
        "logging_collector = off".into(),
        "log_destination = 'stderr'".into(),
        "ssl = off".into(),
        "shared_buffers = '128MB'".into(),
        "cluster_name = 'watchpost-drill'".into(),
    ];
    lines.extend(recovery.iter().cloned());
    lines.push(String::new());
    s.append(&s.data.join("postgresql.auto.conf"), &lines.join("\n"))?;
    // Relative to the data directory opened once, never through a link.
    let data = crate::safefs::OwnedDir::open(&s.data).map_err(|e| e.to_string())?;
    data.remove_file("standby.signal")
        .map_err(|e| e.to_string())?;
    if !data.exists("recovery.signal").map_err(|e| e.to_string())? {
        s.write_new(&s.data.join("recovery.signal"), "")?;
    }
    Ok(())
}
