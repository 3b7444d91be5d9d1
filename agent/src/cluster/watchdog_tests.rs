//! Tests of the watchdog's pieces that need no PostgreSQL: its clock
//! (CLOCK_BOOTTIME), a pinned process signalled once and never again, a
//! data directory without a server left alone.

use super::*;

#[test]
fn instants_map_onto_the_boottime_clock() {
    let now = clock::boottime_ns();
    let later = instant_ns(Instant::now() + Duration::from_secs(2));
    assert!((now + 1_900_000_000..now + 2_100_000_000).contains(&later));
    let earlier = instant_ns(Instant::now() - Duration::from_millis(10));
    assert!(earlier < clock::boottime_ns());
}

#[test]
fn a_pinned_process_is_signalled_and_once_gone_never_again() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pinned = Pinned::open(child.id() as i32);
    assert!(
        pinned.fd.is_some(),
        "pidfd_open is on every kernel since 5.3"
    );
    assert!(pinned.alive());
    pinned.signal(libc::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM)
    );
    // Reaped: its pid may belong to another process from now on, but
    // the pidfd still names the one that exited.
    assert!(!pinned.alive());
    assert_eq!(
        pinned.signal(libc::SIGKILL).unwrap_err().raw_os_error(),
        Some(libc::ESRCH)
    );
}

#[test]
fn a_data_directory_without_a_server_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (stopped, what) = fence(dir.path(), &ServerProcess::postgres()).unwrap();
    assert!(!stopped, "{what}");
    // A postmaster.pid naming a process that is not this server (this
    // test, running elsewhere) is not signalled.
    std::fs::write(
        dir.path().join("postmaster.pid"),
        format!("{}\n{}\n", std::process::id(), dir.path().display()),
    )
    .unwrap();
    let refused = fence(dir.path(), &ServerProcess::postgres());
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("is not this server")),
        "{refused:?}"
    );
}
