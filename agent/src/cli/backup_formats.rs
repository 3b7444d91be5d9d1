//! What `validate` says about backup repositories it cannot check in
//! full: a Barman repository is not supported by `pg-backup` at all (an
//! error, so that nobody believes it is watched), and WAL-G is checked
//! only at the depth of its stop sentinels (a warning saying what is not
//! checked). A `backup` drill pointed at a Barman or WAL-G repository is
//! an error too: it restores `pg_basebackup` backups only.

use crate::config::{Config, Diagnostic, DrillMethod, WasmSource};
use crate::drill::{foreign_hint, foreign_layout};
use std::path::Path;

/// A Barman server directory: `base/BACKUP_ID/backup.info` and `wals/`.
fn is_barman(dir: &Path) -> bool {
    foreign_layout(dir) == Some("Barman")
}

/// An error for each drill whose `backup` is a Barman or WAL-G repository.
fn foreign_drills(config: &Config) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    for drill in &config.drills {
        let DrillMethod::PgBasebackup { backup, .. } = &drill.method else {
            continue;
        };
        let Some(tool) = foreign_layout(backup) else {
            continue;
        };
        let place = config
            .probes
            .iter()
            .find(|p| matches!(&p.wasm, WasmSource::Drill(n) if *n == drill.name))
            .map(|p| p.place.clone())
            .unwrap_or_default();
        errors.push(Diagnostic {
            file: if place.file.is_empty() {
                config.file.clone()
            } else {
                place.file.clone()
            },
            line: place.line,
            column: place.column,
            message: format!(
                "[[drill]] {:?}: `backup` {} is a {tool} repository, which the drill does not \
                 restore (it restores pg_basebackup backups): {}",
                drill.name,
                backup.display(),
                foreign_hint(tool)
            ),
        });
    }
    errors
}

/// An error for each `pg-backup` probe pointed at a Barman repository
/// (`format = "barman"`, or a `repo` grant laid out like one); a printed
/// warning for each WAL-G one.
pub fn unsupported(config: &Config) -> Vec<Diagnostic> {
    let mut errors = foreign_drills(config);
    for spec in &config.probes {
        if !matches!(&spec.wasm, WasmSource::Builtin(name) if name == "pg-backup") {
            continue;
        }
        let format = spec
            .config
            .get("format")
            .map(|f| f.trim())
            .unwrap_or("auto");
        let repo_name = spec.config.get("repo").map_or("repo", |r| r.trim());
        let barman_layout = spec.dirs.get(repo_name).is_some_and(|d| is_barman(d));
        if format == "barman" || (format == "auto" && barman_layout) {
            errors.push(Diagnostic {
                file: spec.place.file.clone(),
                line: spec.place.line,
                column: spec.place.column,
                message: format!(
                    "[[probe]] {:?}: pg-backup does not support Barman repositories (`{repo_name}` \
                     has Barman's base/ and wals/): it would check nothing; use `barman check` \
                     and `barman verify-backup` from a command probe instead",
                    spec.name
                ),
            });
        } else if format == "wal-g"
            || (format == "auto"
                && spec.dirs.get(repo_name).and_then(|d| foreign_layout(d)) == Some("WAL-G"))
        {
            eprintln!(
                "{}: warning: [[probe]] {:?}: WAL-G repositories are checked by their stop \
                 sentinels only (the newest backup's age and size), not their files or WAL \
                 continuity; use `wal-g backup-list --detail` and `wal-g wal-verify` for those",
                spec.place, spec.name
            );
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::{foreign_drills, is_barman};

    #[test]
    fn a_drill_of_a_wal_g_or_barman_repository_is_refused_naming_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("walg");
        std::fs::create_dir_all(repo.join("basebackups_005")).unwrap();
        let text = format!(
            "[[drill]]\nname = \"nightly\"\nbackup = \"{}\"\n",
            repo.display()
        );
        let config = crate::config::parse_str("w.toml", &text, dir.path()).unwrap();
        let errors = foreign_drills(&config);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("is a WAL-G repository"),
            "{}",
            errors[0].message
        );
        assert!(
            errors[0].message.contains("backup-fetch"),
            "{}",
            errors[0].message
        );
        let plain = dir.path().join("plain");
        std::fs::create_dir_all(&plain).unwrap();
        let text = format!(
            "[[drill]]\nname = \"nightly\"\nbackup = \"{}\"\n",
            plain.display()
        );
        let config = crate::config::parse_str("w.toml", &text, dir.path()).unwrap();
        assert!(foreign_drills(&config).is_empty());
    }

    #[test]
    fn barman_layouts_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_barman(dir.path()));
        std::fs::create_dir_all(dir.path().join("base/20261206T000000")).unwrap();
        std::fs::create_dir_all(dir.path().join("wals")).unwrap();
        assert!(!is_barman(dir.path()));
        std::fs::write(dir.path().join("base/20261206T000000/backup.info"), "").unwrap();
        assert!(is_barman(dir.path()));
    }
}
