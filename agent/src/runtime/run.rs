//! One run of a probe: a fresh `Store` with a deadline and a memory cap,
//! the call, and the sorting of every way it can end into a report —
//! including a panic in the agent's own code on the run's path, which ends
//! the run as a failed one instead of taking its task (and the probe's
//! in-flight flag) down with it.

use super::bindings::ProbePre;
use super::output;
use super::state::RunState;
use super::{Grants, Limits, ProbeInfo, Services};
use crate::config::units::human_bytes;
use crate::report::{ErrorKind, Report, RunError};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Store, Trap, UpdateDeadline};

/// Extra time past the deadline before a run stuck in a host call is
/// abandoned (code running in the sandbox is stopped at the deadline itself).
const GRACE: Duration = Duration::from_millis(20);

/// How long the `describe` call at load time may take; it runs under the
/// probe's own memory cap.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

fn new_store(
    pre: &ProbePre<RunState>,
    grants: &Arc<Grants>,
    services: &Arc<Services>,
    limits: Limits,
) -> (Store<RunState>, Instant) {
    let started = Instant::now();
    // A timeout past what the clock can hold (config keeps it within
    // `units::SCHEDULE`) ends the run at once as timed out, never panics.
    let deadline = started.checked_add(limits.timeout).unwrap_or(started);
    let state = RunState::new(grants.clone(), services.clone(), limits.memory, deadline);
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|state| &mut state.limiter);
    // What the host may copy out of the probe in one call (a statement and
    // its parameters, a log line, the report itself) is bounded by the
    // probe's own cap rather than wasmtime's fixed 128 MiB: the host never
    // allocates more on a probe's behalf than the probe could hold.
    store.set_hostcall_fuel(usize::try_from(limits.memory).unwrap_or(usize::MAX));
    // Every epoch tick past the deadline check: stop at the deadline,
    // otherwise yield to the executor so a busy probe does not hog a thread.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    (store, started)
}

/// Sort a wasmtime error from instantiation or a call into an error kind.
fn classify(error: wasmtime::Error, store: &Store<RunState>, timeout: Duration) -> RunError {
    let state = store.data();
    if let Some(asked) = state.limiter.exceeded() {
        return RunError::new(
            ErrorKind::Memory,
            format!(
                "the probe tried to use {} of memory; its limit is {} (raise `memory` in its config if this is expected)",
                human_bytes(asked),
                human_bytes(state.limiter.cap())
            ),
        );
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return timed_out(timeout);
    }
    let stderr = state.stderr.text();
    if let Some(exception) = python_exception(&stderr) {
        return RunError::new(ErrorKind::Trap, exception);
    }
    if let Some(panic) = rust_panic(&stderr) {
        return RunError::new(ErrorKind::Trap, panic);
    }
    let mut message = match error.downcast_ref::<Trap>() {
        Some(trap) => format!("the probe trapped: {trap}"),
        None => format!("the probe failed: {}", first_line(&format!("{error:#}"))),
    };
    if !stderr.is_empty() {
        message.push_str("; it wrote to stderr: ");
        message.push_str(crate::util::truncate_utf8(&stderr, 1024));
    }
    RunError::new(ErrorKind::Trap, message)
}

/// A panic in the agent (a host call, say) while it ran the probe: the run
/// fails as a trap, named as the agent's fault, and the agent goes on.
fn agent_panic(payload: &(dyn std::any::Any + Send)) -> RunError {
    let message = crate::util::panic_message(payload);
    tracing::error!("the agent panicked while running a probe: {message}");
    RunError::new(
        ErrorKind::Trap,
        format!(
            "the agent failed while running the probe ({message}); this is a bug in watchpost, \
             please report it"
        ),
    )
}

