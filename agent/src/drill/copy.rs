//! Finding the newest MariaDB or Redis backup and copying it into the
//! drill's scratch directory: a `mariadb-backup` directory (the one given,
//! or its newest subdirectory with a checkpoints file), an RDB file (the
//! one given, or the newest `*.rdb` in a directory and two levels below)
//! and an AOF directory. Always a copy (`cp`, run as the backup's owner:
//! never a hard link, the backup is only read), and the copy is then
//! refused when it holds a symbolic link or a special file (a restored
//! server would write through it) or, for InnoDB, an `.isl` file (a
//! table kept outside the data directory).

use super::program::step;
use super::scratch::{self, Scratch};
use crate::config::DrillMethod;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

/// The checkpoints file of a `mariadb-backup` copy, old and new names.
const CHECKPOINTS: [&str; 2] = ["xtrabackup_checkpoints", "mariadb_backup_checkpoints"];

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest `mariadb-backup` copy under `root`: `root` itself when it
/// has a checkpoints file, else its subdirectory whose checkpoints file
/// is newest.
pub fn newest_mariadb(root: &Path) -> Result<PathBuf, String> {
    let checkpoints = |p: &Path| CHECKPOINTS.iter().map(|f| p.join(f)).find(|f| f.is_file());
    if checkpoints(root).is_some() {
        return Ok(root.to_path_buf());
    }
    let entries = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    entries
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| checkpoints(&p).map(|c| (modified(&c), p)))
        .max_by_key(|(time, _)| *time)
        .map(|(_, p)| p)
        .ok_or_else(|| {
            format!(
                "no mariadb-backup copy in {} (no xtrabackup_checkpoints or mariadb_backup_checkpoints \
                 in it or its subdirectories: a copy still running or one that failed has none)",
                root.display()
            )
        })
}

/// The newest `*.rdb` file: `root` itself when it is a file, else the
/// newest in it and two levels below (an AOF's base file,
/// `*.aof.N.base.rdb`, is not a copy).
pub fn newest_rdb(root: &Path) -> Result<PathBuf, String> {
    if std::fs::metadata(root).is_ok_and(|m| m.is_file()) {
        return Ok(root.to_path_buf());
    }
    fn walk(dir: &Path, depth: u32, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && depth < 2 {
                walk(&path, depth + 1, found);
            } else if kind.is_file()
                && path.extension().is_some_and(|e| e == "rdb")
                // An AOF directory's base (`appendonly.aof.1.base.rdb`)
                // is a part of the AOF, not a copy of the dataset.
                && !entry.file_name().to_string_lossy().contains(".aof.")
            {
                found.push(path);
            }
        }
    }
    if std::fs::read_dir(root).is_err() {
        return Err(format!(
            "cannot read the backup {}: {}",
            root.display(),
            std::io::Error::last_os_error()
        ));
    }
    let mut found = Vec::new();
    walk(root, 0, &mut found);
    found
        .into_iter()
        .max_by_key(|p| modified(p))
        .ok_or_else(|| {
            format!(
                "no RDB copy (*.rdb) in {} or two levels below",
                root.display()
            )
        })
}

/// Bytes the copy of a MariaDB or Redis drill takes (0 when the backup
/// cannot be found: the drill then says why).
pub async fn needed_bytes(method: &DrillMethod) -> u64 {
    let method = method.clone();
    tokio::task::spawn_blocking(move || match &method {
        DrillMethod::MariadbBackup { backup } => newest_mariadb(backup)
            .map(|b| scratch::tree_size(&b))
            .unwrap_or(0),
        DrillMethod::RedisRdb { backup, aof } => {
            let rdb = newest_rdb(backup).map_or(0, |r| scratch::tree_size(&r));
            rdb + aof.as_deref().map_or(0, scratch::tree_size)
        }
        _ => 0,
    })
    .await
    .unwrap_or(0)
}

