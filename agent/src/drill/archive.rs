//! A backup's tar archives (`base.tar`, `pg_wal.tar`, a tablespace's
//! `OID.tar`; plain, `.gz`, `.zst` or `.lz4`) checked member by member
//! *before* any is unpacked into the drill's copy: `tar -x` runs as the
//! database's OS user, who can write the live data directory, so one member
//! that leads out of the scratch tree would write production. A member is
//! refused when its name is absolute or has a `..`; when it is a symbolic
//! link whose target is absolute or has a `..` (a later member, or the
//! restored server, would write through it); when it is a hard link to a
//! name that is absolute or has a `..`; and when it is a device node, a
//! FIFO or any kind `pg_basebackup` does not write. Only then is the
//! archive unpacked ([`unpack`]); `confine` checks the result again.

use super::program::step;
use super::scratch::Scratch;
use std::io::Read;
use std::path::{Component, Path};
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use tar::EntryType;

/// Why member `name` of an archive may not be unpacked, or `None`.
fn refusal(name: &[u8], kind: EntryType, link: Option<&[u8]>) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let escapes = |path: &[u8]| {
        let path = Path::new(std::ffi::OsStr::from_bytes(path));
        path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
    };
    if name.is_empty() || escapes(name) {
        return Some("its name is absolute or climbs with `..`".into());
    }
    match kind {
        EntryType::Regular
        | EntryType::Continuous
        | EntryType::Directory
        | EntryType::XGlobalHeader
        | EntryType::XHeader => None,
        EntryType::Symlink | EntryType::Link => {
            let what = if kind == EntryType::Symlink {
                "a symbolic link"
            } else {
                "a hard link"
            };
            match link {
                None => Some(format!("it is {what} without a target")),
                Some(target) if target.is_empty() || escapes(target) => Some(format!(
                    "it is {what} to {:?}, which is absolute or climbs with `..` (it would lead \
                     out of the drill's copy)",
                    String::from_utf8_lossy(target)
                )),
                Some(_) => None,
            }
        }
        EntryType::Char | EntryType::Block => {
            Some("it is a device node (a write of it writes a device)".into())
        }
        EntryType::Fifo => Some("it is a FIFO (a read of it hangs)".into()),
        other => Some(format!(
            "it is a tar entry of kind {:?}, which pg_basebackup does not write",
            other.as_byte() as char
        )),
    }
}

/// A decompressing program (`zstd -dc`, `lz4 -dc`) killed and reaped when
/// the check stops reading early.
struct Decompressor(Child);

impl Drop for Decompressor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Check every member of `archive` (its compression told by its name);
/// `Ok` with the number of members, or an error naming the archive, the
/// first refused member and why. Blocking: it reads the whole archive.
pub fn check(archive: &Path) -> Result<usize, String> {
    let shown = archive.display();
    let file = std::fs::File::open(archive).map_err(|e| format!("{shown}: {e}"))?;
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let program = if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".lz4") {
        Some("lz4")
    } else {
        None
    };
    if let Some(program) = program {
        let mut child = Command::new(program)
            .arg("-dc")
            .stdin(Stdio::from(file))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{shown}: cannot run {program} to read it: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let mut guard = Decompressor(child);
        let members = check_stream(archive, out)?;
        let status = guard.0.wait().map_err(|e| format!("{shown}: {e}"))?;
        if !status.success() {
            return Err(format!(
                "{shown}: {program} -dc failed ({status}): a damaged archive"
            ));
        }
        return Ok(members);
    }
    if name.ends_with(".gz") {
        return check_stream(archive, flate2::read::MultiGzDecoder::new(file));
    }
    // Uncompressed: the members' data is skipped, not read.
    let mut tar = tar::Archive::new(file);
    let entries = tar
        .entries_with_seek()
        .map_err(|e| format!("{}: not a tar archive: {e}", archive.display()))?;
    judge_all(archive, entries)
}

fn check_stream(archive: &Path, stream: impl Read) -> Result<usize, String> {
    let mut tar = tar::Archive::new(stream);
    let entries = tar
        .entries()
        .map_err(|e| format!("{}: not a tar archive: {e}", archive.display()))?;
    judge_all(archive, entries)
}

fn judge_all<R: Read>(archive: &Path, entries: tar::Entries<'_, R>) -> Result<usize, String> {
    let shown = archive.display();
    let mut members = 0;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{shown}: a damaged tar archive: {e}"))?;
        judge(archive, &entry)?;
        members += 1;
    }
    Ok(members)
}

