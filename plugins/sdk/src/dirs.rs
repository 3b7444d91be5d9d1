//! Read-only directories the agent config grants the probe (`dirs = {
//! NAME = "/host/path" }`, or `--dir NAME=PATH` on `watchpost check`).
//! Each is mounted read-only at `/NAME`; read it with `std::fs`. Paths
//! resolve inside the directory: a symlink out of it does not open.
//!
//! ```ignore
//! let repo = watchpost_probe::dirs::require("repo")?;      // "/repo"
//! let info = std::fs::read_to_string(repo.join("backup/main/backup.info"))?;
//! ```

use crate::bindings::watchpost::probe::dirs as wit;
use crate::{Error, Result};
use std::path::PathBuf;

pub use wit::Dir;

/// The directories this probe is granted, sorted by name.
pub fn granted() -> Vec<Dir> {
    wit::granted()
}

/// True when directory `name` is granted (whether or not it opened).
pub fn is_granted(name: &str) -> bool {
    granted().iter().any(|d| d.name == name)
}

/// The path (`/NAME`) of granted directory `name`; an error saying how to
/// grant it, or why the agent could not open it.
pub fn require(name: &str) -> Result<PathBuf> {
    let dirs = granted();
    match dirs.iter().find(|d| d.name == name) {
        Some(Dir { error: None, .. }) => Ok(PathBuf::from(format!("/{name}"))),
        Some(Dir {
            error: Some(why), ..
        }) => Err(Error::msg(format!(
            "granted directory `{name}` could not be opened by the agent: {why}"
        ))),
        None => {
            let names: Vec<&str> = dirs.iter().map(|d| d.name.as_str()).collect();
            Err(Error::msg(format!(
                "directory `{name}` is not granted: add `dirs = {{ {name} = \"/path\" }}` to the probe's \
                 config entry (or `--dir {name}=/path` to `watchpost check`); granted: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )))
        }
    }
}

/// Like [`require`], but `None` when `name` is not granted at all.
pub fn optional(name: &str) -> Result<Option<PathBuf>> {
    if is_granted(name) {
        require(name).map(Some)
    } else {
        Ok(None)
    }
}
