//! Batching of state writes: runs hand their new state to the writer and go
//! on; the writer keeps the latest state per probe and writes it within
//! [`FLUSH_EVERY`], or at once when the hard state changed, on a blocking
//! thread. So a thousand probes cost at most one write per probe per second,
//! and a probe run never waits on the disk. `T` is what is saved per probe
//! (the policy's probe state).

use super::Store;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Longest time a changed state waits in memory.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

enum Message<T> {
    Save {
        probe: String,
        state: Box<T>,
        urgent: bool,
    },
    Flush(oneshot::Sender<()>),
}

/// Handle to the writer task. Cheap to clone.
pub struct StateWriter<T> {
    sender: mpsc::UnboundedSender<Message<T>>,
}

impl<T> Clone for StateWriter<T> {
    fn clone(&self) -> Self {
        StateWriter {
            sender: self.sender.clone(),
        }
    }
}

impl<T: Serialize + Clone + Send + 'static> StateWriter<T> {
    /// Start the writer task for `store`.
    pub fn start(store: Store) -> StateWriter<T> {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(store, receiver));
        StateWriter { sender }
    }

    /// Queue `state` for `probe`; `urgent` writes it without waiting.
    pub fn save(&self, probe: &str, state: &T, urgent: bool) {
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

async fn run<T: Serialize + Send + 'static>(
    store: Store,
    mut receiver: mpsc::UnboundedReceiver<Message<T>>,
) {
    let mut pending: BTreeMap<String, T> = BTreeMap::new();
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

async fn write_all<T: Serialize + Send + 'static>(store: &Store, pending: BTreeMap<String, T>) {
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
