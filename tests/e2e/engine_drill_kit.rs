//! What the MariaDB and Redis restore drill tests share: a directory
//! owned by the database's OS user (the drill runs the restored server
//! as the backup's owner), a config with one drill, and a fingerprint of
//! a backup (every file's SHA-256, size and modification time) to prove
//! a drill left it as it was.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// `root/name`, made and (when the tests run as root) given to `user`;
/// `root` opened to others so that `user` can reach it.
pub fn owned_dir(root: &Path, name: &str, user: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    give(&dir, user);
    dir
}

/// `chown -R user: path` when the tests run as root.
pub fn give(path: &Path, user: &str) {
    if unsafe { libc::geteuid() } == 0 {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "chown {user} {}", path.display());
    }
}

/// A config with state in `root/state` and one drill named `restore`.
pub fn engine_drill_config(root: &Path, body: &str) -> PathBuf {
    let state = root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let config = root.join("drill.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = \"{}\"\n\n[[drill]]\nname = \"restore\"\ntimeout = \"300s\"\nreserve = \"64MiB\"\n{body}",
            state.display()
        ),
    )
    .unwrap();
    config
}

/// Every file under `dir`: its SHA-256, size and modification time.
pub fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (String, u64, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let sum = format!("{:x}", Sha256::digest(&bytes));
                files.insert(path, (sum, meta.len(), meta.modified().unwrap()));
            }
        }
    }
    files
}
