//! Disk space during a drill. Before it, the backup's size plus a tenth
//! plus `reserve` must be free; during it (restore, start, WAL replay)
//! the free space of the scratch filesystem is polled every
//! [`POLL`], and the drill is aborted — and then torn down — as soon as
//! it falls below `reserve`: a copy replaying more WAL than expected must
//! not fill the filesystem it shares with anything else. `validate`
//! warns when drills share a filesystem with a database's data directory.

use super::scratch::free_bytes_async;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often free space is checked while the drill runs.
pub const POLL: Duration = Duration::from_millis(500);

/// Run `work`, aborting it (dropping it, which kills its programs) with an
/// error naming the filesystem as soon as `dir` has less than `reserve`
/// bytes free; `phase` names what was going on, for the message.
pub async fn guarded<T>(
    dir: &Path,
    reserve: u64,
    phase: &str,
    work: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::select! {
        done = work => done,
        why = watch(dir, reserve, phase) => Err(why),
    }
}

async fn watch(dir: &Path, reserve: u64, phase: &str) -> String {
    loop {
        tokio::time::sleep(POLL).await;
        match free_bytes_async(dir).await {
            Ok(free) if free < reserve => {
                return format!(
                    "aborted while {phase}: free space on the filesystem of {} fell to {}, below the \
                     reserve of {}; the copy was removed (give the drill a larger filesystem, or \
                     point `state_dir` elsewhere)",
                    dir.display(),
                    super::human(free),
                    super::human(reserve)
                );
            }
            Ok(_) => {}
            Err(e) => return format!("aborted while {phase}: {e}"),
        }
    }
}

/// The device of the filesystem `path` is on: `path` itself, else its
/// nearest existing ancestor.
fn device(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    path.ancestors()
        .find_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.dev())
}

/// Warnings for data directories on the same filesystem as `drills`
/// (the scratch directories): a drill fills the disk the database needs.
pub fn shared_filesystems(drills: &Path, data_dirs: &[PathBuf]) -> Vec<String> {
    let Some(ours) = device(drills) else {
        return Vec::new();
    };
    data_dirs
        .iter()
        .filter(|d| device(d) == Some(ours))
        .map(|d| {
            format!(
                "restore drills restore into {}, on the same filesystem as the data directory {}: \
                 a drill takes as much space as the backup, and the database needs its disk; \
                 point `state_dir` at another filesystem",
                drills.display(),
                d.display()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_filesystem_is_named_and_a_missing_directory_judged_by_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let drills = dir.path().join("state/drills");
        let warned = shared_filesystems(&drills, &[dir.path().join("data")]);
        assert_eq!(warned.len(), 1);
        assert!(warned[0].contains("same filesystem"), "{}", warned[0]);
        if device(Path::new("/proc")) != device(dir.path()) {
            assert!(shared_filesystems(&drills, &[PathBuf::from("/proc")]).is_empty());
        }
    }

    #[tokio::test]
    async fn a_reserve_above_the_free_space_aborts_the_work() {
        let dir = tempfile::tempdir().unwrap();
        let work = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<(), String>(())
        };
        let err = guarded(dir.path(), u64::MAX, "replaying WAL", work)
            .await
            .unwrap_err();
        assert!(err.contains("aborted while replaying WAL"), "{err}");
    }
}
