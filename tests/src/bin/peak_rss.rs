//! `peak_rss OUT PROGRAM ARGS...`: runs PROGRAM, writes its peak resident
//! set size in KiB to the file OUT, and exits with PROGRAM's exit code
//! (128 + the signal if a signal ended it), like GNU time's `%M`.
//!
//! Why a process of its own: Linux records the spawning process's memory
//! high-water mark into the child's `ru_maxrss` when the child execs
//! (`exec_mmap` keeps the old address space's peak), so a child spawned
//! straight from the test process, whose many threads and buffers can
//! reach hundreds of MiB, reports the test's peak instead of its own. This
//! helper is small, so what it passes on is a few MiB.

use std::process::{Command, exit};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: peak_rss OUT PROGRAM [ARGS...]");
        exit(2);
    };
    let child = Command::new(&program)
        .args(args)
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("peak_rss: cannot run {}: {e}", program.to_string_lossy());
            exit(127);
        });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not yet reaped; status and usage are valid.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        eprintln!("peak_rss: wait4: {}", std::io::Error::last_os_error());
        exit(125);
    }
    std::mem::forget(child);
    if let Err(e) = std::fs::write(&out, usage.ru_maxrss.to_string()) {
        eprintln!("peak_rss: cannot write {}: {e}", out.to_string_lossy());
        exit(125);
    }
    exit(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    });
}
