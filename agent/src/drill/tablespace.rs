//! Tablespaces (and any other link) of a restored copy, kept inside the
//! scratch directory. A backup names its tablespaces by where they lived:
//! a tar backup's `tablespace_map` holds the *live* paths (PostgreSQL
//! rebuilds `pg_tblspc/OID` from it at start), a plain backup's
//! `pg_tblspc/OID` links point at the backup's own tablespace copy. A
//! copy started as restored would replay WAL into those directories and
//! so corrupt production or the backup. Here each tablespace is restored
//! into `SCRATCH/tblspc/OID` and every reference rewritten to it; then
//! [`confine`] refuses any copy (whatever restored it) that still has a
//! link or a map entry leading outside the scratch directory.

use super::program::step;
use super::scratch::Scratch;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

/// The directory under the scratch directory that holds the tablespaces.
pub const TBLSPC: &str = "tblspc";

/// A path as `tablespace_map` writes it: `\`, LF and CR escaped with `\`.
pub fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '\\' | '\n' | '\r') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The entries (OID, path) of a `tablespace_map`, unescaped as
/// PostgreSQL reads them. An OID that is not all digits is an error.
pub fn parse_map(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if !escaped && (c == '\n' || c == '\r') {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
        } else if !escaped && c == '\\' {
            escaped = true;
        } else {
            line.push(c);
            escaped = false;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
        .into_iter()
        .map(|l| {
            let (oid, path) = l.split_once(' ').unwrap_or((&l, ""));
            if oid.is_empty() || !oid.chars().all(|c| c.is_ascii_digit()) || path.is_empty() {
                return Err(format!(
                    "tablespace_map: invalid line {l:?} (expected `OID PATH`)"
                ));
            }
            Ok((oid.to_string(), path.to_string()))
        })
        .collect()
}

/// A `tablespace_map` with `entries` (OID, path).
pub fn render_map(entries: &[(String, PathBuf)]) -> String {
    entries
        .iter()
        .map(|(oid, path)| format!("{oid} {}\n", escape(&path.display().to_string())))
        .collect()
}

/// `path` with `.` and `..` resolved lexically (no link followed).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where a link at `link` with target `target` leads, lexically.
fn resolve(link: &Path, target: &Path) -> PathBuf {
    normalize(&link.parent().unwrap_or(Path::new("/")).join(target))
}

/// A tar backup: unpack each tablespace named by the restored
/// `tablespace_map` from `backup/OID{ext}` (ext as `base{ext}`) into
/// `SCRATCH/tblspc/OID` and point the map there. Returns how many.
pub async fn unpack_tar(
    s: &Scratch,
    backup: &Path,
    ext: &str,
    deadline: Instant,
) -> Result<usize, String> {
    let map = s.data.join("tablespace_map");
    let Some(text) = s.read(&map)? else {
        return Ok(0);
    };
    let entries = parse_map(&text)?;
    if entries.is_empty() {
        return Ok(0);
    }
    let root = s.dir.join(TBLSPC);
    s.make_dir(&root)?;
    let mut remapped = Vec::new();
    for (oid, original) in entries {
        let tar = backup.join(format!("{oid}{ext}"));
        if !tar.is_file() {
            return Err(format!(
                "the backup's tablespace_map names tablespace {oid} (at {original}) but {} is missing: \
                 the backup is incomplete",
                tar.display()
            ));
        }
        let dest = root.join(&oid);
        s.make_dir(&dest)?;
        let argv = vec![
            "tar".into(),
            "-xf".into(),
            tar.display().to_string(),
            "-C".into(),
            dest.display().to_string(),
        ];
        step(argv, s.owner, &s.dir, &[], deadline).await?;
        remapped.push((oid, dest));
    }
    s.replace(&map, &render_map(&remapped))?;
    Ok(remapped.len())
}

/// Copy the contents of directory `target` (read, never written) into
/// the new directory `dest` of the scratch tree, as the owner.
async fn copy_target(
    s: &Scratch,
    target: &Path,
    dest: &Path,
    deadline: Instant,
) -> Result<(), String> {
    s.make_dir(dest)?;
    let argv = vec![
        "cp".into(),
        "-a".into(),
        format!("{}/.", target.display()),
        dest.display().to_string(),
    ];
    step(argv, s.owner, &s.dir, &[], deadline).await
}

/// Run a small file operation as the owner (never as root through a
/// link the owner could plant).
async fn owner_step(s: &Scratch, argv: &[&str], deadline: Instant) -> Result<(), String> {
    let argv = argv.iter().map(|a| a.to_string()).collect();
    step(argv, s.owner, &s.dir, &[], deadline).await
}

/// A plain backup copied into `s.data` (`cp -a`, links as links): each
/// `pg_tblspc/OID` link's target is copied to `SCRATCH/tblspc/OID` and the
/// link pointed there; any other link at the top of the data directory
/// (`pg_wal` from `--waldir`) is replaced by a copy of what it points at.
/// The backup's links are read, never followed for a write.
pub async fn copy_plain(s: &Scratch, backup: &Path, deadline: Instant) -> Result<usize, String> {
    let link_target = |link: &Path, original: &Path| -> Result<Option<PathBuf>, String> {
        let meta =
            std::fs::symlink_metadata(link).map_err(|e| format!("{}: {e}", link.display()))?;
        if !meta.file_type().is_symlink() {
            return Ok(None);
        }
        let target = std::fs::read_link(link).map_err(|e| format!("{}: {e}", link.display()))?;
        let target = resolve(original, &target);
        if !std::fs::metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Err(format!(
                "{} in the backup points at {}, which is not a directory: the backup is incomplete",
                original.display(),
                target.display()
            ));
        }
        Ok(Some(target))
    };
    for entry in std::fs::read_dir(&s.data)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let link = s.data.join(&name);
        if let Some(target) = link_target(&link, &backup.join(&name))? {
            let path = link.display().to_string();
            owner_step(s, &["rm", "-f", "--", &path], deadline).await?;
            copy_target(s, &target, &link, deadline).await?;
        }
    }
    let links = s.data.join("pg_tblspc");
    let Ok(entries) = std::fs::read_dir(&links) else {
        return Ok(0);
    };
    let root = s.dir.join(TBLSPC);
    let mut remapped = Vec::new();
    for entry in entries.flatten() {
        let oid = entry.file_name().to_string_lossy().into_owned();
        let link = links.join(&oid);
        let original = backup.join("pg_tblspc").join(&oid);
        let Some(target) = link_target(&link, &original)? else {
            continue; // an in-place tablespace: already in the copy
        };
        if !oid.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("{}: not a tablespace OID", original.display()));
        }
        if remapped.is_empty() {
            s.make_dir(&root)?;
        }
        let dest = root.join(&oid);
        copy_target(s, &target, &dest, deadline).await?;
        let (dest_s, link_s) = (dest.display().to_string(), link.display().to_string());
        owner_step(s, &["ln", "-sfnT", &dest_s, &link_s], deadline).await?;
        remapped.push((oid, dest));
    }
    // A map (rare in a plain backup) must follow the links.
    let map = s.data.join("tablespace_map");
    if let Some(text) = s.read(&map)? {
        let entries = parse_map(&text)?
            .into_iter()
            .map(|(oid, path)| {
                let moved = remapped.iter().find(|(o, _)| *o == oid);
                (
                    oid,
                    moved.map_or_else(|| PathBuf::from(path), |(_, d)| d.clone()),
                )
            })
            .collect::<Vec<_>>();
        s.replace(&map, &render_map(&entries))?;
    }
    Ok(remapped.len())
}

