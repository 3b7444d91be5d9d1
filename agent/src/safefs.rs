//! File work, as root, in a directory another user owns (a PostgreSQL data
//! directory, a socket directory named by `postmaster.pid`): that user can
//! plant a symlink or a hard link at any name the agent is about to use,
//! or swap the directory itself, and a root that follows it writes,
//! truncates or chowns any file of the system.
//!
//! So the directory is opened once (`O_DIRECTORY | O_NOFOLLOW`) and every
//! entry is reached relative to that descriptor (`openat`, `mkdirat`,
//! `renameat`) with `O_NOFOLLOW`; new files are made with `O_EXCL` under
//! random temporary names and renamed into place; ownership is handed over
//! with `fchown` on the open descriptor, never by path. An entry that is a
//! symlink, a file with more than one link, or a file the directory's
//! owner does not own is refused with an error naming its path, never
//! followed.

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// uid and gid.
pub type Owner = (u32, u32);

/// True when the agent runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Refuse a directory of the agent's own (`state_dir`, its `cache`) that
/// someone else could write into: a symlink, one owned by a user other than
/// the agent's or root, or
/// one writable by group or others. The error names the path and the fix.
pub fn check_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| os_error(path, e))?;
    if meta.file_type().is_symlink() {
        return Err(error(
            io::ErrorKind::InvalidInput,
            path,
            "is a symbolic link; point the agent at the real directory",
        ));
    }
    if !meta.is_dir() {
        return Err(error(
            io::ErrorKind::InvalidInput,
            path,
            "is not a directory",
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    // Root's directories are trusted too (root can do anything anyway):
    // `watchpost validate` run as root makes the cache of a service that
    // runs as its own user.
    if meta.uid() != me && meta.uid() != 0 && me == 0 {
        // Root on another user's directory (the packaged service's): root's
        // files there would be unusable to that user, and chown to root
        // would break the service.
        return Err(error(
            io::ErrorKind::PermissionDenied,
            path,
            format!(
                "belongs to uid {}, and this run is root's: run as that user (`sudo -u USER watchpost ...`) or give this run another `state_dir` (or WATCHPOST_STATE_DIR)",
                meta.uid()
            ),
        ));
    }
    if meta.uid() != me && meta.uid() != 0 {
        return Err(error(
            io::ErrorKind::PermissionDenied,
            path,
            format!(
                "is owned by uid {}, not by the agent's user (uid {me}): its owner could plant files the agent trusts (state, compiled probes it loads as native code); `chown {me} {}` or choose another `state_dir`",
                meta.uid(),
                path.display()
            ),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(error(
            io::ErrorKind::PermissionDenied,
            path,
            format!(
                "is writable by group or others (mode {:04o}): another user could plant files the agent trusts (state, compiled probes it loads as native code); `chmod go-w {}` (0700 is best)",
                meta.mode() & 0o7777,
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Refuse the directory holding one of the agent's own (its `cache` in
/// `state_dir`): someone who may rename entries there could swap the
/// directory. It must be the agent user's or root's, and writable by group
/// or others only if sticky (`/tmp`: there only an entry's owner may
/// rename it).
pub fn check_parent_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| os_error(path, e))?;
    let me = rustix::process::geteuid().as_raw();
    let sticky = meta.mode() & 0o1000 != 0;
    if (meta.uid() != me && meta.uid() != 0) || (meta.mode() & 0o022 != 0 && !sticky) {
        return Err(error(
            io::ErrorKind::PermissionDenied,
            path,
            format!(
                "(uid {}, mode {:04o}) lets another user replace the directories in it: \
                 `chmod go-w {}` or choose another `state_dir`",
                meta.uid(),
                meta.mode() & 0o7777,
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Create directory `path` and its missing parents with mode 0700.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| os_error(path, e))
}

/// An open directory and its owner.
#[derive(Debug)]
pub struct OwnedDir {
    fd: OwnedFd,
    path: PathBuf,
    owner: Owner,
}

fn error(kind: io::ErrorKind, path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(kind, format!("{}: {what}", path.display()))
}

/// An error the operating system gave for `path`, its errno kept (the
/// message is `PATH: ERROR`), so that [`denied_by_the_system`] can tell
/// it from the agent's own refusals, which share its kinds.
fn os_error(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        AtPath {
            path: path.to_path_buf(),
            os: e,
        },
    )
}

/// An operating system error at a path ([`os_error`]).
#[derive(Debug)]
struct AtPath {
    path: PathBuf,
    os: io::Error,
}

impl std::fmt::Display for AtPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.os)
    }
}

impl std::error::Error for AtPath {}

/// Whether `e` is the system's "permission denied" (`EACCES` or `EPERM`):
/// this user may not read or open it. Never one of this module's
/// refusals (a file someone else owns, a link), which share
/// [`io::ErrorKind::PermissionDenied`] but are faults of the file.
pub fn denied_by_the_system(e: &io::Error) -> bool {
    let os = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<AtPath>())
        .map_or(e, |at| &at.os);
    matches!(os.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

fn symlink_refused(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a symbolic link: refusing to follow it as root (it could point at any file of the system); \
             remove the link (the agent makes the real entry itself)",
            path.display()
        ),
    )
}

fn at_error(path: &Path, e: rustix::io::Errno) -> io::Error {
    if e == rustix::io::Errno::LOOP {
        return symlink_refused(path);
    }
    os_error(path, io::Error::from(e))
}

fn random_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A plain name of an entry (no `/`, not `.` or `..`).
fn check_name(dir: &Path, name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(error(
            io::ErrorKind::InvalidInput,
            dir,
            format!("{name:?} is not a plain file name"),
        ));
    }
    Ok(())
}

impl OwnedDir {
    /// Open directory `path`, refusing a symlink in its place (the
    /// components above it are the operator's configuration and are
    /// resolved as usual).
    pub fn open(path: &Path) -> io::Result<OwnedDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
                match std::fs::symlink_metadata(path) {
                    Ok(meta) if meta.file_type().is_symlink() => return symlink_refused(path),
                    _ => {}
                }
            }
            at_error(path, e)
        })?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| at_error(path, e))?;
        Ok(OwnedDir {
            fd,
            path: path.to_path_buf(),
            owner: (stat.st_uid, stat.st_gid),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same directory, its entries expected to belong to `owner`
    /// rather than to the directory's owner (a shared socket directory
    /// such as `/tmp`, where the files of interest are the database
    /// user's).
    pub fn expecting(mut self, owner: Owner) -> OwnedDir {
        self.owner = owner;
        self
    }

    /// The directory's owner (uid, gid).
    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// Who programs working in the directory run as: its owner when the
    /// agent is root and the owner is not, else `None` (the agent itself).
    pub fn run_as(&self) -> Option<Owner> {
        (is_root() && self.owner.0 != 0).then_some(self.owner)
    }

    /// The path of entry `name`, for messages.
    pub fn entry(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The type of entry `name` (not following a symlink), `None` when
    /// there is none.
    pub fn kind(&self, name: &str) -> io::Result<Option<FileType>> {
        check_name(&self.path, name)?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(at_error(&self.entry(name), e)),
        }
    }

    /// Whether entry `name` exists (as anything, a symlink included).
    pub fn exists(&self, name: &str) -> io::Result<bool> {
        Ok(self.kind(name)?.is_some())
    }

    /// Refuse `name` when it is a symlink.
    fn refuse_symlink(&self, name: &str) -> io::Result<Option<FileType>> {
        let kind = self.kind(name)?;
        if kind == Some(FileType::Symlink) {
            return Err(symlink_refused(&self.entry(name)));
        }
        Ok(kind)
    }

    /// Files the agent touches must be the directory owner's own (or, when
    /// the agent is not root, its own), with a single link.
    fn check_file(&self, name: &str, fd: &OwnedFd) -> io::Result<()> {
        let path = self.entry(name);
        let stat = rustix::fs::fstat(fd).map_err(|e| at_error(&path, e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(error(
                io::ErrorKind::InvalidInput,
                &path,
                "not a regular file; refusing to use it",
            ));
        }
        if stat.st_nlink != 1 {
            return Err(error(
                io::ErrorKind::InvalidInput,
                &path,
                format!(
                    "has {} hard links (a link to a file elsewhere?); refusing to use it: replace it with a file of its own",
                    stat.st_nlink
                ),
            ));
        }
        let me = rustix::process::geteuid().as_raw();
        if stat.st_uid != self.owner.0 && stat.st_uid != me {
            return Err(error(
                io::ErrorKind::PermissionDenied,
                &path,
                format!(
                    "is owned by uid {}, not by the directory's owner (uid {}); refusing to use it",
                    stat.st_uid, self.owner.0
                ),
            ));
        }
        Ok(())
    }

    /// Hand a descriptor the agent made over to the directory's owner.
    fn hand_over(&self, path: &Path, fd: &OwnedFd) -> io::Result<()> {
        if let Some((uid, gid)) = self.run_as() {
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| at_error(path, e))?;
        }
        Ok(())
    }

    /// Read file `name` (at most `max` bytes); `None` when it does not
    /// exist. A symlink, a hard-linked file or someone else's file is
    /// refused.
    pub fn read(&self, name: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        let path = self.entry(name);
        if self.refuse_symlink(name)?.is_none() {
            return Ok(None);
        }
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(at_error(&path, e)),
        };
        self.check_file(name, &fd)?;
        let mut bytes = Vec::new();
        File::from(fd)
            .take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| os_error(&path, e))?;
        if bytes.len() as u64 > max {
            return Err(error(
                io::ErrorKind::InvalidData,
                &path,
                format!("larger than {max} bytes; refusing to read it"),
            ));
        }
        Ok(Some(bytes))
    }

    /// Make sure a regular file `name` exists (created empty with `mode`,
    /// owned by the directory's owner, when missing). A symlink or anything
    /// but a regular file there is refused.
    pub fn ensure_file(&self, name: &str, mode: u32) -> io::Result<()> {
        let path = self.entry(name);
        match self.refuse_symlink(name)? {
            Some(FileType::RegularFile) => return Ok(()),
            Some(_) => {
                return Err(error(
                    io::ErrorKind::InvalidInput,
                    &path,
                    "exists but is not a regular file; refusing to use it",
                ));
            }
            None => {}
        }
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| at_error(&path, e))?;
        self.hand_over(&path, &fd)?;
        rustix::fs::fsync(&fd).map_err(|e| at_error(&path, e))?;
        self.sync()
    }

    /// Replace file `name` with `bytes` (mode `mode`, owned by the
    /// directory's owner), crash-safely: a new file under a random name
    /// (`O_EXCL`), fsynced, renamed over `name`. A symlink at `name` is
    /// refused, not replaced.
    pub fn replace(&self, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        let path = self.entry(name);
        self.refuse_symlink(name)?;
        let temp = format!(".{name}.watchpost-{}", random_suffix());
        let fd = rustix::fs::openat(
            &self.fd,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| at_error(&self.entry(&temp), e))?;
        let result = (|| {
            self.hand_over(&path, &fd)?;
            // The mode asked for, whatever the umask.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| at_error(&path, e))?;
            let mut file = File::from(fd);
            file.write_all(bytes).map_err(|e| os_error(&path, e))?;
            file.sync_all().map_err(|e| os_error(&path, e))?;
            rustix::fs::renameat(&self.fd, temp.as_str(), &self.fd, name)
                .map_err(|e| at_error(&path, e))?;
            self.sync()
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, temp.as_str(), AtFlags::empty());
        }
        result
    }

    /// Open (creating it with mode 0700, owned by the directory's owner,
    /// when missing) subdirectory `name`. A symlink there is refused; an
    /// existing directory must belong to this directory's owner.
    pub fn subdir(&self, name: &str, create: bool) -> io::Result<OwnedDir> {
        let path = self.entry(name);
        let made = match self.refuse_symlink(name)? {
            None if create => {
                match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(at_error(&path, e)),
                }
                true
            }
            _ => false,
        };
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| at_error(&path, e))?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| at_error(&path, e))?;
        let me = rustix::process::geteuid().as_raw();
        if made && stat.st_uid == me {
            self.hand_over(&path, &fd)?;
        } else if stat.st_uid != self.owner.0 && stat.st_uid != me {
            return Err(error(
                io::ErrorKind::PermissionDenied,
                &path,
                format!(
                    "is owned by uid {}, not by the owner of {} (uid {}); refusing to use it",
                    stat.st_uid,
                    self.path.display(),
                    self.owner.0
                ),
            ));
        }
        Ok(OwnedDir {
            fd,
            path,
            owner: self.owner,
        })
    }

    /// Rename entry `from` to `to` within the directory (a symlink is
    /// renamed as itself, never followed); `to` must not exist.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(&self.path, from)?;
        check_name(&self.path, to)?;
        rustix::fs::renameat_with(
            &self.fd,
            from,
            &self.fd,
            to,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| at_error(&self.entry(from), e))
    }

    /// Remove entry `name` (a file or a link, never what a link points
    /// at); a missing entry is fine.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        check_name(&self.path, name)?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(at_error(&self.entry(name), e)),
        }
    }

    /// The names of the directory's entries (`.` and `..` left out), read
    /// from its open descriptor; a name that is not UTF-8 comes lossily.
    pub fn names(&self) -> io::Result<Vec<String>> {
        let mut dir = rustix::fs::Dir::read_from(&self.fd).map_err(|e| at_error(&self.path, e))?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| at_error(&self.path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// fsync the directory, so that a creation or rename in it is durable.
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(|e| at_error(&self.path, e))
    }
}

#[cfg(test)]
mod tests;