fn judge<R: Read>(archive: &Path, entry: &tar::Entry<'_, R>) -> Result<(), String> {
    let name = entry.path_bytes();
    let link = entry.link_name_bytes();
    let kind = entry.header().entry_type();
    match refusal(&name, kind, link.as_deref()) {
        None => Ok(()),
        Some(why) => Err(format!(
            "the backup's archive {} has the member {:?}: {why}; the drill unpacks nothing of it \
             (the backup was not made by pg_basebackup, or was altered: make a new one)",
            archive.display(),
            String::from_utf8_lossy(&name)
        )),
    }
}

/// Check every member of `archive`, then unpack it into `into` (a
/// directory of the copy) as the copy's owner, until `deadline`.
pub async fn unpack(
    s: &Scratch,
    archive: &Path,
    into: &Path,
    deadline: Instant,
) -> Result<(), String> {
    let path = archive.to_path_buf();
    tokio::task::spawn_blocking(move || check(&path))
        .await
        .map_err(|e| format!("checking {}: {e}", archive.display()))??;
    let argv = vec![
        "tar".into(),
        "-xf".into(),
        archive.display().to_string(),
        "-C".into(),
        into.display().to_string(),
    ];
    step(argv, s.owner, &s.dir, &[], deadline).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar member with the raw `name`, `kind` and link target.
    fn member(builder: &mut tar::Builder<Vec<u8>>, name: &str, kind: EntryType, link: &str) {
        let mut header = tar::Header::new_ustar();
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(0o600);
        let body: &[u8] = if kind == EntryType::Regular {
            b"x"
        } else {
            b""
        };
        header.set_size(body.len() as u64);
        header.set_cksum();
        builder.append(&header, body).unwrap();
    }

    fn archive(dir: &Path, file: &str, members: &[(&str, EntryType, &str)]) -> std::path::PathBuf {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, link) in members {
            member(&mut builder, name, *kind, link);
        }
        let bytes = builder.into_inner().unwrap();
        let path = dir.join(file);
        if file.ends_with(".gz") {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&bytes).unwrap();
            std::fs::write(&path, gz.finish().unwrap()).unwrap();
        } else {
            std::fs::write(&path, bytes).unwrap();
        }
        path
    }

    #[test]
    fn members_leading_out_of_the_copy_are_refused_before_anything_is_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let fine = [
            ("PG_VERSION", EntryType::Regular, ""),
            ("base/", EntryType::Directory, ""),
            ("base/1", EntryType::Regular, ""),
            ("base/2", EntryType::Link, "base/1"),
            ("inside", EntryType::Symlink, "base/1"),
        ];
        for file in ["ok.tar", "ok.tar.gz"] {
            assert_eq!(
                check(&archive(dir.path(), file, &fine)).unwrap(),
                5,
                "{file}"
            );
        }
        let bad: [(&str, EntryType, &str, &str); 8] = [
            ("/etc/passwd", EntryType::Regular, "", "absolute"),
            ("pg_wal/../../live", EntryType::Regular, "", "`..`"),
            (
                "pg_wal",
                EntryType::Symlink,
                "/var/lib/postgresql/live/pg_wal",
                "symbolic link",
            ),
            ("conf.d", EntryType::Symlink, "../../live", "symbolic link"),
            ("base/3", EntryType::Link, "/etc/shadow", "hard link"),
            ("base/4", EntryType::Link, "../x", "hard link"),
            ("global/pg_control", EntryType::Block, "", "device node"),
            ("pg_stat/fifo", EntryType::Fifo, "", "FIFO"),
        ];
        for (i, (name, kind, link, why)) in bad.iter().enumerate() {
            for ext in ["tar", "tar.gz"] {
                let mut members = fine.to_vec();
                members.push((name, *kind, link));
                members.push(("after", EntryType::Regular, ""));
                let path = archive(dir.path(), &format!("bad{i}.{ext}"), &members);
                let err = check(&path).unwrap_err();
                assert!(err.contains(name) && err.contains(why), "{err}");
            }
        }
        // Compressed by a program: zstd, when this host has it.
        let plain = archive(dir.path(), "z.tar", &[("/abs", EntryType::Regular, "")]);
        let zst = dir.path().join("z.tar.zst");
        let made = Command::new("zstd")
            .arg("-q")
            .arg(&plain)
            .arg("-o")
            .arg(&zst)
            .status();
        if made.is_ok_and(|s| s.success()) {
            assert!(check(&zst).unwrap_err().contains("absolute"));
        }
        assert!(check(&dir.path().join("missing.tar")).is_err());
    }
}
