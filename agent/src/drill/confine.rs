//! Keeping a restored copy inside its scratch directory, checked on the
//! filesystem rather than on paths as text. A path is resolved component by
//! component, and a component that is a link is never followed: a `..`
//! after a link climbs from where the link points, not from where it sits,
//! so a check that resolves `..` lexically can be led out of the directory
//! (`conf.d/../../etc` with `conf.d` a link). So [`resolve`] refuses any
//! link on the way, and [`confine`] refuses a copy — whatever restored it
//! — that has a link leading outside (or through another link), a
//! `tablespace_map` entry outside, or a special file: a FIFO (a read of it
//! hangs until someone writes) or a device node (a read of it reads a disk,
//! a write writes one), which no data directory PostgreSQL made holds. A
//! file hard-linked to a file outside (`cp -al`, a backup made with hard
//! links: writing one writes the other) is named, and [`unshare`] gives it
//! data of its own — a copy, made as the copy's owner — before the server
//! starts.

use super::program::step;
use super::scratch::Scratch;
use super::tablespace::parse_map;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

/// Why a path does not stay inside the scratch directory.
#[derive(Debug, PartialEq)]
pub enum Escape {
    /// It leads to this path, outside.
    Outside(PathBuf),
    /// It passes through this link (never followed).
    Link(PathBuf),
}

impl std::fmt::Display for Escape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Escape::Outside(p) => write!(
                f,
                "leads to {}, outside the drill's scratch directory",
                p.display()
            ),
            Escape::Link(p) => write!(
                f,
                "passes through the link {} (the drill never follows one)",
                p.display()
            ),
        }
    }
}

/// Where `target` (absolute, or relative to the directory `from`) leads,
/// resolved on the filesystem one component at a time, below `root`:
/// `Ok` with a path inside `root` (which need not exist yet), or the
/// escape. `root`'s own ancestors are the operator's and trusted; below
/// `root` every existing component is checked with `lstat` and a link is
/// refused, the last component included.
pub fn resolve(root: &Path, from: &Path, target: &Path) -> Result<PathBuf, Escape> {
    let full = if target.is_absolute() {
        target.to_path_buf()
    } else {
        from.join(target)
    };
    let mut at = PathBuf::from("/");
    // Once a component is missing, what follows cannot be a link.
    let mut missing = false;
    for part in full.components() {
        match part {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                // Within root, the components walked are real directories
                // (links were refused), so `..` is their parent.
                if !at.starts_with(root) || at == root {
                    at.pop();
                    return Err(Escape::Outside(at));
                }
                at.pop();
            }
            Component::Normal(name) => {
                at.push(name);
                if !at.starts_with(root) {
                    if root.starts_with(&at) {
                        continue; // still on the way down to root
                    }
                    return Err(Escape::Outside(at));
                }
                if at == root || missing {
                    continue;
                }
                match std::fs::symlink_metadata(&at) {
                    Ok(meta) if meta.file_type().is_symlink() => return Err(Escape::Link(at)),
                    Ok(_) => {}
                    Err(_) => missing = true,
                }
            }
        }
    }
    if at.starts_with(root) {
        Ok(at)
    } else {
        Err(Escape::Outside(at))
    }
}

const HINT: &str = "the drill refuses to start a copy that could write there; restore tablespaces and \
                    links into the drill's directory ($WATCHPOST_DRILL_DIR), as copies, not links";

