//! The drill's scratch directory under `state_dir/drills/`, the programs
//! it runs as the backup's owner, and its teardown: whatever happens —
//! success, a failed check, an error, the run's deadline dropping the
//! drill's future — [`Scratch`]'s `Drop` stops the restored server
//! (`pg_ctl stop -m immediate`) and removes the directory. Leftovers of a
//! drill the agent did not see through (a `kill -9`) are swept the same
//! way before the next one, and when the drill is loaded.

use crate::safefs::OwnedDir;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

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

/// Bytes free for unprivileged users on the filesystem of `path`.
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

/// A program's outcome: success, and the last lines of its output.
pub struct Ran {
    pub ok: bool,
    pub output: String,
}

impl Ran {
    /// The last non-empty output line, for messages.
    pub fn last_line(&self) -> &str {
        self.output
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
    }
}

/// Run `argv` as `owner` in `cwd`, within `timeout` (killed after it).
pub async fn run(
    argv: &[String],
    owner: Owner,
    cwd: &Path,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Ran, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(format!("{program} did not finish within {timeout:?}")),
        Ok(Err(e)) => Err(format!("{program}: {e}")),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let keep = text.len().saturating_sub(8192);
            let keep = (keep..text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            Ok(Ran {
                ok: out.status.success(),
                output: text[keep..].to_string(),
            })
        }
    }
}

/// A drill's scratch directory; dropping it tears everything down.
pub struct Scratch {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub owner: Owner,
    pg_ctl: PathBuf,
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
        parent
            .subdir(&leaf, true)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Scratch {
            data: dir.join("data"),
            dir,
            owner,
            pg_ctl: bin_dir.join("pg_ctl"),
        })
    }

    /// The directory holding `path`, opened without following a link,
    /// its entries expected to be the owner's; and the file name.
    fn parent_of<'a>(&self, path: &'a Path) -> Result<(OwnedDir, &'a str), String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: not a file name", path.display()))?;
        let dir =
            OwnedDir::open(path.parent().unwrap_or(Path::new("."))).map_err(|e| e.to_string())?;
        Ok(match self.owner {
            Some(owner) => (dir.expecting(owner), name),
            None => (dir, name),
        })
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

    /// Append `text` to `path`, creating it when missing; never through a
    /// symlink (the file is rewritten under a new name and renamed over).
    pub fn append(&self, path: &Path, text: &str) -> Result<(), String> {
        let (dir, name) = self.parent_of(path)?;
        let mut bytes = dir
            .read(name, 16 << 20)
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        bytes.extend_from_slice(text.as_bytes());
        dir.replace(name, &bytes, 0o600)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// Stop a server left running in `data` and remove `dir`.
fn tear_down(dir: &Path, data: &Path, pg_ctl: &Path, owner: Owner) {
    // Unless known stopped (a pid file that cannot be read is not "no
    // server"), stop it before the directory goes.
    if !crate::remediate::postmaster::probe(data).state.stopped() {
        let mut stop = std::process::Command::new(pg_ctl);
        stop.arg("stop")
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "-w", "-t", "30"])
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
    }
    // remove_dir_all does not follow symlinks.
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("drill: cannot remove {}: {e}", dir.display());
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        tear_down(&self.dir, &self.data, &self.pg_ctl, self.owner);
    }
}

/// Tear down what earlier drills named `name` left behind.
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
        if !is_ours || !meta.is_dir() {
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
            &bin_dir.join("pg_ctl"),
            owner,
        );
    }
}
