//! A root run beside the packaged service: `/var/lib/watchpost` belongs
//! to the service's user (`watchpost`), and every file a root run wrote
//! there (the API token, the audit log, the compile cache) would be
//! root's, which the service cannot read or replace. So a root `run` on a
//! state directory another user owns is refused before it writes anything,
//! naming the fixes, and a root `check` or `validate` keeps its compiled
//! probes in a directory of its own instead.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The owner of `dir` (uid and name, if `/etc/passwd` has one) when this
/// process runs as root and `dir` is a directory another user owns.
pub fn foreign_owner(dir: &Path) -> Option<(u32, Option<String>)> {
    if !crate::safefs::is_root() {
        return None;
    }
    let meta = std::fs::symlink_metadata(dir).ok()?;
    if !meta.is_dir() || meta.uid() == 0 {
        return None;
    }
    Some((meta.uid(), user_name(meta.uid())))
}

/// The name `/etc/passwd` gives `uid`.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// Refuse a root `run` on a state directory another user owns: the error
/// names the user and the three ways out.
pub fn refuse_foreign(dir: &Path) -> anyhow::Result<()> {
    let Some((uid, name)) = foreign_owner(dir) else {
        return Ok(());
    };
    let user = name.unwrap_or_else(|| uid.to_string());
    anyhow::bail!(
        "the state directory {dir} belongs to user {user} (the packaged service's, if it is \
         `watchpost`), and this run is root's: the files it would write there (API token, audit \
         log, compile cache) would be root's, and the agent running as {user} could not use them. \
         Start the service (`systemctl start watchpost`), or run as that user \
         (`sudo -u {user} watchpost run -c FILE`), or give this run a state directory of its own \
         (`WATCHPOST_STATE_DIR=/root/watchpost-state watchpost run ...`, or `state_dir` in [agent])",
        dir = dir.display()
    )
}

/// Where a root `check` or `validate` keeps its compile cache when the
/// configured state directory is another user's: root's own
/// `~/.cache/watchpost` (else `/root/.cache/watchpost`), with a note.
pub fn cache_state_dir(dir: &Path) -> PathBuf {
    let Some((uid, name)) = foreign_owner(dir) else {
        return dir.to_path_buf();
    };
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute() && h != Path::new("/"))
        .unwrap_or_else(|| PathBuf::from("/root"));
    let own = home.join(".cache/watchpost");
    eprintln!(
        "note: {} belongs to user {} and this run is root's: compiled probes are cached in {} \
         instead, so that the service's files stay its own",
        dir.display(),
        name.unwrap_or_else(|| uid.to_string()),
        own.display()
    );
    own
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_of_ones_own_is_not_foreign() {
        let dir = tempfile::tempdir().unwrap();
        // Ours (root's when the tests run as root, else not root at all).
        assert_eq!(foreign_owner(dir.path()), None);
        assert!(refuse_foreign(dir.path()).is_ok());
        assert_eq!(cache_state_dir(dir.path()), dir.path());
    }

    #[test]
    fn another_users_directory_is_refused_to_root_with_the_fixes() {
        if !crate::safefs::is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        let (uid, _) = foreign_owner(dir.path()).expect("foreign");
        assert_eq!(uid, 65534);
        let e = refuse_foreign(dir.path()).unwrap_err().to_string();
        for part in [
            "systemctl start watchpost",
            "sudo -u",
            "WATCHPOST_STATE_DIR=",
            "could not use them",
        ] {
            assert!(e.contains(part), "{part:?} not in {e}");
        }
        assert!(cache_state_dir(dir.path()).ends_with(".cache/watchpost"));
    }
}