/// Refuse a copy that could write outside the scratch directory: every
/// link under it must lead (lexically) inside it, and so must every
/// `tablespace_map` entry.
pub fn confine(s: &Scratch) -> Result<(), String> {
    let hint = "the drill refuses to start a copy that would write there; restore tablespaces and \
                links into the drill's directory ($WATCHPOST_DRILL_DIR)";
    let inside = |p: &Path| p.starts_with(&s.dir);
    let mut stack = vec![s.dir.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| e.to_string())?;
                let leads = resolve(&path, &target);
                if !inside(&leads) {
                    return Err(format!(
                        "the restored copy's {} points at {}, outside the drill's scratch directory {}: {hint}",
                        path.display(),
                        leads.display(),
                        s.dir.display()
                    ));
                }
            } else if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    if let Some(text) = s.read(&s.data.join("tablespace_map"))? {
        for (oid, path) in parse_map(&text)? {
            let leads = normalize(&s.data.join(&path));
            if !inside(&leads) {
                return Err(format!(
                    "the restored copy's tablespace_map puts tablespace {oid} at {path}, outside the drill's \
                     scratch directory {}: {hint}",
                    s.dir.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_round_trips_paths_with_spaces_backslashes_and_newlines() {
        let odd = PathBuf::from("/srv/a b\\c\nd\re");
        let text = render_map(&[("16384".into(), odd.clone()), ("16385".into(), "/x".into())]);
        let parsed = parse_map(&text).unwrap();
        assert_eq!(parsed[0], ("16384".to_string(), odd.display().to_string()));
        assert_eq!(parsed[1], ("16385".to_string(), "/x".to_string()));
        assert!(parse_map("../1 /x\n").is_err());
        assert!(parse_map("16384\n").is_err());
    }

    #[test]
    fn links_are_resolved_lexically() {
        assert_eq!(
            resolve(
                Path::new("/s/data/pg_tblspc/1"),
                Path::new("../../tblspc/1")
            ),
            PathBuf::from("/s/tblspc/1")
        );
        assert_eq!(
            resolve(
                Path::new("/s/data/pg_tblspc/1"),
                Path::new("../../../../live")
            ),
            PathBuf::from("/live")
        );
        assert_eq!(
            resolve(Path::new("/s/data/pg_wal"), Path::new("/live/wal")),
            PathBuf::from("/live/wal")
        );
    }
}
