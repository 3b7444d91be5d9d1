//! After a pair failover (MariaDB or Redis), the old primary is watched
//! in a task of its own until it comes back and is made a replica of the
//! new one, or until `rejoin_within` passes. The engines differ in what a
//! try is (`mysql_failover::rejoin`, `redis_failover::rejoin`); the
//! watch around it — the poll, the deadline, stopping with the agent and
//! the one audit record of the outcome under the failover's incident —
//! is this module's, so that both engines keep the same promises.

use super::Remediator;
use super::step::Step;
use super::trigger::{Incident, record_of};
use crate::events::Decision;
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One try at the old primary.
pub enum Attempt {
    /// Done: the outcome to record (rejoined, or a failure no later try
    /// can mend, such as a missing grant).
    Done(Step),
    /// Not yet (it does not answer, or a try failed in a way the next one
    /// may not): why, when there is something new to say.
    NotYet(Option<String>),
}

/// A try, made afresh each poll (it reads the live config each time).
pub type Try = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = Attempt> + Send>> + Send>;

/// The watch's timing and its last word.
pub struct Watch {
    /// How long the old primary may take to come back (`rejoin_within`).
    pub within: Duration,
    /// How often it is tried while it is away.
    pub poll: Duration,
    /// The failed step recorded when `within` passes, given the reason of
    /// the last try that said one (`"it never answered"` when none did).
    pub gave_up: Box<dyn FnOnce(String) -> Step + Send>,
}

/// Watch in a task of its own (ended by the agent's stop): try every
/// `poll` until a try is [`Attempt::Done`] or `within` passes, then
/// record the outcome as the incident's `rejoin` step (`Decision::Step`
/// when it is ok, `Decision::Failed` otherwise). Nothing is spawned when
/// `within` is zero (the rejoin is off).
pub fn spawn(core: &Arc<Remediator>, incident: Incident, watch: Watch, attempt: Try) {
    if watch.within.is_zero() {
        return;
    }
    let task_core = core.clone();
    core.actions.spawn(async move {
        let core = task_core;
        let stopping = core.stopping.clone();
        tokio::select! {
            _ = stopping.cancelled() => {}
            step = run(watch, attempt) => {
                let decision = if step.ok { Decision::Step } else { Decision::Failed };
                core.record(record_of(
                    &core,
                    &incident,
                    decision,
                    Some("rejoin"),
                    format!("rejoin: {}", step.message),
                    json!({"ok": step.ok, "detail": step.detail}),
                ));
            }
        }
    });
}

/// The poll itself: the first `Done`, or the watch's `gave_up` once
/// `within` has passed.
async fn run(watch: Watch, mut attempt: Try) -> Step {
    let started = Instant::now();
    let mut last = String::from("it never answered");
    loop {
        match attempt().await {
            Attempt::Done(step) => return step,
            Attempt::NotYet(Some(why)) => last = why,
            Attempt::NotYet(None) => {}
        }
        if started.elapsed() >= watch.within {
            return (watch.gave_up)(last);
        }
        tokio::time::sleep(watch.poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn gave_up() -> Box<dyn FnOnce(String) -> Step + Send> {
        Box::new(|last| Step::failed("rejoin", format!("gave up ({last})"), Value::Null))
    }

    #[tokio::test]
    async fn the_first_done_try_ends_the_watch() {
        let tries = Arc::new(AtomicUsize::new(0));
        let counted = tries.clone();
        let attempt: Try = Box::new(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n < 2 {
                    Attempt::NotYet(None)
                } else {
                    Attempt::Done(Step::ok("rejoin", "rejoined", Value::Null))
                }
            })
        });
        let watch = Watch {
            within: Duration::from_secs(60),
            poll: Duration::from_millis(1),
            gave_up: gave_up(),
        };
        let step = run(watch, attempt).await;
        assert!(step.ok, "{}", step.message);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn past_the_deadline_it_gives_up_with_the_last_reason() {
        let attempt: Try = Box::new(|| {
            Box::pin(async { Attempt::NotYet(Some("the link did not come up".into())) })
        });
        let watch = Watch {
            within: Duration::from_millis(20),
            poll: Duration::from_millis(1),
            gave_up: gave_up(),
        };
        let step = run(watch, attempt).await;
        assert!(!step.ok);
        assert_eq!(step.message, "gave up (the link did not come up)");
    }

    #[tokio::test]
    async fn a_try_that_never_answers_names_that() {
        let attempt: Try = Box::new(|| Box::pin(async { Attempt::NotYet(None) }));
        let watch = Watch {
            within: Duration::from_millis(20),
            poll: Duration::from_millis(1),
            gave_up: gave_up(),
        };
        let step = run(watch, attempt).await;
        assert_eq!(step.message, "gave up (it never answered)");
    }
}
