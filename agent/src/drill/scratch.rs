//! The drill's scratch directory under `state_dir/drills/`, the programs
//! it runs as the backup's owner, and its teardown: whatever happens —
//! success, a failed check, an error, the run's deadline dropping the
//! drill's future — the restored server is stopped (at once:
//! [`StopMode::Immediate`]) and the directory removed, off the async runtime (a tree of
//! many gigabytes takes a while): [`Scratch::close`] when the drill ends,
//! `Drop` when its future is dropped. Leftovers of a drill the agent did
//! not see through (a `kill -9`) are swept the same way before the next
//! one, and when the drill is loaded.

use crate::pgserver::ctl::{PgCtl, StopMode};
use crate::safefs::OwnedDir;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The scratch directories of drills running in this process: a sweep
/// (at a reload, or before another drill) leaves them alone.
/// (`parking_lot`'s lock: no poisoning to work around.)
static ACTIVE: parking_lot::Mutex<Vec<PathBuf>> = parking_lot::const_mutex(Vec::new());

fn active(dir: &Path) -> bool {
    ACTIVE.lock().iter().any(|d| d == dir)
}

fn set_active(dir: &Path, on: bool) {
    let mut a = ACTIVE.lock();
    a.retain(|d| d != dir);
    if on {
        a.push(dir.to_path_buf());
    }
}

/// uid/gid to run programs as (`None`: as the agent itself).
pub type Owner = Option<(u32, u32)>;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Who the restored server runs as: the owner of `path` when the agent is
/// root (never root itself), else the agent's own user.
pub fn owner_of(path: &Path) -> Result<Owner, String> {
    use std::os::unix::fs::MetadataExt;
    if !is_root() {
        return Ok(None);
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.uid() == 0 {
        return Err(format!(
            "{} is owned by root, and PostgreSQL cannot run as root: chown it to the database's OS user \
             (the drill runs the restored server as that owner)",
            path.display()
        ));
    }
    Ok(Some((meta.uid(), meta.gid())))
}

/// [`free_bytes`] on a blocking thread (`statvfs` can hang on a network
/// filesystem; the runtime's threads must not).
pub async fn free_bytes_async(path: &Path) -> Result<u64, String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || free_bytes(&path))
        .await
        .map_err(|e| format!("statvfs: {e}"))?
}

/// [`tree_size`] on a blocking thread (a restored tree has many files).
pub async fn tree_size_async(path: &Path) -> u64 {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || tree_size(&path))
        .await
        .unwrap_or(0)
}

/// Bytes free for unprivileged users on the filesystem of `path`.
/// Blocking.
pub fn free_bytes(path: &Path) -> Result<u64, String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a
    // valid NUL-terminated string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return Err(format!(
            "statvfs {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Bytes of the regular files under `path` (links not followed).
pub fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

/// A drill's scratch directory; dropping it tears everything down.
pub struct Scratch {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub owner: Owner,
    /// Stops the copy at the teardown.
    ctl: PgCtl,
    /// Set once torn down by [`Scratch::close`].
    closed: bool,
}

/// `state_dir/drills`, made when missing (traversable, not listable, by
/// the owner the servers run as).
pub fn drills_dir(state_dir: &Path) -> Result<PathBuf, String> {
    let dir = state_dir.join("drills");
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    Ok(dir)
}

