//! Reading a secret from a file (a password file, a passfile, a private
//! key, a bearer token) the way libpq and ssh do: the file must be a
//! regular file owned by the agent's user (or root) and readable by
//! nobody else. A file that group or others can read is refused with the
//! `chmod` that fixes it, so that a secret left world-readable is noticed
//! instead of used. Permissions are checked on the opened file (no race
//! between the check and the read).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Secrets are small: a larger file is a mistake (a wrong path).
const MAX_SECRET_BYTES: u64 = 1 << 20;

/// The contents of the secret file at `path`, checked as described above.
/// Errors name the file and what to do about it.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read the secret file {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read the secret file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("the secret file {shown} is not a regular file"));
    }
    check_permissions(path, &meta)?;
    if meta.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "the secret file {shown} is {} bytes; a secret file holds at most 1 MiB",
            meta.len()
        ));
    }
    let mut text = String::new();
    file.by_ref()
        .take(MAX_SECRET_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the secret file {shown}: {e}"))?;
    Ok(text)
}

/// Refuse a secret file that others can read or that someone else owns.
pub fn check_permissions(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    let shown = path.display();
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the secret file {shown} is readable by group or others (mode {mode:04o}); \
             make it private to the agent's user: chmod 0600 {shown}"
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "the secret file {shown} belongs to user id {} and not to the agent's user \
             (id {me}) or root; chown it to the user the agent runs as",
            meta.uid()
        ));
    }
    Ok(())
}

/// The first line of a secret file's text, without the line break: a
/// password or token file written by `echo` ends in a newline that is not
/// part of the secret.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_are_read_and_shared_ones_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(first_line(&read_secret_file(&path).unwrap()), "s3cret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_secret_file(&path).unwrap_err();
        assert!(error.contains("chmod 0600"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        let missing = read_secret_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.contains("nope"), "{missing}");
        assert!(read_secret_file(dir.path()).is_err());
    }
}
