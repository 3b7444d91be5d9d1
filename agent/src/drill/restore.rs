//! Getting the backup into the scratch directory and ready to recover:
//! copy or unpack a `pg_basebackup` backup with its tablespaces (WAL from
//! the archive through `restore_command`), `pgbackrest restore` with every
//! tablespace mapped into the scratch directory, or a user's command;
//! then the copy is confined (no link or tablespace leading out of the
//! scratch directory) and given the drill's own settings (a free port,
//! unix socket only in the scratch directory, trust for local sessions
//! only, no archiving, no streaming, every path-valued setting inside the
//! scratch directory: see `settings`) and `recovery.signal`, so that the
//! server recovers to the end of the archive and promotes.

use super::archive;
use super::confine;
use super::program::{self, step};
use super::scratch::{self, Scratch};
use super::settings::{self, Recovery};
use super::tablespace;
use crate::config::{DrillMethod, DrillSpec};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The backup tool whose repository layout `dir` has, when it is one the
/// `pg_basebackup` drill cannot restore: Barman (`base/ID/backup.info`
/// and `wals/`) or WAL-G / wal-e (`basebackups_005/`).
pub fn foreign_layout(dir: &Path) -> Option<&'static str> {
    let barman = dir.join("wals").is_dir()
        && std::fs::read_dir(dir.join("base")).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().join("backup.info").is_file())
        });
    if barman {
        Some("Barman")
    } else if dir.join("basebackups_005").is_dir() {
        Some("WAL-G")
    } else {
        None
    }
}

/// What to do instead for a repository of `tool`.
pub fn foreign_hint(tool: &str) -> &'static str {
    if tool == "Barman" {
        "use a `command` drill running `barman restore` into $WATCHPOST_DRILL_DATA"
    } else {
        "use a `command` drill running `wal-g backup-fetch \"$WATCHPOST_DRILL_DATA\" LATEST` (through `sh -c`)"
    }
}

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
        .ok_or_else(|| match foreign_layout(root) {
            Some(tool) => format!(
                "{} is a {tool} repository, which the pg_basebackup drill does not restore: {}",
                root.display(),
                foreign_hint(tool)
            ),
            None => format!(
                "no backup in {} (no backup_manifest, PG_VERSION or base.tar in it or its subdirectories)",
                root.display()
            ),
        })
}

/// Bytes the restore will need, as far as can be told before it: a
/// `pg_basebackup` backup's files and its tablespaces' (links followed in
/// the backup, never written), pgBackRest's size of the newest backup, a
/// command's `expected_size`; at least `expected_size` when given.
pub async fn needed_bytes(spec: &DrillSpec, deadline: Instant, owner: scratch::Owner) -> u64 {
    let measured = match &spec.method {
        DrillMethod::PgBasebackup { backup, .. } => {
            let backup = backup.clone();
            tokio::task::spawn_blocking(move || {
                newest_backup(&backup)
                    .map(|b| scratch::tree_size(&b) + tablespaces_size(&b))
                    .unwrap_or(0)
            })
            .await
            .unwrap_or(0)
        }
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
            let ran = program::run_keeping(&argv, owner, Path::new("/"), &[], left, 16 << 20).await;
            let json: serde_json::Value = ran
                .ok()
                .filter(|r| !r.truncated)
                .and_then(|r| serde_json::from_str(&r.output).ok())
                .unwrap_or_default();
            json[0]["backup"]
                .as_array()
                .and_then(|b| b.last())
                .and_then(|b| b["info"]["size"].as_u64())
                .unwrap_or(0)
        }
        DrillMethod::Command(_) => 0,
        DrillMethod::MariadbBackup { .. } | DrillMethod::RedisRdb { .. } => {
            super::copy::needed_bytes(&spec.method).await
        }
    };
    measured.max(spec.expected_size.unwrap_or(0))
}

/// Bytes of the directories a plain backup's `pg_tblspc` links point at.
fn tablespaces_size(backup: &Path) -> u64 {
    std::fs::read_dir(backup.join("pg_tblspc"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
                .filter_map(|e| std::fs::canonicalize(e.path()).ok())
                .map(|target| scratch::tree_size(&target))
                .sum()
        })
        .unwrap_or(0)
}

/// A restored copy ready to start.
pub struct Prepared {
    /// What was restored, for the message.
    pub source: String,
    /// The server's options at its start (every override as `-c
    /// name=value`; [`crate::pgserver::ctl::PgCtl::start`]'s `options`).
    pub options: String,
    /// Notes for the message (includes not read, tablespaces restored).
    pub notes: Vec<String>,
}