impl Scratch {
    /// A fresh `drills/NAME-UNIXMS` directory owned by `owner`.
    pub fn create(
        drills: &Path,
        name: &str,
        owner: Owner,
        bin_dir: &Path,
    ) -> Result<Scratch, String> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let leaf = format!("{name}-{stamp}");
        let dir = drills.join(&leaf);
        // Made and handed over by descriptor, never through a link.
        let parent = OwnedDir::open(drills).map_err(|e| e.to_string())?;
        if parent.exists(&leaf).map_err(|e| e.to_string())? {
            return Err(format!("cannot create {}: it exists", dir.display()));
        }
        let parent = match owner {
            Some(owner) => parent.expecting(owner),
            None => parent,
        };
        set_active(&dir, true);
        if let Err(e) = parent.subdir(&leaf, true) {
            set_active(&dir, false);
            return Err(format!("cannot create {}: {e}", dir.display()));
        }
        Ok(Scratch {
            data: dir.join("data"),
            dir,
            owner,
            ctl: PgCtl::in_bin_dir(bin_dir),
            closed: false,
        })
    }

    /// The directory holding `path` (below the scratch directory), opened
    /// from the scratch directory one component at a time, a link refused
    /// at every step (the copy's owner could have planted one anywhere in
    /// the restored tree), its entries expected to be the owner's; and the
    /// file name.
    fn parent_of<'a>(&self, path: &'a Path) -> Result<(OwnedDir, &'a str), String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: not a file name", path.display()))?;
        let below = path
            .parent()
            .and_then(|p| p.strip_prefix(&self.dir).ok())
            .ok_or_else(|| {
                format!(
                    "{}: outside the drill's scratch directory {}",
                    path.display(),
                    self.dir.display()
                )
            })?;
        let mut dir = OwnedDir::open(&self.dir).map_err(|e| e.to_string())?;
        if let Some(owner) = self.owner {
            dir = dir.expecting(owner);
        }
        for part in below.components() {
            let std::path::Component::Normal(step) = part else {
                return Err(format!("{}: not a plain path", path.display()));
            };
            let step = step
                .to_str()
                .ok_or_else(|| format!("{}: not UTF-8", path.display()))?;
            dir = dir.subdir(step, false).map_err(|e| e.to_string())?;
        }
        Ok((dir, name))
    }

    /// The same directory, for work on another thread; dropping it tears
    /// nothing down (this one still does).
    pub fn view(&self) -> Scratch {
        Scratch {
            dir: self.dir.clone(),
            data: self.data.clone(),
            owner: self.owner,
            ctl: self.ctl.clone(),
            closed: true,
        }
    }

    /// Make directory `path` (0700, the owner's), never through a link.
    pub fn make_dir(&self, path: &Path) -> Result<(), String> {
        let (dir, name) = self.parent_of(path)?;
        if dir.exists(name).map_err(|e| e.to_string())? {
            return Err(format!("cannot create {}: it exists", path.display()));
        }
        dir.subdir(name, true)
            .map(|_| ())
            .map_err(|e| format!("cannot create {}: {e}", path.display()))
    }

    /// Create file `path` (which must not exist: a planted link fails)
    /// with `text`, owned by the owner.
    pub fn write_new(&self, path: &Path, text: &str) -> Result<(), String> {
        let (dir, name) = self.parent_of(path)?;
        if dir.exists(name).map_err(|e| e.to_string())? {
            return Err(format!("cannot create {}: it exists", path.display()));
        }
        dir.replace(name, text.as_bytes(), 0o600)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))
    }

    /// The text of `path` (at most 16 MiB), `None` when missing; never
    /// through a symlink.
    pub fn read(&self, path: &Path) -> Result<Option<String>, String> {
        let (dir, name) = self.parent_of(path)?;
        let bytes = dir.read(name, 16 << 20).map_err(|e| e.to_string())?;
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// The entry names of directory `path`, listed from a descriptor
    /// reached from the scratch directory without following a link.
    pub fn list(&self, path: &Path) -> Result<Vec<String>, String> {
        let (dir, name) = self.parent_of(path)?;
        let dir = dir.subdir(name, false).map_err(|e| e.to_string())?;
        dir.names().map_err(|e| e.to_string())
    }

    /// Remove the file or link `path` (never what a link points at),
    /// reached without following a link.
    pub fn remove(&self, path: &Path) -> Result<(), String> {
        let (dir, name) = self.parent_of(path)?;
        dir.remove_file(name).map_err(|e| e.to_string())
    }

    /// Replace `path` with `text` (a new file renamed over it, the
    /// owner's), never through a symlink.
    pub fn replace(&self, path: &Path, text: &str) -> Result<(), String> {
        let (dir, name) = self.parent_of(path)?;
        dir.replace(name, text.as_bytes(), 0o600)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// Stop a server left running in `data` and remove `dir` — only once the
/// server is known to be gone: a running server, or one whose state
/// cannot be told, keeps its directory (removing files under a live
/// postmaster is not a teardown); the next drill's sweep tries again.
fn tear_down(dir: &Path, data: &Path, ctl: &PgCtl, owner: Owner) {
    use crate::pgserver::postmaster;
    if !postmaster::probe(data).state.stopped() {
        let argv = ctl.stop(data, StopMode::Immediate, Some(30));
        let mut stop = std::process::Command::new(&argv[0]);
        stop.args(&argv[1..])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = owner {
            use std::os::unix::process::CommandExt;
            stop.uid(uid).gid(gid);
        }
        if let Err(e) = stop.status() {
            tracing::warn!("drill: cannot stop the server in {}: {e}", data.display());
        }
        let state = postmaster::probe(data).state;
        if !state.stopped() {
            tracing::warn!(
                "drill: the server in {} is not known to be stopped ({state:?}); its directory is \
                 kept until it is (the next drill tries again)",
                data.display()
            );
            return;
        }
    }
    // remove_dir_all does not follow symlinks.
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("drill: cannot remove {}: {e}", dir.display());
    }
}

/// [`tear_down`] of a drill of this process, which then stops counting as
/// running.
fn tear_down_own(dir: &Path, data: &Path, ctl: &PgCtl, owner: Owner) {
    tear_down(dir, data, ctl, owner);
    set_active(dir, false);
}

impl Scratch {
    /// Stop the copy and remove the directory, on a blocking thread.
    pub async fn close(mut self) {
        self.closed = true;
        let (dir, data, ctl, owner) = (
            self.dir.clone(),
            self.data.clone(),
            self.ctl.clone(),
            self.owner,
        );
        let done =
            tokio::task::spawn_blocking(move || tear_down_own(&dir, &data, &ctl, owner)).await;
        if let Err(e) = done {
            tracing::warn!("drill: teardown of {} failed: {e}", self.dir.display());
        }
    }
}

impl Drop for Scratch {
    /// The drill's future was dropped (its deadline, the agent stopping):
    /// tear down on a blocking thread when there is a runtime (the runtime
    /// waits for it when it shuts down), else here.
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let (dir, data, ctl, owner) = (
            self.dir.clone(),
            self.data.clone(),
            self.ctl.clone(),
            self.owner,
        );
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || tear_down_own(&dir, &data, &ctl, owner));
            }
            Err(_) => tear_down_own(&dir, &data, &ctl, owner),
        }
    }
}

