//! Tests of the safe file work: links and hard links refused, modes and
//! owners kept, the system's denial told from the agent's refusal.

use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

#[test]
fn a_symlink_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("secret");
    std::fs::write(&target, b"keep").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("marker")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("log")).unwrap();
    let owned = OwnedDir::open(dir.path()).unwrap();
    for result in [
        owned.ensure_file("marker", 0o600),
        owned.replace("marker", b"x", 0o600),
        owned.read("marker", 10).map(|_| ()),
        owned.subdir("log", true).map(|_| ()),
    ] {
        let e = result.unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    // The directory itself as a link.
    let link = elsewhere.path().join("linked");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let e = OwnedDir::open(&link).unwrap_err().to_string();
    assert!(e.contains("is a symbolic link"), "{e}");
}

#[test]
fn a_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    check_private_dir(dir.path()).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = check_private_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("writable by group or others (mode 0777)"), "{e}");
    assert!(e.contains("chmod go-w"), "{e}");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    check_private_dir(dir.path()).unwrap();
}

#[test]
fn the_systems_denial_is_told_from_the_agents_refusal() {
    let denied = os_error(
        Path::new("/srv/redis/redis.conf"),
        io::Error::from_raw_os_error(libc::EACCES),
    );
    assert!(denied_by_the_system(&denied));
    assert_eq!(
        denied.to_string(),
        "/srv/redis/redis.conf: Permission denied (os error 13)"
    );
    assert!(denied_by_the_system(&io::Error::from_raw_os_error(
        libc::EACCES
    )));
    // A file someone else owns: the same kind, but a fault of the
    // file, not of who asks (as root only: a chown).
    if is_root() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("redis.conf");
        std::fs::write(&file, b"port 6379\n").unwrap();
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
        let owned = OwnedDir::open(dir.path()).unwrap();
        let refused = owned.read("redis.conf", 100).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            refused.to_string().contains("is owned by uid 65534"),
            "{refused}"
        );
        assert!(!denied_by_the_system(&refused));
    }
}

#[test]
fn a_hard_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), b"x").unwrap();
    std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
    let owned = OwnedDir::open(dir.path()).unwrap();
    let e = owned.read("b", 10).unwrap_err().to_string();
    assert!(e.contains("hard links"), "{e}");
}

#[test]
fn files_are_replaced_with_their_mode_and_no_temporary_left() {
    let dir = tempfile::tempdir().unwrap();
    let owned = OwnedDir::open(dir.path()).unwrap();
    owned.replace("f", b"one", 0o600).unwrap();
    owned.replace("f", b"two", 0o600).unwrap();
    assert_eq!(owned.read("f", 10).unwrap().unwrap(), b"two");
    let meta = std::fs::metadata(dir.path().join("f")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    owned.ensure_file("s", 0o600).unwrap();
    owned.ensure_file("s", 0o600).unwrap();
    let sub = owned.subdir("log", true).unwrap();
    assert_eq!(std::fs::metadata(sub.path()).unwrap().mode() & 0o777, 0o700);
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["f", "log", "s"]);
    assert_eq!(owned.read("missing", 10).unwrap(), None);
    assert!(owned.read("f", 2).is_err());
    owned.rename("s", "s.old").unwrap();
    assert!(owned.rename("f", "s.old").is_err(), "no replacing rename");
}
