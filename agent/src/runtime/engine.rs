//! The one shared wasmtime `Engine` and the epoch ticker that drives every
//! run's deadline.
//!
//! Engine settings are fixed here (not per probe) because compiled code and
//! the compile cache are only valid for the settings they were made with.

use crate::config::units::MAX_PROBE_MEMORY;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

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
        // Small probes: reset memory by memset instead of madvise, which is
        // faster for the few pages a typical probe touches.
        .linear_memory_keep_resident(64 << 10)
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
/// [`EPOCH_TICK`]. Stops when dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("watchpost-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                }
            })
            .context("cannot start the epoch thread")?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