/// A path for a command line in the copy's settings, refused when quotes
/// or backslashes would need escaping.
fn plain_path(what: &str, path: &Path) -> Result<String, String> {
    let text = path.display().to_string();
    if text.contains(['\'', '"', '\\', '\n', '$', '`']) {
        return Err(format!(
            "the {what} path {text:?} has quotes, backslashes or `$`; use a plainer path"
        ));
    }
    Ok(text)
}

async fn pg_basebackup(
    s: &Scratch,
    backup: &Path,
    deadline: Instant,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let tar = ["base.tar", "base.tar.gz", "base.tar.zst", "base.tar.lz4"]
        .iter()
        .map(|f| backup.join(f))
        .find(|p| p.is_file());
    let tablespaces = match tar {
        Some(base) => {
            s.make_dir(&s.data)?;
            // Every member checked before anything is written (`archive`).
            archive::unpack(s, &base, &s.data, deadline).await?;
            let major = settings::major_version(s)?;
            let name = base.file_name().map(|n| n.to_string_lossy().into_owned());
            let ext = name
                .as_deref()
                .and_then(|n| n.strip_prefix("base"))
                .unwrap_or(".tar");
            let tablespaces = tablespace::unpack_tar(s, backup, ext, major, deadline).await?;
            // Confined before anything is unpacked into the copy's
            // directories: `pg_wal` could be a link out of it.
            confined(s, major, deadline).await?;
            if let Some(wal) = ["pg_wal.tar", "pg_wal.tar.gz"]
                .iter()
                .map(|f| backup.join(f))
                .find(|p| p.is_file())
            {
                let into = s.data.join("pg_wal");
                if std::fs::symlink_metadata(&into).is_err() {
                    s.make_dir(&into)?;
                }
                archive::unpack(s, &wal, &into, deadline).await?;
            }
            tablespaces
        }
        None => {
            let argv = vec![
                "cp".into(),
                "-a".into(),
                format!("{}/.", backup.display()),
                s.data.display().to_string(),
            ];
            step(argv, s.owner, &s.dir, &[], deadline).await?;
            let major = settings::major_version(s)?;
            tablespace::copy_plain(s, backup, major, deadline).await?
        }
    };
    if tablespaces > 0 {
        notes.push(format!(
            "{tablespaces} tablespace(s) restored into the copy"
        ));
    }
    Ok(())
}