/// Refuse a copy that could write outside the scratch directory `s.dir`:
/// every link under it must lead inside it without passing through
/// another link, every `tablespace_map` entry too (read as PostgreSQL
/// `major` reads it). Returns the files with a hard link outside it
/// (every path inside), for [`unshare`]. Blocking: it walks the whole tree.
pub fn confine(s: &Scratch, major: u32) -> Result<Vec<PathBuf>, String> {
    use std::os::unix::fs::MetadataExt;
    let root = &s.dir;
    // (device, inode) -> (links it has, its paths inside).
    let mut linked: HashMap<(u64, u64), (u64, Vec<PathBuf>)> = HashMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let path = entry.path();
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(what) = special(&meta.file_type()) {
                return Err(format!(
                    "the restored copy's {} is {what}, which no data directory PostgreSQL made \
                     holds: the drill refuses to start a copy whose server would read it; remove \
                     it from the backup (or from what the drill's command restores)",
                    path.display()
                ));
            }
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| e.to_string())?;
                if let Err(why) = resolve(root, &dir, &target) {
                    return Err(format!(
                        "the restored copy's link {} -> {} {why}: {HINT}",
                        path.display(),
                        target.display()
                    ));
                }
            } else if meta.is_dir() {
                stack.push(path);
            } else if meta.nlink() > 1 {
                linked
                    .entry((meta.dev(), meta.ino()))
                    .or_insert((meta.nlink(), Vec::new()))
                    .1
                    .push(path);
            }
        }
    }
    let mut shared: Vec<PathBuf> = linked
        .into_values()
        .filter(|(links, paths)| (paths.len() as u64) < *links)
        .flat_map(|(_, paths)| paths)
        .collect();
    shared.sort();
    if let Some(text) = s.read(&s.data.join("tablespace_map"))? {
        for (oid, path) in parse_map(&text, major)? {
            if let Err(why) = resolve(root, &s.data, Path::new(&path)) {
                return Err(format!(
                    "the restored copy's tablespace_map puts tablespace {oid} at {path}, which {why}: {HINT}"
                ));
            }
        }
    }
    Ok(shared)
}

/// Give each file of `shared` (hard-linked to a file outside the scratch
/// directory) data of its own: copied, as the copy's owner, to a new file
/// renamed over it, so that nothing the copy writes reaches the file
/// outside (which is read, never written).
pub async fn unshare(s: &Scratch, shared: &[PathBuf], deadline: Instant) -> Result<(), String> {
    for path in shared {
        let file = path.display().to_string();
        let temp = format!("{file}.watchpost-unshared");
        let copy = ["cp", "--preserve=mode,timestamps", "--", &file, &temp];
        let rename = ["mv", "-f", "-T", "--", &temp, &file];
        for argv in [&copy[..], &rename[..]] {
            let argv = argv.iter().map(|a| a.to_string()).collect();
            step(argv, s.owner, &s.dir, &[], deadline).await.map_err(|e| {
                format!(
                    "the restored copy's file {file} shares its data with a file outside the drill's \
                     directory (a hard link) and could not be copied: {e}"
                )
            })?;
        }
    }
    Ok(())
}

