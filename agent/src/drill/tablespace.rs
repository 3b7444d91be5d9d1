//! Tablespaces (and any other link) of a restored copy, kept inside the
//! scratch directory. A backup names its tablespaces by where they lived:
//! a tar backup's `tablespace_map` holds the *live* paths (PostgreSQL
//! rebuilds `pg_tblspc/OID` from it at start), a plain backup's
//! `pg_tblspc/OID` links point at the backup's own tablespace copy. A
//! copy started as restored would replay WAL into those directories and
//! so corrupt production or the backup. Here each tablespace is restored
//! into `SCRATCH/tblspc/OID` and every reference rewritten to it; then
//! `confine` refuses any copy (whatever restored it) that still has a
//! link or a map entry leading outside the scratch directory.

use super::program::step;
use super::scratch::Scratch;
use std::path::{Path, PathBuf};
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

/// The entries (OID, path) of a `tablespace_map`, unescaped as PostgreSQL
/// `major` reads it: from 14 on, `\` escapes any character; up to 13, only
/// a line end (`\` before anything else is a `\` of the path). An OID that
/// is not all digits is an error.
pub fn parse_map(text: &str, major: u32) -> Result<Vec<(String, String)>, String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    if major <= 13 {
        // PostgreSQL 13's reader, character for character.
        let mut prev = '\0';
        for c in text.chars() {
            let end = c == '\n' || c == '\r';
            if end && prev == '\\' {
                line.pop();
                line.push(c);
            } else if end {
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
            } else {
                line.push(c);
            }
            prev = c;
        }
    } else {
        let mut escaped = false;
        for c in text.chars() {
            if !escaped && (c == '\n' || c == '\r') {
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
            } else if !escaped && c == '\\' {
                escaped = true;
                continue;
            } else {
                line.push(c);
            }
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

/// A `tablespace_map` with `entries` (OID, path), readable alike by every
/// PostgreSQL version: a path with a backslash, LF or CR (which versions
/// read differently) is refused, naming it.
pub fn render_map(entries: &[(String, PathBuf)]) -> Result<String, String> {
    entries
        .iter()
        .map(|(oid, path)| {
            let text = path.display().to_string();
            if text.contains(['\\', '\n', '\r']) {
                return Err(format!(
                    "the tablespace path {text:?} has a backslash or a line break, which PostgreSQL \
                     versions read differently in tablespace_map; use a plainer `state_dir`"
                ));
            }
            Ok(format!("{oid} {}\n", escape(&text)))
        })
        .collect()
}

/// A tar backup: unpack each tablespace named by the restored
/// `tablespace_map` from `backup/OID{ext}` (ext as `base{ext}`) into
/// `SCRATCH/tblspc/OID` and point the map there. Returns how many.
pub async fn unpack_tar(
    s: &Scratch,
    backup: &Path,
    ext: &str,
    major: u32,
    deadline: Instant,
) -> Result<usize, String> {
    let map = s.data.join("tablespace_map");
    let Some(text) = s.read(&map)? else {
        return Ok(0);
    };
    let entries = parse_map(&text, major)?;
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
        super::archive::unpack(s, &tar, &dest, deadline).await?;
        remapped.push((oid, dest));
    }
    s.replace(&map, &render_map(&remapped)?)?;
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

/// The WAL directories a backup may have as a link (`--waldir`).
const WAL_DIRS: [&str; 2] = ["pg_wal", "pg_xlog"];

/// A plain backup copied into `s.data` (`cp -a`, links as links): each
/// `pg_tblspc/OID` link's target is copied to `SCRATCH/tblspc/OID` and the
/// link pointed there; a `pg_wal` link (from `--waldir`) is replaced by a
/// copy of what it points at. No other link is followed: one left in the
/// copy is refused by [`super::confine::confine`]. The backup's links
/// are read, never followed for a write.
pub async fn copy_plain(
    s: &Scratch,
    backup: &Path,
    major: u32,
    deadline: Instant,
) -> Result<usize, String> {
    let link_target = |link: &Path, original: &Path| -> Result<Option<PathBuf>, String> {
        let meta =
            std::fs::symlink_metadata(link).map_err(|e| format!("{}: {e}", link.display()))?;
        if !meta.file_type().is_symlink() {
            return Ok(None);
        }
        let target = std::fs::read_link(link).map_err(|e| format!("{}: {e}", link.display()))?;
        // Read in the backup (the source of a copy), as the kernel does.
        let target = original.parent().unwrap_or(Path::new("/")).join(target);
        if !std::fs::metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Err(format!(
                "{} in the backup points at {}, which is not a directory: the backup is incomplete",
                original.display(),
                target.display()
            ));
        }
        Ok(Some(target))
    };
    for name in WAL_DIRS {
        let link = s.data.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            continue;
        }
        if let Some(target) = link_target(&link, &backup.join(name))? {
            let path = link.display().to_string();
            owner_step(s, &["rm", "-f", "--", &path], deadline).await?;
            copy_target(s, &target, &link, deadline).await?;
        }
    }
    let links = s.data.join("pg_tblspc");
    if std::fs::symlink_metadata(&links).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(format!(
            "{} in the backup is a link: the backup is not a data directory PostgreSQL made",
            backup.join("pg_tblspc").display()
        ));
    }
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
        let entries = parse_map(&text, major)?
            .into_iter()
            .map(|(oid, path)| {
                let moved = remapped.iter().find(|(o, _)| *o == oid);
                (
                    oid,
                    moved.map_or_else(|| PathBuf::from(path), |(_, d)| d.clone()),
                )
            })
            .collect::<Vec<_>>();
        s.replace(&map, &render_map(&entries)?)?;
    }
    Ok(remapped.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_round_trips_paths_with_spaces_backslashes_and_newlines() {
        let odd = PathBuf::from("/srv/a b\\c\nd\re");
        let text = format!("16384 {}\n16385 /x\n", escape(&odd.display().to_string()));
        let parsed = parse_map(&text, 15).unwrap();
        assert_eq!(parsed[0], ("16384".to_string(), odd.display().to_string()));
        assert_eq!(parsed[1], ("16385".to_string(), "/x".to_string()));
        assert!(parse_map("../1 /x\n", 15).is_err());
        assert!(parse_map("16384\n", 15).is_err());
        // Our own paths are plain, so every version reads them alike.
        assert!(render_map(&[("1".into(), odd)]).is_err());
        assert_eq!(
            render_map(&[("1".into(), "/s/tblspc/1".into())]).unwrap(),
            "1 /s/tblspc/1\n"
        );
    }

    #[test]
    fn up_to_13_a_backslash_escapes_only_a_line_end() {
        // PostgreSQL 13 reads `\\` as two backslashes, `\` LF as LF.
        let text = "16384 /srv/a\\\\b\\\nc\n";
        assert_eq!(parse_map(text, 13).unwrap()[0].1, "/srv/a\\\\b\nc");
        assert_eq!(parse_map("1 /a\\\\\n", 13).unwrap()[0].1, "/a\\\n");
        assert_eq!(parse_map(text, 14).unwrap()[0].1, "/srv/a\\b\nc");
    }
}