/// Put the backup in `s.data` and make it ready to recover on `port`.
pub async fn restore(
    spec: &DrillSpec,
    s: &Scratch,
    port: u16,
    deadline: Instant,
) -> Result<Prepared, String> {
    let mut notes = Vec::new();
    let (source, recovery) = match &spec.method {
        DrillMethod::PgBasebackup { backup, archive } => {
            let backup = newest_backup(backup)?;
            pg_basebackup(s, &backup, deadline, &mut notes).await?;
            let recovery = match archive {
                Some(archive) => {
                    let path = plain_path("archive", archive)?;
                    format!("cp \"{path}/%f\" \"%p\"")
                }
                None => String::new(),
            };
            (
                format!("pg_basebackup {}", backup.display()),
                Recovery::Command(recovery),
            )
        }
        DrillMethod::PgBackRest { stanza, config } => {
            s.make_dir(&s.data)?;
            let tablespaces = s.dir.join(tablespace::TBLSPC);
            s.make_dir(&tablespaces)?;
            let mut argv = vec!["pgbackrest".to_string()];
            let mut fetch = "pgbackrest".to_string();
            if let Some(config) = config {
                argv.push(format!("--config={}", config.display()));
                fetch.push_str(&format!(
                    " --config=\"{}\"",
                    plain_path("pgbackrest_config", config)?
                ));
            }
            if stanza.contains(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))) {
                return Err(format!(
                    "the stanza name {stanza:?} has characters other than letters, digits, `-`, `_` and `.`"
                ));
            }
            // archive-get resolves %p against pg1-path: the copy's, never
            // the configured (live) data directory; its lock and log files
            // go into the copy's directory too, and it runs synchronously
            // (an asynchronous one would share production's spool queue).
            let data = plain_path("drill", &s.data)?;
            let own = s.dir.join("pgbackrest");
            s.make_dir(&own)?;
            let own_path = plain_path("drill", &own)?;
            fetch.push_str(&format!(
                " --pg1-path=\"{data}\" --lock-path=\"{own_path}\" --log-path=\"{own_path}\" \
                 --log-level-file=off --no-archive-async --stanza={stanza} archive-get %f \"%p\""
            ));
            argv.extend([
                format!("--stanza={stanza}"),
                format!("--pg1-path={}", s.data.display()),
                // Every tablespace into the copy, whatever the config
                // maps; links restored as directories; never a delta
                // restore (it would read the configured paths).
                "--reset-tablespace-map".into(),
                format!("--tablespace-map-all={}", tablespaces.display()),
                "--reset-link-map".into(),
                "--no-link-all".into(),
                "--no-delta".into(),
                // Nor what the config adds to the copy's settings or the
                // host it names for the data directory: the copy's
                // settings are the drill's (`settings`).
                "--reset-recovery-option".into(),
                "--reset-archive-mode".into(),
                "--reset-pg1-host".into(),
                format!("--lock-path={}", own.display()),
                format!("--log-path={}", own.display()),
                "--log-level-file=off".into(),
                "--log-level-console=warn".into(),
                "restore".into(),
            ]);
            step(argv, s.owner, &s.dir, &[], deadline).await?;
            (
                format!("pgBackRest stanza {stanza}"),
                Recovery::Command(fetch),
            )
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
            step(argv.clone(), s.owner, &s.dir, &env, deadline).await?;
            if !s.data.join("PG_VERSION").is_file() {
                return Err(format!(
                    "the command left no data directory in $WATCHPOST_DRILL_DATA ({})",
                    s.data.display()
                ));
            }
            (format!("command {}", argv[0]), Recovery::Keep)
        }
        DrillMethod::MariadbBackup { .. } | DrillMethod::RedisRdb { .. } => {
            return Err("not a PostgreSQL drill".into());
        }
    };
    let major = settings::major_version(s)?;
    let unshared = confined(s, major, deadline).await?;
    if unshared > 0 {
        notes.push(format!(
            "{unshared} file(s) hard-linked to files outside the copy were copied first"
        ));
    }
    // Without an archive, the copy recovers from the WAL in the backup.
    let archive_recovery = !matches!(&recovery, Recovery::Command(c) if c.is_empty());
    configure(s, archive_recovery)?;
    let restored = settings::read(s)?;
    for (file, target, why) in &restored.neutralised {
        notes.push(format!(
            "include of {} in {} not read (it {why})",
            target.display(),
            file.display()
        ));
    }
    let overrides = settings::overrides(s, &restored, major, port, &recovery, &mut notes);
    Ok(Prepared {
        source,
        options: settings::command_line(&overrides),
        notes,
    })
}

/// [`confine::confine`] on a blocking thread (it walks the whole tree);
/// files hard-linked to files outside are copied ([`confine::unshare`])
/// and the copy checked again. Returns how many were copied.
async fn confined(s: &Scratch, major: u32, deadline: Instant) -> Result<usize, String> {
    let walk = || {
        let view = s.view();
        async move {
            tokio::task::spawn_blocking(move || confine::confine(&view, major))
                .await
                .map_err(|e| format!("confining the copy: {e}"))?
        }
    };
    let shared = walk().await?;
    if shared.is_empty() {
        return Ok(0);
    }
    confine::unshare(s, &shared, deadline).await?;
    if let Some(left) = walk().await?.first() {
        return Err(format!(
            "the restored copy's file {} still shares its data with a file outside the drill's \
             directory after it was copied (is something still linking it?)",
            left.display()
        ));
    }
    Ok(shared.len())
}

/// The files the overrides name, and the signal to recover from the
/// archive (`archive_recovery`) and promote.
fn configure(s: &Scratch, archive_recovery: bool) -> Result<(), String> {
    s.write_new(&s.dir.join("hba.conf"), "local all all trust\n")?;
    s.write_new(&s.dir.join("ident.conf"), "")?;
    // Debian keeps the config in /etc: the data directory may have none.
    if std::fs::symlink_metadata(s.data.join("postgresql.conf")).is_err() {
        s.write_new(&s.data.join("postgresql.conf"), "")?;
    }
    // Relative to the data directory opened once, never through a link.
    let data = crate::safefs::OwnedDir::open(&s.data).map_err(|e| e.to_string())?;
    data.remove_file(crate::pgserver::pgdata::STANDBY_SIGNAL)
        .map_err(|e| e.to_string())?;
    if !archive_recovery {
        data.remove_file("recovery.signal")
            .map_err(|e| e.to_string())?;
    } else if !data.exists("recovery.signal").map_err(|e| e.to_string())? {
        s.write_new(&s.data.join("recovery.signal"), "")?;
    }
    Ok(())
}
