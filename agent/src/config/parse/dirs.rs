//! `dirs = { NAME = "/host/path" }` in a `[[probe]]` entry: the read-only
//! directories the probe may read, each seen by the probe at `/NAME`.
//! Names follow the probe-name rules; paths must be absolute (or relative
//! to the config file's directory) and name an existing directory, so
//! that a typo is an error at load rather than a probe that never finds
//! its backups.

use super::super::reader::Section;
use super::{Parser, valid_name};
use std::collections::BTreeMap;
use std::path::PathBuf;

impl Parser<'_, '_> {
    pub(super) fn dirs(&mut self, s: &mut Section) -> BTreeMap<String, PathBuf> {
        let mut dirs = BTreeMap::new();
        let Some(map) = s.string_map(&mut self.d, "dirs") else {
            return dirs;
        };
        for (name, path) in map {
            if !valid_name(&name) {
                self.d.error(
                    path.span.clone(),
                    format!(
                        "{}: `dirs` name {name:?} must be 1 to 64 letters, digits, `-`, `_` or `.`, \
                         starting with a letter or digit (the probe sees the directory at /NAME)",
                        s.path
                    ),
                );
                continue;
            }
            let raw = PathBuf::from(&path.value);
            let full = if raw.is_absolute() {
                raw
            } else {
                self.source.base_dir.join(raw)
            };
            match std::fs::metadata(&full) {
                Ok(meta) if meta.is_dir() => {
                    dirs.insert(name, full);
                }
                Ok(_) => self.d.error(
                    path.span.clone(),
                    format!(
                        "{}: `dirs.{name}` = {:?} is not a directory; grant the directory that holds the files",
                        s.path,
                        full.display()
                    ),
                ),
                Err(e) => self.d.error(
                    path.span.clone(),
                    format!(
                        "{}: `dirs.{name}` = {:?} cannot be used: {e} (relative paths are resolved from the config file's directory)",
                        s.path,
                        full.display()
                    ),
                ),
            }
        }
        dirs
    }
}
