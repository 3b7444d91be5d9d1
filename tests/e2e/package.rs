//! The Debian package (`cargo xtask dist`, which `cargo xtask test` runs
//! first): installed with `dpkg -i` on this machine, its files, user and
//! permissions checked, its unit checked by `systemd-analyze verify`, the
//! installed binary started as the `watchpost` user on the packaged
//! config (answering `/healthz`); files a root run left before the install
//! become the service's, a root `validate` or `run` beside the service
//! leaves none, an upgrade keeps /etc/watchpost's modes; then removed (`dpkg -r` keeps the
//! config) and purged (`dpkg -P` removes it). Needs root, as dpkg does.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use watchpost_e2e::cli::target_dir;

fn sh(program: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn must(program: &str, args: &[&str]) -> String {
    let (ok, text) = sh(program, args);
    assert!(ok, "{program} {args:?} failed:\n{text}");
    text
}

/// The newest package in target/debian/.
fn package() -> PathBuf {
    let dir = target_dir().join("debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask dist` first", dir.display()))
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop()
        .unwrap_or_else(|| panic!("no .deb in {}; run `cargo xtask dist`", dir.display()))
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

fn uid_of(user: &str) -> u32 {
    must("id", &["-u", user]).trim().parse().unwrap()
}

#[test]
fn the_package_installs_runs_as_its_user_and_removes_cleanly() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "dpkg needs root");
    let deb = package();
    let deb = deb.to_str().unwrap();
    // A previous run that stopped half-way.
    let _ = sh("dpkg", &["-P", "watchpost"]);
    // What a root run before the package leaves (`cargo run -- run` as
    // root): root's state directory with root's token and cache, and a
    // hard link to a file that is not the agent's.
    let _ = std::fs::remove_dir_all("/var/lib/watchpost");
    std::fs::create_dir_all("/var/lib/watchpost/cache").unwrap();
    std::fs::write(
        "/var/lib/watchpost/api-token",
        format!("{}\n", "ab".repeat(32)),
    )
    .unwrap();
    std::fs::set_permissions(
        "/var/lib/watchpost/api-token",
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write("/var/lib/watchpost/cache/probe.bin", "x").unwrap();
    let outside = Path::new("/var/lib/watchpost-test-outside");
    std::fs::write(outside, "not the agent's").unwrap();
    std::fs::hard_link(outside, "/var/lib/watchpost/cache/link").unwrap();
    must("dpkg", &["-i", deb]);
    let watchpost = uid_of("watchpost");
    for file in [
        "/var/lib/watchpost/api-token",
        "/var/lib/watchpost/cache",
        "/var/lib/watchpost/cache/probe.bin",
    ] {
        assert_eq!(
            std::fs::metadata(file).unwrap().uid(),
            watchpost,
            "{file} is not the service's after the install"
        );
    }
    assert_eq!(
        std::fs::metadata(outside).unwrap().uid(),
        0,
        "the install gave away a hard-linked file"
    );
    std::fs::remove_file("/var/lib/watchpost/cache/link").unwrap();
    std::fs::remove_file("/var/lib/watchpost/cache/probe.bin").unwrap();
    std::fs::remove_file(outside).unwrap();

    assert_eq!(mode("/usr/bin/watchpost"), 0o755);
    let version = must("/usr/bin/watchpost", &["--version"]);
    assert!(version.contains("commit"), "{version}");
    let config = "/etc/watchpost/watchpost.toml";
    assert_eq!(mode(config), 0o640);
    assert_eq!(std::fs::metadata(config).unwrap().uid(), 0);
    assert!(
        must("dpkg-query", &["-W", "-f=${Conffiles}", "watchpost"]).contains(config),
        "the config is not a conffile"
    );
    assert_eq!(mode("/var/lib/watchpost"), 0o700);
    assert_ne!(watchpost, 0);
    assert_eq!(
        std::fs::metadata("/var/lib/watchpost").unwrap().uid(),
        watchpost
    );
    let passwd = must("getent", &["passwd", "watchpost"]);
    assert!(passwd.trim_end().ends_with("/usr/sbin/nologin"), "{passwd}");
    // The postgres group (which reads the server's data) only when asked.
    let groups = must("id", &["-nG", "watchpost"]);
    assert!(
        !groups.split_whitespace().any(|g| g == "postgres"),
        "{groups}"
    );
    for file in [
        "/usr/share/man/man1/watchpost.1.gz",
        "/usr/share/bash-completion/completions/watchpost",
    ] {
        assert!(Path::new(file).exists(), "{file} is missing");
    }
    let unit = "/usr/lib/systemd/system/watchpost.service";
    let verify = must("systemd-analyze", &["verify", unit]);
    assert!(!verify.contains("watchpost.service:"), "{verify}");
    let unit_text = std::fs::read_to_string(unit).unwrap();
    for line in [
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/watchpost",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        // The cluster watchdog must outlive a crashed agent.
        "KillMode=process",
    ] {
        assert!(unit_text.contains(line), "{line} not in the unit");
    }
    must("/usr/bin/watchpost", &["validate", "-c", config]);
    // A root validate beside the service leaves nothing of root's there.
    let roots = must(
        "find",
        &["/var/lib/watchpost", "-mindepth", "1", "-user", "root"],
    );
    assert!(roots.trim().is_empty(), "root's files left: {roots}");
    // Modes of /etc/watchpost are set on the first install only.
    std::fs::set_permissions("/etc/watchpost", std::fs::Permissions::from_mode(0o755)).unwrap();
    must("dpkg", &["-i", deb]);
    assert_eq!(mode("/etc/watchpost"), 0o755, "an upgrade reset the mode");
    std::fs::set_permissions("/etc/watchpost", std::fs::Permissions::from_mode(0o750)).unwrap();

    // The packaged config, as the service runs it (its port may be taken
    // by another test's agent: the same file on a free port then).
    let port = watchpost_e2e::port::free_port();
    let text = std::fs::read_to_string(config).unwrap();
    let copy = "/etc/watchpost/test-copy.toml";
    std::fs::write(
        copy,
        text.replace("127.0.0.1:9464", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    must("chown", &["root:watchpost", copy]);
    std::fs::set_permissions(copy, std::fs::Permissions::from_mode(0o640)).unwrap();
    // A root run on the service's state directory is refused before it
    // writes anything, naming the fix.
    let (ok, text) = sh("/usr/bin/watchpost", &["run", "-c", copy]);
    assert!(!ok, "a root run on the service's state directory started");
    assert!(
        text.contains("belongs to user watchpost") && text.contains("sudo -u watchpost"),
        "{text}"
    );
    let roots = must(
        "find",
        &["/var/lib/watchpost", "-mindepth", "1", "-user", "root"],
    );
    assert!(roots.trim().is_empty(), "root's files left: {roots}");
    // `setpriv` execs the agent in its own process, so that killing the
    // child kills the agent (`runuser` forks it: killed, it left the
    // packaged agent running on the machine after every run).
    let mut agent = Command::new("setpriv")
        .args([
            "--reuid=watchpost",
            "--regid=watchpost",
            "--init-groups",
            "--",
            "/usr/bin/watchpost",
            "run",
            "-c",
            copy,
        ])
        .env("HOME", "/var/lib/watchpost")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    let healthy = loop {
        if ureq::get(&url).call().is_ok_and(|r| r.status() == 200) {
            break true;
        }
        if Instant::now() > deadline || agent.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = agent.kill();
    let _ = agent.wait();
    std::fs::remove_file(copy).unwrap();
    assert!(healthy, "the installed agent did not answer {url}");
    // It wrote its state where the unit lets it, as its own user.
    let cache = std::fs::read_dir("/var/lib/watchpost").unwrap().count();
    assert!(cache > 0, "nothing in /var/lib/watchpost");

    must("dpkg", &["-r", "watchpost"]);
    assert!(!Path::new("/usr/bin/watchpost").exists());
    assert!(Path::new(config).exists(), "dpkg -r removed the conffile");
    must("dpkg", &["-P", "watchpost"]);
    assert!(!Path::new(config).exists(), "dpkg -P kept the conffile");
    assert!(!Path::new("/var/lib/watchpost").exists());
}