/// What a special file is, named for an error (`None`: a regular file,
/// a directory or a link). A socket is left alone: opening one fails.
pub fn special(kind: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        Some("a FIFO (named pipe: a read of it hangs until something writes)")
    } else if kind.is_block_device() {
        Some("a block device node (a read of it reads a disk, a write writes one)")
    } else if kind.is_char_device() {
        Some("a character device node (a read or write of it goes to a device)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_resolve_inside_and_a_link_on_the_way_is_refused() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("drill-1");
        std::fs::create_dir_all(root.join("data/pg_tblspc")).unwrap();
        std::fs::create_dir_all(top.path().join("live/etc")).unwrap();
        let from = root.join("data/pg_tblspc");
        assert_eq!(
            resolve(&root, &from, Path::new("../../tblspc/1")),
            Ok(root.join("tblspc/1"))
        );
        assert_eq!(
            resolve(&root, &from, Path::new("../../../live")),
            Err(Escape::Outside(top.path().to_path_buf()))
        );
        assert_eq!(
            resolve(&root, &from, &top.path().join("live")),
            Err(Escape::Outside(top.path().join("live")))
        );
        assert_eq!(
            resolve(&root, &from, &root.join("tblspc/2")),
            Ok(root.join("tblspc/2"))
        );
        // `..` after a link: lexically inside, really in the live tree.
        symlink(top.path().join("live/etc"), root.join("data/conf.d")).unwrap();
        assert_eq!(
            resolve(&root, &root.join("data"), Path::new("conf.d/../x.conf")),
            Err(Escape::Link(root.join("data/conf.d")))
        );
        // A link as the last component is not followed either.
        assert_eq!(
            resolve(&root, &root.join("data"), Path::new("conf.d")),
            Err(Escape::Link(root.join("data/conf.d")))
        );
    }

    #[test]
    fn a_copy_with_a_hard_link_outside_or_a_link_out_is_refused() {
        let top = tempfile::tempdir().unwrap();
        let drills = top.path().join("drills");
        std::fs::create_dir(&drills).unwrap();
        let s = Scratch::create(&drills, "t", None, Path::new("/nonexistent")).unwrap();
        std::fs::create_dir_all(s.data.join("base")).unwrap();
        std::fs::write(s.data.join("base/1"), "x").unwrap();
        // Two links of one file, both inside: fine.
        std::fs::hard_link(s.data.join("base/1"), s.data.join("base/2")).unwrap();
        assert!(confine(&s, 15).unwrap().is_empty());
        // A third outside: both paths inside named.
        std::fs::hard_link(s.data.join("base/1"), top.path().join("outside")).unwrap();
        let shared = confine(&s, 15).unwrap();
        assert_eq!(shared, [s.data.join("base/1"), s.data.join("base/2")]);
        std::fs::remove_file(top.path().join("outside")).unwrap();
        assert!(confine(&s, 15).unwrap().is_empty());
        symlink(top.path(), s.data.join("pg_wal")).unwrap();
        let err = confine(&s, 15).unwrap_err();
        assert!(err.contains("pg_wal") && err.contains("outside"), "{err}");
        std::fs::remove_file(s.data.join("pg_wal")).unwrap();
        std::fs::write(s.data.join("tablespace_map"), "16384 /elsewhere\n").unwrap();
        let err = confine(&s, 15).unwrap_err();
        assert!(err.contains("tablespace 16384"), "{err}");
    }

    #[tokio::test]
    async fn a_file_hard_linked_outside_is_copied_and_the_outside_file_never_written() {
        let top = tempfile::tempdir().unwrap();
        let drills = top.path().join("drills");
        std::fs::create_dir(&drills).unwrap();
        let s = Scratch::create(&drills, "t", None, Path::new("/nonexistent")).unwrap();
        std::fs::create_dir_all(s.data.join("base")).unwrap();
        let outside = top.path().join("live-relation");
        std::fs::write(&outside, "live").unwrap();
        std::fs::hard_link(&outside, s.data.join("base/16384")).unwrap();
        let shared = confine(&s, 15).unwrap();
        assert_eq!(shared, [s.data.join("base/16384")]);
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        unshare(&s, &shared, deadline).await.unwrap();
        assert!(confine(&s, 15).unwrap().is_empty());
        // The copy's file is its own now: writing it leaves the live one.
        std::fs::write(s.data.join("base/16384"), "replayed").unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "live");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&outside).unwrap().nlink(), 1);
        drop(s);
    }

    #[test]
    fn a_copy_with_a_fifo_or_a_device_node_is_refused_naming_it() {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let top = tempfile::tempdir().unwrap();
        let drills = top.path().join("drills");
        std::fs::create_dir(&drills).unwrap();
        let s = Scratch::create(&drills, "t", None, Path::new("/nonexistent")).unwrap();
        std::fs::create_dir_all(s.data.join("base/1")).unwrap();
        std::fs::write(s.data.join("base/1/1259"), "x").unwrap();
        assert!(confine(&s, 15).unwrap().is_empty());
        // A relation file that is a FIFO: the walk does not open it (it
        // would hang), it refuses it by its type.
        let fifo = s.data.join("base/1/16384");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = confine(&s, 15).unwrap_err();
        assert!(
            err.contains(&fifo.display().to_string()) && err.contains("FIFO"),
            "{err}"
        );
        std::fs::remove_file(&fifo).unwrap();
        assert!(confine(&s, 15).unwrap().is_empty());
        // A device node (/dev/null's numbers): only root can make one.
        if rustix::process::geteuid().is_root() {
            let node = s.data.join("global/pg_control");
            std::fs::create_dir_all(node.parent().unwrap()).unwrap();
            let c = CString::new(node.as_os_str().as_bytes()).unwrap();
            // SAFETY: mknod on a NUL-terminated path we own.
            let made =
                unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
            assert_eq!(made, 0, "{}", std::io::Error::last_os_error());
            let err = confine(&s, 15).unwrap_err();
            assert!(
                err.contains(&node.display().to_string()) && err.contains("device node"),
                "{err}"
            );
        } else {
            eprintln!("not root: the device node case needs mknod as root");
        }
        let kinds: Vec<_> = [top.path().to_path_buf(), s.data.join("base/1/1259")]
            .iter()
            .map(|p| special(&std::fs::symlink_metadata(p).unwrap().file_type()))
            .collect();
        assert_eq!(kinds, [None, None]);
    }
}
