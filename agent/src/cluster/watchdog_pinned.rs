//! A process pinned by a pidfd, for the watchdog: the server it fences
//! and the watchdog an earlier run left ([`super::orphan`]) are signalled
//! through it, never by a pid that may have been reused.

/// The process `pid` pinned by a pidfd (Linux 5.3+), so that a signal
/// sent through it reaches that process or nothing, even if it exits and
/// its pid is reused between the checks and the signal.
pub(super) struct Pinned {
    pid: i32,
    pub(super) fd: Option<std::os::fd::OwnedFd>,
}

impl Pinned {
    pub(super) fn open(pid: i32) -> Pinned {
        use std::os::fd::FromRawFd;
        // SAFETY: pidfd_open(2) takes a pid and flags; a non-negative
        // result is a new file descriptor that this value owns.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        Pinned {
            pid,
            // SAFETY: see above; -1 (ENOSYS on an old kernel) is no fd.
            fd: (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }),
        }
    }

    /// Send `signal`: through the pidfd, or kill(2) without one.
    pub(super) fn signal(&self, signal: i32) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let result = match &self.fd {
            // SAFETY: pidfd_send_signal(2) on our own pidfd, no siginfo.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            },
            // SAFETY: kill(2) on the checked pid.
            None => libc::c_long::from(unsafe { libc::kill(self.pid, signal) }),
        };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Still running (not exited, not a zombie). Only ESRCH says a process
    /// is gone: EPERM (a process the agent may not signal) and any other
    /// failure of signal 0 leave it alive, so that a fence never reports a
    /// server it cannot reach as "already gone".
    pub(super) fn alive(&self) -> bool {
        match self.signal(0) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => false,
            _ => alive(self.pid),
        }
    }
}

/// Whether `pid` runs, by the one rule of [`crate::pgserver::postmaster`]:
/// only ESRCH (or a zombie) is gone; EPERM means it exists.
fn alive(pid: i32) -> bool {
    use crate::pgserver::postmaster::{Liveness, pid_liveness};
    u32::try_from(pid).is_ok_and(|pid| pid_liveness(pid) == Liveness::Alive)
}
