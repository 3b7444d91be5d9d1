//! What the agent, as root, writes into a PostgreSQL data directory (which
//! the `postgres` OS user owns and may fill with links): `standby.signal`,
//! `primary_conninfo` in `postgresql.auto.conf` with its password in a
//! passfile of its own, the `log` directory `pg_ctl -l` writes to, and a
//! dead postmaster's lock files set aside. Everything goes through
//! [`crate::safefs`]: no symlink is followed, new files are made under
//! random names and handed to the directory's owner by descriptor, and a
//! link where the agent would write refuses the action with its path.
//!
//! `postmaster.pid` is the database user's file: its fields are checked
//! before use (a pid, a port, an absolute socket directory without `..`
//! owned by the data directory's owner) and only files named like a
//! PostgreSQL socket lock, owned by that user, are ever renamed.

use crate::safefs::{self, OwnedDir, Owner};
use std::io;
use std::path::Path;

/// The password file the fence writes beside `primary_conninfo`
/// (`passfile=` points at it): mode 0600, owned by the data directory's
/// owner, in a directory only that user can read.
pub const PASSFILE: &str = "watchpost-replication.pgpass";

/// The file whose presence makes a server start in recovery, as a
/// standby: the fence, the cluster mode and reinit write it, reinit looks
/// for it, a restore drill's copy has it removed.
pub const STANDBY_SIGNAL: &str = "standby.signal";

/// Largest `postgresql.auto.conf` (or `postmaster.pid`) the agent reads.
pub(super) const MAX_CONFIG: u64 = 4 << 20;

/// Open data directory `path`: a symlink in its place is refused, and when
/// the agent is root the directory must not be root's (PostgreSQL runs as
/// its own user, and so do the programs the agent runs there).
pub fn open(path: &Path) -> io::Result<OwnedDir> {
    let dir = OwnedDir::open(path)?;
    if safefs::is_root() && dir.owner().0 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is owned by root; a PostgreSQL data directory belongs to the database's OS user (chown -R postgres: it)",
                path.display()
            ),
        ));
    }
    Ok(dir)
}

/// Who PostgreSQL's programs working in data directory `path` run as:
/// `None` (the agent itself) when the agent is not root, else the
/// directory's owner (uid, gid).
///
/// Errors, when the agent is root, name why nobody but root could be
/// found, so that the caller refuses to act rather than run a program as
/// root in a directory another user controls: the directory is missing,
/// a symlink (never followed), or owned by root.
pub fn owner_if_root(path: &Path) -> Result<Option<Owner>, String> {
    if !safefs::is_root() {
        return Ok(None);
    }
    let dir = OwnedDir::open(path).map_err(|e| {
        format!(
            "refusing to run PostgreSQL's programs as root: cannot open the data directory {} \
             safely: {e}",
            path.display()
        )
    })?;
    dir.run_as().map(Some).ok_or_else(|| {
        format!(
            "{} is owned by root; PostgreSQL's programs run as the data directory's owner, \
             never as root (chown -R postgres: it)",
            path.display()
        )
    })
}

/// Create `standby.signal` in `data_dir` (owned by the directory's owner),
/// refusing a symlink or anything but a regular file in its place.
pub fn mark_standby(data_dir: &Path) -> io::Result<()> {
    open(data_dir)?.ensure_file(STANDBY_SIGNAL, 0o600)
}

/// `DATA_DIR/log` for `pg_ctl -l`, created (0700) as the directory's
/// owner's; a symlink there is refused.
pub fn ensure_log_dir(data_dir: &Path) -> io::Result<()> {
    open(data_dir)?.subdir("log", true).map(|_| ())
}

/// `standby.signal` plus `primary_conninfo` (and `recovery_target_timeline
/// = 'latest'`) in `postgresql.auto.conf`, for a `conninfo` that holds no
/// password (the cluster mode's points at its configured passfile).
/// `owner`, when given, must still own the directory.
pub fn demote_on_disk(data_dir: &Path, conninfo: &str, owner: Option<Owner>) -> io::Result<()> {
    let dir = open(data_dir)?;
    if let Some(owner) = owner
        && owner != dir.owner()
    {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: its owner changed (uid {} now, {} before); refusing to write into it",
                data_dir.display(),
                dir.owner().0,
                owner.0
            ),
        ));
    }
    demote(&dir, conninfo, None)
}