fn timed_out(timeout: Duration) -> RunError {
    RunError::new(
        ErrorKind::Timeout,
        format!("the probe did not finish within its timeout of {timeout:?}"),
    )
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// A Rust panic's message and location from what the probe printed to
/// stderr (`thread '<unnamed>' panicked at src/lib.rs:12:9:\nMESSAGE`).
fn rust_panic(stderr: &str) -> Option<String> {
    let start = stderr.rfind("panicked at ")?;
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n")?;
    let message: Vec<&str> = message
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .filter(|l| !l.is_empty())
        .collect();
    let message = crate::util::truncate_utf8(&message.join(" "), 1024).to_string();
    Some(format!("the probe panicked: {message} (at {location})"))
}

/// An uncaught Python exception and where it was raised, from the
/// traceback a componentize-py probe prints to stderr before it traps:
/// `Traceback (most recent call last):\n  File "/0/app.py", line 9, in check\n
/// ...\nKeyError: 'x'`.
fn python_exception(stderr: &str) -> Option<String> {
    let start = stderr.rfind("Traceback (most recent call last):")?;
    let traceback = &stderr[start..];
    // The interpreter's own panic follows the traceback.
    let traceback = traceback
        .find("\nthread '")
        .map_or(traceback, |end| &traceback[..end]);
    let lines: Vec<&str> = traceback
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let exception = lines.last().filter(|l| !l.starts_with("Traceback"))?;
    let location = lines.iter().rev().find(|l| l.starts_with("File "));
    let exception = crate::util::truncate_utf8(exception, 1024);
    Some(match location {
        Some(location) => format!("the probe raised {exception} ({location})"),
        None => format!("the probe raised {exception}"),
    })
}

/// Run the probe's `check` once.
pub async fn check(
    pre: &ProbePre<RunState>,
    grants: &Arc<Grants>,
    services: &Arc<Services>,
    limits: Limits,
) -> Report {
    let (mut store, started) = new_store(pre, grants, services, limits);
    let call = async {
        let probe = pre.instantiate_async(&mut store).await?;
        probe.call_check(&mut store).await
    };
    let call = AssertUnwindSafe(call).catch_unwind();
    let result = tokio::time::timeout(limits.timeout.saturating_add(GRACE), call).await;
    let duration = started.elapsed();
    log_output(grants, store.data());
    let peak = store.data().limiter.peak();
    let outcome = match result {
        Err(_elapsed) => Err(timed_out(limits.timeout)),
        Ok(Err(panic)) => Err(agent_panic(panic.as_ref())),
        Ok(Ok(Err(error))) => Err(classify(error, &store, limits.timeout)),
        Ok(Ok(Ok(Err(message)))) => Err(RunError::new(
            ErrorKind::Probe,
            output::clip_message(&message),
        )),
        Ok(Ok(Ok(Ok(report)))) => output::check(report),
    };
    // A refused capability decides the outcome, whatever the probe did with
    // the error it got.
    let outcome = match store.data().denied.clone() {
        Some(denied) => Err(RunError::new(ErrorKind::Denied, denied)),
        None => outcome,
    };
    // So does a failure of the agent's own, and a host call that held more
    // than the probe's memory cap on its behalf.
    let state = store.data();
    let outcome = match (&state.agent_fault, state.limiter.exceeded()) {
        (Some(fault), _) => Err(RunError::new(ErrorKind::Agent, fault.clone())),
        (None, Some(_)) => Err(classify(
            wasmtime::Error::msg("memory cap exceeded"),
            &store,
            limits.timeout,
        )),
        _ => outcome,
    };
    match outcome {
        Ok(checked) => Report {
            status: checked.status,
            message: checked.message,
            measurements: checked.measurements,
            error: None,
            duration,
            peak_memory: peak,
        },
        Err(error) => Report::failed(error, duration, peak),
    }
}

/// Put what the probe printed, and how many log lines it lost, in the
/// agent's log (debug level: `log` is the probe's proper channel).
fn log_output(grants: &Grants, state: &RunState) {
    let probe = grants.name.as_str();
    for (stream, tail) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
        let text = tail.text();
        if !text.is_empty() {
            tracing::debug!(target: "probe", probe, stream, "{text}");
        }
    }
    if state.log_dropped > 0 {
        tracing::warn!(
            target: "probe",
            probe,
            "dropped {} log lines over the limit of one run",
            state.log_dropped
        );
    }
}

/// Call `describe` once, at load time, under memory cap `cap` (bytes); its
/// output is checked like a report's ([`super::output::info`]).
pub async fn describe(
    pre: &ProbePre<RunState>,
    services: &Arc<Services>,
    cap: u64,
) -> Result<ProbeInfo, RunError> {
    let limits = Limits {
        timeout: DESCRIBE_TIMEOUT,
        memory: cap,
    };
    let grants = Arc::new(Grants {
        name: "describe".into(),
        ..Grants::default()
    });
    let (mut store, _) = new_store(pre, &grants, services, limits);
    let call = async {
        let probe = pre.instantiate_async(&mut store).await?;
        probe.call_describe(&mut store).await
    };
    let call = AssertUnwindSafe(call).catch_unwind();
    let limit = DESCRIBE_TIMEOUT.saturating_add(GRACE);
    let info = match tokio::time::timeout(limit, call).await {
        Err(_) => return Err(timed_out(DESCRIBE_TIMEOUT)),
        Ok(Err(panic)) => return Err(agent_panic(panic.as_ref())),
        Ok(Ok(Err(error))) => return Err(classify(error, &store, DESCRIBE_TIMEOUT)),
        Ok(Ok(Ok(info))) => info,
    };
    super::output::info(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_panics_are_read_from_stderr() {
        let stderr = "thread '<unnamed>' (1) panicked at src/lib.rs:12:9:\nboom\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";
        assert_eq!(
            rust_panic(stderr).unwrap(),
            "the probe panicked: boom (at src/lib.rs:12:9)"
        );
        assert_eq!(rust_panic("just some output"), None);
    }

    #[test]
    fn python_exceptions_are_read_from_the_traceback() {
        let stderr = "Traceback (most recent call last):\n  File \"/0/app.py\", line 9, in check\n\
                      \x20   return d[\"x\"]\nKeyError: 'missing-key'\n\n\
                      thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n\
                      Python function threw an unexpected exception\n";
        assert_eq!(
            python_exception(stderr).unwrap(),
            "the probe raised KeyError: 'missing-key' (File \"/0/app.py\", line 9, in check)"
        );
        assert_eq!(python_exception("thread panicked at x:\nboom"), None);
    }
}
