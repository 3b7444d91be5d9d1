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
//!
//! A soft save costs a run little: the state is copied into a shared queue
//! (into the previous copy's memory when the probe is already queued) and
//! the writer task is woken only by the first save after a write (to arm
//! its timer), by an urgent save and by a flush, not by every run.
use super::Store;
use super::journal::{self, Journal, Journaled};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// Longest time a changed state waits in memory by default.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What runs hand over, taken whole by the writer task when it writes.
struct Queue<T> {
    /// The latest state of every probe changed since the last write.
    states: HashMap<String, T>,
    /// Probes to write at once, and who waits for them.
    urgent: Vec<(String, oneshot::Sender<()>)>,
    /// Flushes asked for (write everything, every own file).
    flush: Vec<oneshot::Sender<()>>,
    /// Every handle is gone: write what is left and stop.
    closed: bool,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            states: HashMap::new(),
            urgent: Vec::new(),
            flush: Vec::new(),
            closed: false,
        }
    }
}

/// The queue and the writer task's wake-up, shared by handles and task.
struct Channel<T> {
    queue: Mutex<Queue<T>>,
    wake: Notify,
}

impl<T> Channel<T> {
    fn queue(&self) -> parking_lot::MutexGuard<'_, Queue<T>> {
        self.queue.lock()
    }
}

/// Closes the channel when the last handle goes.
struct Closer<T>(Arc<Channel<T>>);

impl<T> Drop for Closer<T> {
    fn drop(&mut self) {
        self.0.queue().closed = true;
        self.0.wake.notify_one();
    }
}

/// Handle to the writer task. Cheap to clone.
pub struct StateWriter<T> {
    channel: Arc<Closer<T>>,
    /// The latest state of every probe as last written.
    written: Arc<Mutex<BTreeMap<String, T>>>,
}

impl<T> Clone for StateWriter<T> {
    fn clone(&self) -> Self {
        StateWriter {
            channel: self.channel.clone(),
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
        let channel = Arc::new(Channel {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        });
        let written = Arc::new(Mutex::new(states));
        let task = Task {
            journal: Journal::new(store.dir()),
            store,
            written: written.clone(),
            own_files: stale.into_iter().collect(),
        };
        tokio::spawn(run(
            task,
            channel.clone(),
            every.max(Duration::from_millis(10)),
        ));
        StateWriter {
            channel: Arc::new(Closer(channel)),
            written,
        }
    }

    /// Queue `state` for `probe`. `urgent` writes it at once: the returned
    /// receiver fires when it is on disk (or when the writer is gone).
    pub fn save(&self, probe: &str, state: &T, urgent: bool) -> Option<oneshot::Receiver<()>> {
        let channel = &self.channel.0;
        let mut queue = channel.queue();
        let first = queue.states.is_empty();
        match queue.states.get_mut(probe) {
            Some(queued) => queued.clone_from(state),
            None => {
                queue.states.insert(probe.to_string(), state.clone());
            }
        }
        let wait = urgent.then(|| {
            let (done, wait) = oneshot::channel();
            queue.urgent.push((probe.to_string(), done));
            wait
        });
        drop(queue);
        if first || urgent {
            channel.wake.notify_one();
        }
        wait
    }

    /// The state of `probe` as last written (for a probe added back by a
    /// reload).
    pub fn latest(&self, probe: &str) -> Option<T> {
        self.written.lock().get(probe).cloned()
    }

    /// Write everything queued, and every changed probe's own file;
    /// returns when it is on disk (at shutdown).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        let channel = &self.channel.0;
        channel.queue().flush.push(done);
        channel.wake.notify_one();
        let _ = wait.await;
    }
}

struct Task<T> {
    store: Store,
    journal: Journal,
    written: Arc<Mutex<BTreeMap<String, T>>>,
    /// Probes whose own file is older than their journal records.
    own_files: HashSet<String>,
}

async fn run<T: Journaled>(mut task: Task<T>, channel: Arc<Channel<T>>, every: Duration) {
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
        tokio::select! {
            _ = channel.wake.notified() => {}
            _ = sleep => {}
        }
        let timer_due = deadline.is_some_and(|at| at <= tokio::time::Instant::now());
        let batch = {
            let mut queue = channel.queue();
            if queue.urgent.is_empty() && queue.flush.is_empty() && !queue.closed && !timer_due {
                if deadline.is_none() && !queue.states.is_empty() {
                    deadline = Some(tokio::time::Instant::now() + every);
                }
                continue;
            }
            let closed = queue.closed;
            let capacity = queue.states.len();
            std::mem::replace(
                &mut *queue,
                Queue {
                    states: HashMap::with_capacity(capacity),
                    closed,
                    ..Queue::default()
                },
            )
        };
        if batch.closed
            && batch.states.is_empty()
            && batch.urgent.is_empty()
            && batch.flush.is_empty()
            && task.own_files.is_empty()
        {
            // Everything is on disk (the shutdown flushed it).
            return;
        }
        let all = !batch.flush.is_empty() || batch.closed;
        let Some(written) = write(task, batch.states, batch.urgent, all).await else {
            return;
        };
        task = written;
        deadline = None;
        for done in batch.flush {
            let _ = done.send(());
        }
        if batch.closed {
            return;
        }
    }
}

/// On a blocking thread: the urgent probes' own files, the journal record
/// of every other changed probe, a compaction when due, and with `all`,
/// every changed probe's own file. `None` when the runtime shuts down
/// under it.
async fn write<T: Journaled>(
    mut task: Task<T>,
    pending: HashMap<String, T>,
    urgent: Vec<(String, oneshot::Sender<()>)>,
    all: bool,
) -> Option<Task<T>> {
    let joined = tokio::task::spawn_blocking(move || {
        task.write_now(pending, urgent, all);
        task
    })
    .await;
    match joined {
        Ok(task) => Some(task),
        // The runtime is going away (the process ends, after the final
        // flush): nothing is left to write to.
        Err(e) if e.is_cancelled() => {
            tracing::debug!("the state writer stops with the runtime");
            None
        }
        Err(e) => {
            tracing::error!("the state writer failed: {e}");
            std::process::abort()
        }
    }
}

impl<T: Journaled> Task<T> {
    fn write_now(
        &mut self,
        pending: HashMap<String, T>,
        urgent: Vec<(String, oneshot::Sender<()>)>,
        all: bool,
    ) {
        let shared = self.written.clone();
        let mut written = shared.lock();
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
