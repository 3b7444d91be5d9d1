//! Batching of state writes: runs hand their new state to the writer and go
//! on; the writer keeps the latest state per probe and writes it within
//! [`FLUSH_EVERY`], or at once when the hard state changed, on a blocking
//! thread. So a thousand probes cost at most one write per probe per second,
//! and a probe run never waits on the disk.

use super::Store;
use crate::policy::state::ProbeState;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Longest time a changed state waits in memory.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

enum Message {
    Save {
        probe: String,
        state: Box<ProbeState>,
        urgent: bool,
    },
    Flush(oneshot::Sender<()>),
}

/// Handle to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct StateWriter {
    sender: mpsc::UnboundedSender<Message>,
}

impl StateWriter {
    /// Start the writer task for `store`.
    pub fn start(store: Store) -> StateWriter {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(store, receiver));
        StateWriter { sender }
    }

    /// Queue `state` for `probe`; `urgent` writes it without waiting.
    pub fn save(&self, probe: &str, state: &ProbeState, urgent: bool) {
        let _ = self.sender.send(Message::Save {
            probe: probe.to_string(),
            state: Box::new(state.clone()),
            urgent,
        });
    }

    /// Write everything queued; returns when it is on disk.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(store: Store, mut receiver: mpsc::UnboundedReceiver<Message>) {
    let mut pending: BTreeMap<String, ProbeState> = BTreeMap::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut waiter = None;
        tokio::select! {
            message = receiver.recv() => match message {
                Some(Message::Save { probe, state, urgent }) => {
                    pending.insert(probe, *state);
                    if !urgent {
                        continue;
                    }
                }
                Some(Message::Flush(done)) => waiter = Some(done),
                None => {
                    write_all(&store, std::mem::take(&mut pending)).await;
                    return;
                }
            },
            _ = tick.tick() => {}
        }
        // Take whatever else is already queued, then write it all.
        while let Ok(message) = receiver.try_recv() {
            match message {
                Message::Save { probe, state, .. } => {
                    pending.insert(probe, *state);
                }
                Message::Flush(done) => {
                    if let Some(previous) = waiter.replace(done) {
                        let _ = previous.send(());
                    }
                }
            }
        }
        write_all(&store, std::mem::take(&mut pending)).await;
        if let Some(done) = waiter {
            let _ = done.send(());
        }
    }
}

async fn write_all(store: &Store, pending: BTreeMap<String, ProbeState>) {
    if pending.is_empty() {
        return;
    }
    let store = store.clone();
    let result = tokio::task::spawn_blocking(move || {
        for (probe, state) in pending {
            if let Err(e) = store.save_probe(&probe, &state) {
                tracing::error!(
                    probe,
                    "cannot write the state of probe {probe} to {}: {e}",
                    store.dir().display()
                );
            }
        }
    })
    .await;
    if let Err(e) = result {
        tracing::error!("the state writer failed: {e}");
    }
}
