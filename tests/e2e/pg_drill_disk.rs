//! A restore drill on a small filesystem that fills while the copy
//! replays WAL (issue 25): the drill is aborted once free space falls
//! below `reserve`, before the filesystem is full, and its copy removed.
//! The filesystem is a size-limited tmpfs mounted by the test (it needs
//! root, as the drills' own tests do) and unmounted when it ends.

use crate::backup_kit::{
    BIN, archived_pair, base_backup, is_root, postgres_dir, run, switch_and_wait_archived,
};
use crate::pg_drill::run_drill;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size` mounted at `dir` until dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let mut mount = Command::new("mount");
        mount
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=755"),
                "tmpfs",
            ])
            .arg(dir);
        run(mount);
        Tmpfs(dir.to_path_buf())
    }

    fn free(&self) -> u64 {
        let out = run({
            let mut df = Command::new("df");
            df.args(["--output=avail", "-B1"]).arg(&self.0);
            df
        });
        out.lines().nth(1).unwrap().trim().parse().unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let done = Command::new("umount").arg(&self.0).status();
        if !done.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn a_drill_whose_filesystem_fills_during_replay_is_aborted_and_cleaned_up() {
    assert!(is_root(), "this test mounts a tmpfs: run it as root");
    let root = tempfile::tempdir().unwrap();
    let archive = postgres_dir(root.path(), "archive");
    let backups = postgres_dir(root.path(), "backups");
    let pair = archived_pair(&archive);
    base_backup(&pair.primary, &backups.join("b1"));
    // About 230 MiB of rows after the backup: the copy grows by as much
    // while it replays them.
    pair.primary.execute(
        "CREATE TABLE filler AS SELECT g AS id, repeat('x', 1000) AS v FROM generate_series(1, 200000) g",
    );
    switch_and_wait_archived(&pair.primary);
    let small = Tmpfs::mount(&root.path().join("small"), "300m");
    let state = postgres_dir(&small.0, "state");
    let free_before = small.free();
    let config = root.path().join("drill.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = \"{}\"\n\n[[drill]]\nname = \"restore\"\nbin_dir = \"{BIN}\"\n\
             backup = \"{}\"\narchive = \"{}\"\nreserve = \"150MiB\"\ntimeout = \"180s\"\n",
            state.display(),
            backups.display(),
            archive.display()
        ),
    )
    .unwrap();
    let aborted = run_drill(&config, &[]);
    assert_eq!(aborted.status(), "critical", "{:#}", aborted.json);
    assert!(
        aborted.message().contains("aborted while replaying WAL")
            && aborted.message().contains("below the reserve of 150.0 MiB"),
        "{}",
        aborted.message()
    );
    assert_eq!(aborted.value("postgresql.restore.verified"), 0.0);
    let left: Vec<_> = std::fs::read_dir(state.join("drills"))
        .map(|e| e.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
    // Everything the copy took is free again.
    assert!(
        small.free() + (1 << 20) >= free_before,
        "{} free after, {free_before} before",
        small.free()
    );
}