/// Copy directory `from` (its contents) to `to` (made by the copy), as
/// the scratch directory's owner, then refuse links and special files in
/// the copy.
pub async fn copy_dir(
    s: &Scratch,
    from: &Path,
    to: &Path,
    deadline: Instant,
) -> Result<(), String> {
    let argv = vec![
        "cp".into(),
        "-R".into(),
        "--no-dereference".into(),
        "--preserve=mode,timestamps".into(),
        format!("{}/.", from.display()),
        to.display().to_string(),
    ];
    step(argv, s.owner, &s.dir, &[], deadline).await?;
    let (to, from) = (to.to_path_buf(), from.to_path_buf());
    tokio::task::spawn_blocking(move || plain_tree(&to, &to, &from))
        .await
        .map_err(|e| format!("checking the copy: {e}"))?
}

/// Copy file `from` to `to`, as the scratch directory's owner.
pub async fn copy_file(
    s: &Scratch,
    from: &Path,
    to: &Path,
    deadline: Instant,
) -> Result<(), String> {
    let argv = vec![
        "cp".into(),
        "--preserve=mode,timestamps".into(),
        from.display().to_string(),
        to.display().to_string(),
    ];
    step(argv, s.owner, &s.dir, &[], deadline).await?;
    match std::fs::symlink_metadata(to) {
        Ok(m) if m.is_file() => Ok(()),
        _ => Err(format!("the copy {} is not a plain file", to.display())),
    }
}

/// Ok when everything under `dir` is a plain file or directory (no link
/// followed); else an error naming the entry as it is in `backup`.
fn plain_tree(top: &Path, dir: &Path, backup: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let named = backup.join(path.strip_prefix(top).unwrap_or(&path));
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if kind.is_dir() {
            plain_tree(top, &path, backup)?;
        } else if kind.is_symlink() {
            return Err(format!(
                "the backup has a symbolic link, {}: a drill does not follow links out of its copy; \
                 keep the backup's files inside its directory",
                named.display()
            ));
        } else if !kind.is_file() {
            return Err(format!(
                "the backup has {}, which is not a plain file or directory",
                named.display()
            ));
        } else if path.extension().is_some_and(|e| e == "isl") {
            return Err(format!(
                "the backup has {}: a table created with DATA DIRECTORY, which the drill does not \
                 restore (its copy would be written outside the scratch directory)",
                named.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_copy_is_found_and_its_absence_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = newest_mariadb(dir.path()).unwrap_err();
        assert!(err.contains("no mariadb-backup copy"), "{err}");
        for (name, file) in [("a", CHECKPOINTS[0]), ("b", CHECKPOINTS[1])] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join(file), "").unwrap();
        }
        let old = std::fs::File::options()
            .write(true)
            .open(dir.path().join("a").join(CHECKPOINTS[0]))
            .unwrap();
        old.set_modified(SystemTime::now() - std::time::Duration::from_secs(3600))
            .unwrap();
        assert_eq!(newest_mariadb(dir.path()).unwrap(), dir.path().join("b"));

        let err = newest_rdb(dir.path()).unwrap_err();
        assert!(err.contains("no RDB copy"), "{err}");
        std::fs::write(dir.path().join("a/dump.rdb"), "x").unwrap();
        std::fs::write(dir.path().join("b/appendonly.aof.1.base.rdb"), "x").unwrap();
        assert_eq!(
            newest_rdb(dir.path()).unwrap(),
            dir.path().join("a/dump.rdb")
        );
    }

    #[test]
    fn links_special_files_and_remote_tablespaces_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        std::fs::create_dir(top.join("db")).unwrap();
        std::fs::write(top.join("db/t.ibd"), "").unwrap();
        assert!(plain_tree(top, top, Path::new("/backup")).is_ok());
        std::fs::write(top.join("db/r.isl"), "/elsewhere/r.ibd").unwrap();
        let err = plain_tree(top, top, Path::new("/backup")).unwrap_err();
        assert!(
            err.contains("/backup/db/r.isl") && err.contains("DATA DIRECTORY"),
            "{err}"
        );
        std::fs::remove_file(top.join("db/r.isl")).unwrap();
        std::os::unix::fs::symlink("/etc", top.join("db/link")).unwrap();
        let err = plain_tree(top, top, Path::new("/backup")).unwrap_err();
        assert!(err.contains("symbolic link, /backup/db/link"), "{err}");
    }
}
