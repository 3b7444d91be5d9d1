//! Shared setup of the backup, archiving and restore-drill tests: a pair
//! whose primary archives WAL into a directory, base backups taken with
//! `pg_basebackup`, pgBackRest stanzas (one or more repositories, plain,
//! bundled or encrypted), the `pg-backup` probe run on granted
//! directories, fingerprints of trees that must not change, and the
//! commands the tests run as the clusters' OS user (`postgres` when the
//! tests run as root).

use crate::pg::{Cluster, PgPair, SUPERUSER, wait_until};
use crate::report::{Checked, check, sets};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
    base_backup_with(primary, dir, &[]);
}

/// [`base_backup`] with `extra` options (`-Ft`, `-T OLD=NEW`, ...).
pub fn base_backup_with(primary: &Cluster, dir: &Path, extra: &[String]) {
    let socket = primary.data_dir().parent().unwrap();
    let mut backup = as_postgres(&format!("{BIN}/pg_basebackup"));
    backup
        .arg("-D")
        .arg(dir)
        .args(["-X", "stream", "--checkpoint=fast", "--no-sync"])
        .args(extra)
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

/// `pg-backup` with the granted directories `dirs` (name, path) and
/// config `settings`.
pub fn backup_probe(dirs: &[(&str, &Path)], settings: &[(&str, &str)]) -> Checked {
    let mut args: Vec<String> = dirs
        .iter()
        .flat_map(|(name, dir)| ["--dir".to_string(), format!("{name}={}", dir.display())])
        .collect();
    args.extend(sets(settings));
    check(&crate::probes::path("pg-backup"), &args)
}

/// A pgBackRest stanza `main` for `pair`'s primary, its config (`repos`:
/// the `repoN-*` lines of `[global]`) in `root/pgbackrest/pgbackrest.conf`,
/// readable by all; the primary archives through it. The stanza is
/// created; back up with [`PgBackRest::run`].
pub struct PgBackRest {
    pub conf: PathBuf,
}

impl PgBackRest {
    pub fn stanza(pair: &PgPair, root: &Path, repos: &str) -> PgBackRest {
        let work = postgres_dir(root, "pgbackrest");
        let conf = work.join("pgbackrest.conf");
        let socket = pair.primary.data_dir().parent().unwrap();
        std::fs::write(
            &conf,
            format!(
                "[global]\n{repos}\nlock-path={work}\nlog-path={work}\nlog-level-file=off\n\
                 start-fast=y\narchive-timeout=60\n\n\
                 [main]\npg1-path={}\npg1-port={}\npg1-socket-path={}\npg1-user=postgres\n",
                pair.primary.data_dir().display(),
                pair.primary.port(),
                socket.display(),
                work = work.display(),
            ),
        )
        .unwrap();
        std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        pair.primary.execute(&format!(
            "ALTER SYSTEM SET archive_command = 'pgbackrest --config={} --stanza=main archive-push %p'",
            conf.display()
        ));
        pair.primary.execute("SELECT pg_reload_conf()");
        let stanza = PgBackRest { conf };
        stanza.run(&["stanza-create"]);
        stanza
    }

    /// `pgbackrest --stanza=main ARGS` as the clusters' OS user; its output.
    pub fn run(&self, args: &[&str]) -> String {
        let mut c = as_postgres("pgbackrest");
        c.arg(format!("--config={}", self.conf.display()))
            .arg("--stanza=main")
            .args(args);
        run(c)
    }
}

/// Every entry under `roots` (links not followed): a file's length,
/// mtime and SHA-256, a link's target, a directory's mtime.
pub fn fingerprint(roots: &[&Path]) -> BTreeMap<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = BTreeMap::new();
    let mut stack: Vec<PathBuf> = roots.iter().map(|r| r.to_path_buf()).collect();
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mtime = format!("{}.{}", meta.mtime(), meta.mtime_nsec());
        let print = if meta.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            format!("dir {mtime}")
        } else {
            let bytes = std::fs::read(&path).unwrap();
            format!("{} {mtime} {:x}", bytes.len(), Sha256::digest(&bytes))
        };
        seen.insert(path, print);
    }
    seen
}

/// Panic naming every entry that changed, appeared or went between two
/// [`fingerprint`]s.
pub fn assert_unchanged(
    what: &str,
    before: &BTreeMap<PathBuf, String>,
    after: &BTreeMap<PathBuf, String>,
) {
    let changed: Vec<_> = before
        .iter()
        .filter(|(p, v)| after.get(*p) != Some(v))
        .map(|(p, _)| p)
        .chain(after.keys().filter(|p| !before.contains_key(*p)))
        .collect();
    assert!(changed.is_empty(), "{what} changed: {changed:?}");
}
