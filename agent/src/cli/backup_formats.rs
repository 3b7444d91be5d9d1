//! What `validate` says about `pg-backup` repositories it cannot check in
//! full: a Barman repository is not supported at all (an error, so that
//! nobody believes it is watched), and WAL-G is checked only at the depth
//! of its stop sentinels (a warning saying what is not checked).

use crate::config::{Config, Diagnostic, WasmSource};
use std::path::Path;

/// A Barman server directory: `base/BACKUP_ID/backup.info` and `wals/`.
fn is_barman(dir: &Path) -> bool {
    dir.join("wals").is_dir()
        && std::fs::read_dir(dir.join("base")).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().join("backup.info").is_file())
        })
}

/// An error for each `pg-backup` probe pointed at a Barman repository
/// (`format = "barman"`, or a `repo` grant laid out like one); a printed
/// warning for each WAL-G one.
pub fn unsupported(config: &Config) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
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
        } else if format == "wal-g" {
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
    use super::is_barman;

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
