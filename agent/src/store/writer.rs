//! Batching of state writes: runs hand their new state to the writer and go
//! on; the writer keeps the latest state per probe and, once per flush
//! interval (`[agent] state_flush`, default [`FLUSH_EVERY`]), appends what
//! every changed probe gained to the journal ([`super::journal`]) in one
//! write and one `fdatasync`. A change that something acts on (a hard
//! state, a threshold rule or flapping changed: `urgent`) is written at
//! once to the probe's own file (durably, [`super::atomic`]) and
//! [`StateWriter::save`] reports when it is on disk, so remediation never
//! acts on a state a crash could take back. At shutdown ([`StateWriter::flush`])
//! every changed probe's own file is rewritten too. A probe run never waits
//! on the disk, except for an urgent change. `T` is what is saved per probe
//! (the policy's probe state).

use super::Store;
use super::journal::{self, Journal, Journaled};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Longest time a changed state waits in memory by default.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

enum Message<T> {
    Save {
        probe: String,
        state: Box<T>,
        /// Urgent: write now and say when it is on disk.
        done: Option<oneshot::Sender<()>>,
    },
    Flush(oneshot::Sender<()>),
}

/// Handle to the writer task. Cheap to clone.
pub struct StateWriter<T> {
    sender: mpsc::UnboundedSender<Message<T>>,
    /// The latest state of every probe as last written.
    written: Arc<Mutex<BTreeMap<String, T>>>,
}

impl<T> Clone for StateWriter<T> {
    fn clone(&self) -> Self {
        StateWriter {
            sender: self.sender.clone(),
            written: self.written.clone(),
        }
    }
}

impl<T: Journaled> StateWriter<T> {
    /// Start the writer task for `store`, whose states (as loaded by
    /// [`Store::load_all`]) are `states`, of which `stale` have an older
    /// own file; soft changes are flushed every `every`.
    pub fn start(
        store: Store,
        states: BTreeMap<String, T>,
        stale: Vec<String>,
        every: Duration,
    ) -> StateWriter<T> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let written = Arc::new(Mutex::new(states));
        let task = Task {
            journal: Journal::new(store.dir()),
            store,
            written: written.clone(),
            pending: HashMap::new(),
            own_files: stale.into_iter().collect(),
        };
        tokio::spawn(run(task, receiver, every.max(Duration::from_millis(10))));
        StateWriter { sender, written }
    }

    /// Queue `state` for `probe`. `urgent` writes it at once: the returned
    /// receiver fires when it is on disk (or when the writer is gone).
    pub fn save(&self, probe: &str, state: &T, urgent: bool) -> Option<oneshot::Receiver<()>> {
        let (done, wait) = if urgent {
            let (done, wait) = oneshot::channel();
            (Some(done), Some(wait))
        } else {
            (None, None)
        };
        let _ = self.sender.send(Message::Save {
            probe: probe.to_string(),
            state: Box::new(state.clone()),
            done,
        });
        wait
    }

    /// The state of `probe` as last written (for a probe added back by a
    /// reload).
    pub fn latest(&self, probe: &str) -> Option<T> {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(probe)
            .cloned()
    }

    /// Write everything queued, and every changed probe's own file;
    /// returns when it is on disk (at shutdown).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

struct Task<T> {
    store: Store,
    journal: Journal,
    written: Arc<Mutex<BTreeMap<String, T>>>,
    /// Changed since the last flush.
    pending: HashMap<String, T>,
    /// Probes whose own file is older than their journal records.
    own_files: HashSet<String>,
}