/// [`demote_on_disk`] for a login with a password: the password goes into
/// [`PASSFILE`] (`*:*:*:USER:PASSWORD`, 0600) and `primary_conninfo` gets
/// `passfile=` instead: never the password itself, which any `pg_monitor`
/// member may read from `pg_settings`.
pub fn demote_with_password(
    data_dir: &Path,
    conninfo: &str,
    user: &str,
    password: &str,
) -> io::Result<()> {
    let dir = open(data_dir)?;
    demote(&dir, conninfo, Some((user, password)))
}

/// One passfile line matching any host, port and database for `user`.
pub fn passfile_line(user: &str, password: &str) -> String {
    let escape = |v: &str| v.replace('\\', "\\\\").replace(':', "\\:");
    format!("*:*:*:{}:{}\n", escape(user), escape(password))
}

/// A libpq keyword/value string value, quoted.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn demote(dir: &OwnedDir, conninfo: &str, login: Option<(&str, &str)>) -> io::Result<()> {
    dir.ensure_file(STANDBY_SIGNAL, 0o600)?;
    let mut conninfo = conninfo.to_string();
    if let Some((user, password)) = login {
        dir.replace(PASSFILE, passfile_line(user, password).as_bytes(), 0o600)?;
        conninfo.push_str(&format!(
            " passfile={}",
            quote(&dir.entry(PASSFILE).display().to_string())
        ));
    }
    let existing = dir
        .read("postgresql.auto.conf", MAX_CONFIG)?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut kept: Vec<&str> = existing
        .lines()
        .filter(|l| {
            !l.trim_start().starts_with("primary_conninfo")
                && !l.trim_start().starts_with("recovery_target_timeline")
        })
        .collect();
    let line = format!(
        "primary_conninfo = '{}'",
        conninfo.replace('\\', "\\\\").replace('\'', "''")
    );
    kept.push("# Written by watchpost when this server was fenced after a failover.");
    kept.push(&line);
    kept.push("recovery_target_timeline = 'latest'");
    dir.replace(
        "postgresql.auto.conf",
        format!("{}\n", kept.join("\n")).as_bytes(),
        0o600,
    )
}

/// What `postmaster.pid` says, checked: the pid, and the socket lock file
/// (directory, port) when its fields are sound.
#[derive(Debug, PartialEq)]
pub struct PidFile {
    pub pid: u32,
    pub socket: Option<(std::path::PathBuf, u16)>,
}

/// Parse `postmaster.pid` (pid, data dir, start time, port, socket dir,
/// ...): untrusted text, so the pid must be a positive number, the port a
/// port, the socket directory absolute and free of `..`.
pub fn parse_pid_file(text: &str) -> Option<PidFile> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let pid = lines.first()?.parse::<u32>().ok().filter(|p| *p > 0)?;
    let port = lines.get(3).and_then(|p| p.parse::<u16>().ok());
    let dir = lines.get(4).map(Path::new).filter(|d| {
        d.is_absolute()
            && d.components()
                .all(|c| !matches!(c, std::path::Component::ParentDir))
    });
    Some(PidFile {
        pid,
        socket: match (dir, port) {
            (Some(dir), Some(port)) if port > 0 => Some((dir.to_path_buf(), port)),
            _ => None,
        },
    })
}

