//! The one shared wasmtime `Engine` and the epoch ticker that drives every
//! run's deadline.
//!
//! Engine settings are fixed here (not per probe) because compiled code and
//! the compile cache are only valid for the settings they were made with.

use crate::config::units::MAX_PROBE_MEMORY;
use anyhow::{Context, Result};
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of deadlines and of the
/// yields that let other tasks run while a probe computes.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Sizing of the instance pool: how many runs can be live at once.
#[derive(Clone, Copy, Debug)]
pub struct PoolSize {
    /// Component instances alive at the same time (runs in flight plus
    /// load-time `describe` calls).
    pub instances: u32,
}

impl Default for PoolSize {
    fn default() -> Self {
        PoolSize { instances: 256 }
    }
}

/// Build the engine: component model, async host calls, epoch interruption
/// and the pooling allocator.
pub fn build(pool: PoolSize) -> Result<Engine> {
    let mut pooling = PoolingAllocationConfig::default();
    let instances = pool.instances.max(4);
    pooling
        .total_component_instances(instances)
        // Components built by componentize-py/js hold a dozen core modules.
        .total_core_instances(instances * 16)
        .total_memories(instances * 4)
        .total_tables(instances * 16)
        .total_stacks(instances)
        .max_memory_size(MAX_PROBE_MEMORY as usize)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .table_elements(200_000)
        .max_component_instance_size(4 << 20)
        .max_core_instance_size(4 << 20)
        // Reset what a run dirtied by memset instead of madvise, so the
        // next run in the slot takes no page faults: the kernel's
        // PAGEMAP_SCAN (Linux 6.7 and later; otherwise the low addresses
        // are reset) finds the dirty pages, and up to 1 MiB of them stay
        // resident per slot. A trivial probe dirties a few pages near the
        // top of its 1 MiB stack, which `madvise` gave back and the next
        // run faulted in again, about a fifth of its CPU in the agent.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(16 << 10);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling))
        .async_stack_size(1 << 20)
        .max_wasm_stack(512 << 10);
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot create the WebAssembly engine")
}

/// A background thread that advances the engine's epoch every
/// [`EPOCH_TICK`] while at least one run is in flight, and sleeps (parked
/// on a condition variable, no wake-ups) while none is: an idle agent
/// costs no CPU for deadlines nobody waits on. Runs announce themselves
/// with [`EpochTicker::busy`]. Stops when dropped.
///
/// It parks only after a tick during which no run was in flight and none
/// started: while runs come more often than ticks (100 probes a second
/// and more) it keeps ticking and no run pays for waking it (a futex
/// wake and two context switches each, more than the ticks cost); when
/// they are rarer, each run wakes it as before.
pub struct EpochTicker {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

struct Inner {
    /// Runs (and load-time `describe` calls) in flight.
    busy: AtomicUsize,
    /// Runs started since the ticker last looked.
    started: AtomicUsize,
    /// The ticker waits on `wake` (set and cleared under `stop`).
    parked: AtomicBool,
    /// Guards the sleep/wake hand-over (and holds the stop flag).
    stop: Mutex<bool>,
    wake: Condvar,
}

/// Keeps the epoch advancing while it lives: hold one for the whole life
/// of a `Store` whose deadline depends on the epoch.
pub struct Busy {
    inner: Arc<Inner>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.inner.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Result<Self> {
        let inner = Arc::new(Inner {
            busy: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("watchpost-epoch".into())
            .spawn({
                let inner = inner.clone();
                move || tick(&engine, &inner)
            })
            .context("cannot start the epoch thread")?;
        Ok(EpochTicker {
            inner,
            thread: Some(thread),
        })
    }

    /// Mark a run in flight until the guard is dropped; wakes the ticker
    /// if it slept.
    pub fn busy(&self) -> Busy {
        self.inner.started.fetch_add(1, Ordering::Relaxed);
        // Sequentially consistent with the ticker's `parked` then `busy`:
        // either it sees this run, or this run sees it parked and wakes
        // it (under the lock it holds until it waits, so the wake-up
        // cannot be lost).
        if self.inner.busy.fetch_add(1, Ordering::SeqCst) == 0
            && self.inner.parked.load(Ordering::SeqCst)
        {
            let _stop = self.inner.stop.lock();
            self.inner.wake.notify_one();
        }
        Busy {
            inner: self.inner.clone(),
        }
    }
}

fn tick(engine: &Engine, inner: &Inner) {
    loop {
        {
            let mut stop = inner.stop.lock();
            // Park when nothing ran during the last tick.
            if inner.started.swap(0, Ordering::Relaxed) == 0 {
                inner.parked.store(true, Ordering::SeqCst);
                while !*stop && inner.busy.load(Ordering::SeqCst) == 0 {
                    inner.wake.wait(&mut stop);
                }
                inner.parked.store(false, Ordering::SeqCst);
                // The run that woke it is counted by `busy`, not as a
                // start during the coming tick.
                inner.started.store(0, Ordering::Relaxed);
            }
            if *stop {
                return;
            }
        }
        std::thread::sleep(EPOCH_TICK);
        engine.increment_epoch();
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        *self.inner.stop.lock() = true;
        self.inner.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
