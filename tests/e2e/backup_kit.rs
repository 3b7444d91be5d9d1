//! Shared setup of the backup, archiving and restore-drill tests: a pair
//! whose primary archives WAL into a directory, base backups taken with
//! `pg_basebackup`, and the commands the tests run as the clusters' OS
//! user (`postgres` when the tests run as root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use watchpost_e2e::pg::{Cluster, PgPair, SUPERUSER, wait_until};

pub const BIN: &str = "/usr/lib/postgresql/15/bin";

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command run as the clusters' OS user.
pub fn as_postgres(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c.current_dir("/");
        c
    } else {
        Command::new(program)
    }
}

/// Run `command`; panic with its output when it fails.
pub fn run(mut command: Command) -> String {
    let shown = format!("{command:?}");
    let out = command.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown} failed:\n{text}");
    text
}

/// `root/name`, created and owned by the clusters' OS user; `root` is
/// made traversable for that user.
pub fn postgres_dir(root: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    if is_root() {
        let mut chown = Command::new("chown");
        chown.arg("-R").arg("postgres:").arg(&dir);
        run(chown);
    }
    dir
}

/// A pair whose primary archives every WAL segment into `archive`.
pub fn archived_pair(archive: &Path) -> PgPair {
    let command = format!("test ! -f {0}/%f && cp %p {0}/%f", archive.display());
    PgPair::with_settings(&[("archive_mode", "on"), ("archive_command", &command)])
}

/// Switch to a new WAL segment and wait until the one just finished is
/// archived.
pub fn switch_and_wait_archived(primary: &Cluster) {
    // A commit, so that there is something to switch away from.
    primary.execute("SELECT txid_current()");
    let done = primary.value("SELECT pg_walfile_name(pg_switch_wal())");
    wait_until(
        Duration::from_secs(60),
        "the WAL segment to be archived",
        || primary.value("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= done,
    );
}

/// A plain-format `pg_basebackup` of `primary` into `dir` (made by it).
pub fn base_backup(primary: &Cluster, dir: &Path) {
    let socket = primary.data_dir().parent().unwrap();
    let mut backup = as_postgres(&format!("{BIN}/pg_basebackup"));
    backup
        .arg("-D")
        .arg(dir)
        .args(["-X", "stream", "--checkpoint=fast", "--no-sync"])
        .arg("-h")
        .arg(socket)
        .args(["-p", &primary.port().to_string(), "-U", SUPERUSER]);
    run(backup);
}

/// Flip bytes in the middle of the tuple data of the first page of the
/// relation file `path` (its header stays valid: only the checksum tells).
pub fn flip_first_page(path: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut page = vec![0u8; 8192];
    file.read_exact(&mut page).unwrap();
    let upper = usize::from(u16::from_le_bytes([page[14], page[15]]));
    let special = usize::from(u16::from_le_bytes([page[16], page[17]]));
    let offset = upper + (special - upper) / 2;
    file.seek(SeekFrom::Start(offset as u64)).unwrap();
    file.write_all(&[page[offset] ^ 0xFF]).unwrap();
}