/// [`sweep`] on a blocking thread.
pub async fn sweep_async(drills: &Path, name: &str, bin_dir: &Path) {
    let (drills, name, bin_dir) = (
        drills.to_path_buf(),
        name.to_string(),
        bin_dir.to_path_buf(),
    );
    let _ = tokio::task::spawn_blocking(move || sweep(&drills, &name, &bin_dir)).await;
}

/// Tear down what earlier drills named `name` left behind (a drill of
/// this process still running is left alone). Blocking: call it off the
/// async runtime ([`sweep_async`]).
pub fn sweep(drills: &Path, name: &str, bin_dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(drills) else {
        return;
    };
    let prefix = format!("{name}-");
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let is_ours = file_name
            .strip_prefix(&prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()));
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !is_ours || !meta.is_dir() || active(&entry.path()) {
            continue;
        }
        let owner = (is_root() && meta.uid() != 0).then(|| (meta.uid(), meta.gid()));
        tracing::warn!(
            "drill {name}: removing the leftovers of an interrupted drill in {}",
            entry.path().display()
        );
        tear_down(
            &entry.path(),
            &entry.path().join("data"),
            &PgCtl::in_bin_dir(bin_dir),
            owner,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_reached_from_the_scratch_directory_never_through_a_link() {
        let top = tempfile::tempdir().unwrap();
        let drills = top.path().join("drills");
        std::fs::create_dir(&drills).unwrap();
        let outside = top.path().join("live");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("x.conf"), "secret").unwrap();
        let s = Scratch::create(&drills, "t", None, Path::new("/nonexistent")).unwrap();
        std::fs::create_dir_all(s.data.join("conf")).unwrap();
        std::fs::write(s.data.join("conf/y.conf"), "mine").unwrap();
        assert_eq!(
            s.read(&s.data.join("conf/y.conf")).unwrap().as_deref(),
            Some("mine")
        );
        // A link in the middle of the path: refused, not followed.
        std::os::unix::fs::symlink(&outside, s.data.join("linked")).unwrap();
        assert!(s.read(&s.data.join("linked/x.conf")).is_err());
        assert!(
            s.replace(&s.data.join("linked/x.conf"), "overwritten")
                .is_err()
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("x.conf")).unwrap(),
            "secret"
        );
        // A path outside the scratch directory, or climbing out of it.
        assert!(s.read(&outside.join("x.conf")).is_err());
        assert!(s.read(&s.data.join("../../live/x.conf")).is_err());
        drop(s);
    }
}