async fn run<T: Journaled>(
    mut task: Task<T>,
    mut receiver: mpsc::UnboundedReceiver<Message<T>>,
    every: Duration,
) {
    // Armed only while something waits to be written: an idle agent has
    // no timer here.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let mut urgent = Vec::new();
        let mut flush = None;
        tokio::select! {
            message = receiver.recv() => match message {
                Some(message) => task.take(message, &mut urgent, &mut flush),
                None => {
                    write(task, Vec::new(), true).await;
                    return;
                }
            },
            _ = sleep => {}
        }
        // Take whatever else is already queued.
        while let Ok(message) = receiver.try_recv() {
            task.take(message, &mut urgent, &mut flush);
        }
        let timer_due = deadline.is_some_and(|at| at <= tokio::time::Instant::now());
        if urgent.is_empty() && flush.is_none() && !timer_due {
            if deadline.is_none() && !task.pending.is_empty() {
                deadline = Some(tokio::time::Instant::now() + every);
            }
            continue;
        }
        task = write(task, urgent, flush.is_some()).await;
        deadline = None;
        for done in flush.into_iter().flatten() {
            let _ = done.send(());
        }
    }
}

impl<T: Journaled> Task<T> {
    fn take(
        &mut self,
        message: Message<T>,
        urgent: &mut Vec<(String, oneshot::Sender<()>)>,
        flush: &mut Option<Vec<oneshot::Sender<()>>>,
    ) {
        match message {
            Message::Save { probe, state, done } => {
                if let Some(done) = done {
                    urgent.push((probe.clone(), done));
                }
                self.pending.insert(probe, *state);
            }
            Message::Flush(done) => flush.get_or_insert_with(Vec::new).push(done),
        }
    }
}

/// On a blocking thread: the urgent probes' own files, the journal record
/// of every other changed probe, a compaction when due, and with `all`,
/// every changed probe's own file.
async fn write<T: Journaled>(
    mut task: Task<T>,
    urgent: Vec<(String, oneshot::Sender<()>)>,
    all: bool,
) -> Task<T> {
    let joined = tokio::task::spawn_blocking(move || {
        task.write_now(urgent, all);
        task
    })
    .await;
    match joined {
        Ok(task) => task,
        Err(e) => {
            tracing::error!("the state writer failed: {e}");
            std::process::abort()
        }
    }
}

impl<T: Journaled> Task<T> {
    fn write_now(&mut self, urgent: Vec<(String, oneshot::Sender<()>)>, all: bool) {
        let pending = std::mem::take(&mut self.pending);
        let shared = self.written.clone();
        let mut written = shared.lock().unwrap_or_else(|e| e.into_inner());
        let urgent_names: HashSet<&str> = urgent.iter().map(|(p, _)| p.as_str()).collect();
        let mut records = Vec::new();
        for (probe, state) in &pending {
            if urgent_names.contains(probe.as_str()) || all {
                self.save_own(probe, state);
            } else {
                let since = written.get(probe).map_or(0, |s| s.seq());
                if let Err(e) = journal::record(&mut records, probe, state, since) {
                    tracing::error!(probe, "cannot encode the state of probe {probe}: {e}");
                }
                self.own_files.insert(probe.clone());
            }
        }
        if let Err(e) = self.journal.append(&records) {
            tracing::error!(
                "cannot write the state journal in {}: {e}",
                self.store.dir().display()
            );
        }
        for (probe, state) in pending {
            written.insert(probe, state);
        }
        for (_, done) in urgent {
            let _ = done.send(());
        }
        if all {
            // Probes changed earlier that only the journal holds.
            for probe in std::mem::take(&mut self.own_files) {
                if let Some(state) = written.get(&probe) {
                    self.save_own(&probe, state);
                }
            }
            if self.own_files.is_empty()
                && let Err(e) = self.journal.clear()
            {
                tracing::error!(
                    "cannot clear the state journal in {}: {e}",
                    self.store.dir().display()
                );
            }
            return;
        }
        if self.journal.wants_compaction()
            && let Err(e) = self.journal.compact(&written)
        {
            tracing::error!(
                "cannot write the state snapshot in {}: {e}",
                self.store.dir().display()
            );
        }
    }

    fn save_own(&mut self, probe: &str, state: &T) {
        self.own_files.remove(probe);
        if let Err(e) = self.store.save_probe(probe, state) {
            // Keep the journal: it still holds this probe's state.
            self.own_files.insert(probe.to_string());
            tracing::error!(
                probe,
                "cannot write the state of probe {probe} to {}: {e}",
                self.store.dir().display()
            );
        }
    }
}
