//! The one thread that forks every drill server. A drill server is
//! started with `PR_SET_PDEATHSIG`, which Linux fires when the *thread*
//! that forked it exits, not the process (prctl(2)): forked from a tokio
//! blocking-pool thread, which retires after 10 s idle, the server would
//! be killed mid-drill; forked from a runtime worker, it would die with
//! that runtime. So drill servers are forked here, on a thread that lives
//! as long as the agent: the death signal then means "the agent died".

use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

/// Work for the forking thread.
type Job = Box<dyn FnOnce() + Send>;

/// The forking thread's queue (started on first use, never ended).
fn queue() -> Result<&'static Sender<Job>, String> {
    static QUEUE: OnceLock<Sender<Job>> = OnceLock::new();
    if let Some(queue) = QUEUE.get() {
        return Ok(queue);
    }
    let (send, receive) = channel::<Job>();
    std::thread::Builder::new()
        .name("drill-forker".into())
        .spawn(move || {
            for job in receive {
                job();
            }
        })
        .map_err(|e| format!("cannot start the drill's forking thread: {e}"))?;
    // A racing first use may have set it meanwhile: its thread serves
    // the queue, and this one's idles (its sender is dropped, so it ends).
    Ok(QUEUE.get_or_init(|| send))
}

/// Spawn `command` on the forking thread, registered with the caller's
/// tokio runtime (its child is reaped and awaited there). Blocks the
/// caller for the fork and exec only. Errors: the spawn's own (program
/// missing, not executable), or the forking thread gone (never expected).
pub fn spawn(mut command: tokio::process::Command) -> Result<tokio::process::Child, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "a drill server must be started from the agent's runtime".to_string())?;
    let (answer, answered) = channel();
    let job: Job = Box::new(move || {
        let _inside = runtime.enter();
        let _ = answer.send(command.spawn());
    });
    queue()?
        .send(job)
        .map_err(|_| "the drill's forking thread has ended".to_string())?;
    answered
        .recv()
        .map_err(|_| "the drill's forking thread has ended".to_string())?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server is forked by the lasting thread, not the caller: a
    /// caller thread that ends at once (as a blocking-pool thread does)
    /// leaves it running.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_server_outlives_the_thread_that_asked_for_it() {
        let runtime = tokio::runtime::Handle::current();
        let child = std::thread::spawn(move || {
            let _inside = runtime.enter();
            let mut command = tokio::process::Command::new("sleep");
            command.arg("30").kill_on_drop(true);
            // SAFETY: prctl is async-signal-safe and touches no memory of ours.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            spawn(command).expect("spawn sleep")
        })
        .join()
        .expect("the asking thread");
        // The asking thread has ended; give a death signal time to land.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut child = child;
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the server died with the thread that asked for it"
        );
        child.kill().await.expect("kill");
    }

    #[test]
    fn outside_a_runtime_it_says_so() {
        let err = spawn(tokio::process::Command::new("true")).unwrap_err();
        assert!(err.contains("agent's runtime"), "{err}");
    }
}
