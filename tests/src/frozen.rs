//! A process frozen (SIGSTOP) for as long as a value lives: dropped (the
//! test's end, or a failed assertion's unwinding) it goes on (SIGCONT), so
//! that no test leaves an agent or a server stopped behind it.

/// A process frozen until dropped.
pub struct Frozen(i32);

impl Frozen {
    /// Freeze `pid` (a process the test started or read from /proc).
    pub fn new(pid: i32) -> Frozen {
        // SAFETY: kill(2) has no memory preconditions.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}
