//! Finding the RDB copies of a granted directory (`*.rdb` in it and two
//! levels below, newest first) and reading one whole for its check.

use crate::rdb::{self, Verdict};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use watchpost_probe::{Error, Result};

/// Directory levels below the granted one searched for copies.
const DEPTH: usize = 2;

/// One RDB copy.
#[derive(Debug)]
pub struct Copy {
    /// Its path relative to the granted directory, for messages.
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
}

/// Every `*.rdb` file under `root`, newest first (ties by name).
pub fn rdb_copies(root: &Path) -> Result<Vec<Copy>> {
    let mut copies = Vec::new();
    collect(root, root, 0, &mut copies)?;
    copies.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
    Ok(copies)
}

fn collect(root: &Path, dir: &Path, depth: usize, copies: &mut Vec<Copy>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::msg(format!("cannot list {}: {e}", shown(root, dir))))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| Error::msg(format!("cannot list {}: {e}", shown(root, dir))))?;
        let path = entry.path();
        // Follows links inside the grant (the agent resolves them there);
        // one that leads out does not open and is passed over.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if depth < DEPTH {
                collect(root, &path, depth + 1, copies)?;
            }
        } else if meta.is_file() && path.extension().is_some_and(|e| e == "rdb") {
            copies.push(Copy {
                name: shown(root, &path),
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                path,
            });
        }
    }
    Ok(())
}

/// `path` relative to `root`, as text.
fn shown(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    if relative.as_os_str().is_empty() {
        ".".to_string()
    } else {
        relative.display().to_string()
    }
}

/// Read `copy` whole and check it.
pub fn verify(copy: &Copy) -> Result<Verdict> {
    let file = std::fs::File::open(&copy.path)
        .map_err(|e| Error::msg(format!("cannot open {}: {e}", copy.name)))?;
    let len = file
        .metadata()
        .map_err(|e| Error::msg(format!("cannot read {}: {e}", copy.name)))?
        .len();
    rdb::check(std::io::BufReader::new(file), len)
        .map_err(|e| Error::msg(format!("cannot read {}: {e}", copy.name)))
}
