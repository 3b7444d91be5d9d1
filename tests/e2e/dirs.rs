//! The `dirs` capability: a probe granted a directory reads it (read-only)
//! at `/NAME` and nothing else — not other host paths, not through a
//! symlink planted inside the directory (absolute or `..`), and it cannot
//! write there.

use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn read(dir: &std::path::Path, path: &str, extra: &[(&str, &str)]) -> Checked {
    let mut args = vec!["--dir".to_string(), format!("data={}", dir.display())];
    let mut settings = vec![("path", path)];
    settings.extend_from_slice(extra);
    args.extend(sets(&settings));
    check(&probes::path("readfile"), &args)
}

#[test]
fn a_granted_directory_is_readable_and_nothing_leads_out_of_it() {
    let root = tempfile::tempdir().unwrap();
    let granted = root.path().join("granted");
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(granted.join("inside.txt"), "inside\n").unwrap();
    std::fs::write(root.path().join("secret.txt"), "secret\n").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), granted.join("absolute")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", granted.join("relative")).unwrap();
    std::os::unix::fs::symlink("inside.txt", granted.join("sibling")).unwrap();

    let ok = read(&granted, "/data/inside.txt", &[]);
    assert_eq!(ok.status(), "ok", "{:#}", ok.json);
    assert!(ok.message().contains("inside"), "{}", ok.message());
    assert!(ok.message().contains("granted: data"), "{}", ok.message());
    // A link that stays inside works.
    let sibling = read(&granted, "/data/sibling", &[]);
    assert_eq!(sibling.status(), "ok", "{:#}", sibling.json);

    for escape in [
        "/data/absolute",
        "/data/relative",
        "/data/../secret.txt",
        &root.path().join("secret.txt").display().to_string(),
        "/etc/hostname",
    ] {
        let denied = read(&granted, escape, &[]);
        assert_eq!(denied.status(), "critical", "{escape}: {:#}", denied.json);
        assert!(
            denied.message().starts_with("error:") && !denied.message().contains("secret"),
            "{escape}: {}",
            denied.message()
        );
    }

    let write = read(&granted, "/data/new.txt", &[("write", "true")]);
    assert_eq!(write.status(), "critical", "{:#}", write.json);
    assert!(!granted.join("new.txt").exists());
}

#[test]
fn without_a_grant_the_probe_sees_no_files() {
    let outcome = check(
        &probes::path("readfile"),
        &sets(&[("path", "/etc/hostname")]),
    );
    assert_eq!(outcome.status(), "critical", "{:#}", outcome.json);
}