/// A killed postmaster whose parent does not reap it (in a container whose
/// PID 1 is not an init) stays a zombie: `kill(pid, 0)` still succeeds, so
/// pg_ctl waits for it to stop and PostgreSQL refuses to start ("is another
/// postmaster running?"). A zombie is dead: its `postmaster.pid` and its
/// socket lock file are set aside (renamed within their directories), which
/// is what PostgreSQL does itself with the files of a process that is gone.
pub fn set_aside_dead_postmaster_pid(data_dir: &Path) {
    let Ok(dir) = OwnedDir::open(data_dir) else {
        return;
    };
    let Ok(Some(bytes)) = dir.read("postmaster.pid", MAX_CONFIG) else {
        return;
    };
    let Some(found) = parse_pid_file(&String::from_utf8_lossy(&bytes)) else {
        return;
    };
    let pid = found.pid;
    if !super::postmaster::is_zombie(pid) {
        return;
    }
    let aside = |dir: &OwnedDir, name: &str| {
        let to = format!("{name}.dead-{pid}");
        match dir.rename(name, &to) {
            Ok(()) => tracing::warn!(
                "the postmaster (pid {pid}) of {} is dead but not reaped; set {} aside",
                data_dir.display(),
                dir.entry(name).display()
            ),
            Err(e) => tracing::warn!("cannot set aside {}: {e}", dir.entry(name).display()),
        }
    };
    aside(&dir, "postmaster.pid");
    let Some((socket_dir, port)) = found.socket else {
        return;
    };
    // Only a lock file of this very postmaster, owned by the data
    // directory's owner, in a directory that is not a link.
    let Ok(sockets) = OwnedDir::open(&socket_dir) else {
        return;
    };
    let sockets = sockets.expecting(dir.owner());
    let lock = format!(".s.PGSQL.{port}.lock");
    let Ok(Some(holder)) = sockets.read(&lock, 4096) else {
        return;
    };
    let holder = String::from_utf8_lossy(&holder);
    if holder.lines().next().map(str::trim) == Some(&pid.to_string()) {
        aside(&sockets, &lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch data directory; when the tests run as root, owned by
    /// `nobody` (a data directory is never root's).
    fn data_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if safefs::is_root() {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        }
        dir
    }

    #[test]
    fn programs_never_run_as_root_in_a_directory_nobody_else_owns() {
        let dir = tempfile::tempdir().unwrap();
        if !safefs::is_root() {
            assert_eq!(owner_if_root(dir.path()), Ok(None));
            return;
        }
        // Root's own directory, a link to one, a missing one: refused.
        let err = owner_if_root(dir.path()).unwrap_err();
        assert!(err.contains("owned by root"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(owner_if_root(&link).is_err());
        assert!(owner_if_root(&dir.path().join("missing")).is_err());
        // Another user's: that user.
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        assert_eq!(owner_if_root(&theirs), Ok(Some((65534, 65534))));
    }

    #[test]
    fn demotion_replaces_an_older_primary_conninfo() {
        let dir = data_dir();
        std::fs::write(
            dir.path().join("postgresql.auto.conf"),
            "work_mem = '8MB'\nprimary_conninfo = 'host=old'\n",
        )
        .unwrap();
        let owner = OwnedDir::open(dir.path()).unwrap().owner();
        demote_on_disk(
            dir.path(),
            "host='127.0.0.1' port=5433 user='o\\'k'",
            Some(owner),
        )
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join("postgresql.auto.conf")).unwrap();
        assert!(text.contains("work_mem = '8MB'"));
        assert!(!text.contains("host=old"));
        assert!(
            text.contains("primary_conninfo = 'host=''127.0.0.1'' port=5433 user=''o\\\\''k'''"),
            "{text}"
        );
        assert!(dir.path().join("standby.signal").exists());
    }

    #[test]
    fn a_password_goes_to_the_passfile_not_the_config() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = data_dir();
        demote_with_password(dir.path(), "host='h' user='rep'", "rep", "s3:cr\\et").unwrap();
        let text = std::fs::read_to_string(dir.path().join("postgresql.auto.conf")).unwrap();
        // Not "s3" alone: a temporary directory's random name may hold it.
        assert!(!text.contains("s3:cr"), "{text}");
        assert!(text.contains(PASSFILE), "{text}");
        let passfile = dir.path().join(PASSFILE);
        assert_eq!(
            std::fs::read_to_string(&passfile).unwrap(),
            "*:*:*:rep:s3\\:cr\\\\et\n"
        );
        let meta = std::fs::metadata(&passfile).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dir_meta = std::fs::metadata(dir.path()).unwrap();
        assert_eq!(
            meta.uid(),
            dir_meta.uid(),
            "handed to the directory's owner"
        );
    }

    #[test]
    fn postmaster_pid_fields_are_checked() {
        let ok = "123\n/data\n1700000000\n5432\n/run/postgresql\n";
        assert_eq!(
            parse_pid_file(ok),
            Some(PidFile {
                pid: 123,
                socket: Some(("/run/postgresql".into(), 5432))
            })
        );
        let sneaky = "123\n/data\n1\n5432\n/run/../etc\n";
        assert_eq!(parse_pid_file(sneaky).unwrap().socket, None);
        let relative = "123\n/data\n1\n5432\netc\n";
        assert_eq!(parse_pid_file(relative).unwrap().socket, None);
        assert_eq!(parse_pid_file("0\n"), None);
        assert_eq!(parse_pid_file("-1\n"), None);
        assert_eq!(parse_pid_file("../x\n"), None);
        assert_eq!(
            parse_pid_file("7\n/d\n1\n99999\n/tmp\n").unwrap().socket,
            None
        );
    }
}
