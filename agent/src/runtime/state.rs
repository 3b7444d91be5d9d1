//! The data a probe's `Store` holds for one run: its WASI context (clocks,
//! random, and the directories it is granted, preopened read-only at
//! `/NAME`), its memory limiter, what it is granted, and the shared
//! services behind the world's imports.

use super::capture::OutputTail;
use super::limiter::MemoryLimiter;
use super::{Grants, Services};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bounds of the time reserved at the end of a run for a probe to report a
/// database call that timed out (a twentieth of its timeout).
const SQL_MARGIN_MIN: Duration = Duration::from_millis(10);
const SQL_MARGIN_MAX: Duration = Duration::from_millis(250);
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

/// Handles (streams, pollables, directories) a run may hold at once. Each
/// is host memory outside the probe's cap; wasmtime's default (a million)
/// would let a probe that opens streams in a loop hold tens of MB.
pub(super) const MAX_RESOURCES: usize = 4096;

pub struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(super) grants: Arc<Grants>,
    pub(super) services: Arc<Services>,
    /// When database calls give up: a little before the run's deadline, so
    /// that a probe whose database hangs still has time to report it.
    pub(super) sql_deadline: Instant,
    /// Log lines written so far in this run (bounded).
    pub(super) log_lines: u32,
    /// Log lines dropped because of the bound.
    pub(super) log_dropped: u32,
    /// The first capability the probe asked for and was refused.
    pub(super) denied: Option<String>,
    /// The first failure of the agent's own (out of file descriptors or
    /// memory) met while serving the probe: the run ends `unknown`.
    pub(super) agent_fault: Option<String>,
    pub(super) stdout: OutputTail,
    pub(super) stderr: OutputTail,
    /// Granted directories that could not be opened for this run, by name.
    pub(super) dir_errors: BTreeMap<String, String>,
    /// The server's error number of the last failed `sql` call, if it had
    /// one (the WIT's `error-number`); None after a call that succeeded.
    pub(super) sql_error_number: Option<u32>,
}

impl RunState {
    pub fn new(
        grants: Arc<Grants>,
        services: Arc<Services>,
        memory_cap: u64,
        deadline: Instant,
    ) -> Self {
        let stdout = OutputTail::default();
        let stderr = OutputTail::default();
        // No environment, no arguments, no sockets (denied by default):
        // clocks, random and the granted directories, read-only. WASI
        // resolves every path (symlinks included) inside its preopen, so a
        // link out of a granted directory does not open.
        let mut builder = WasiCtx::builder();
        builder.stdout(stdout.clone()).stderr(stderr.clone());
        let mut dir_errors = BTreeMap::new();
        for (name, path) in &grants.dirs {
            if let Err(e) = builder.preopened_dir(path, format!("/{name}"), FsPerms::ReadOnly) {
                dir_errors.insert(name.clone(), format!("{}: {e:#}", path.display()));
            }
        }
        let wasi = builder.build();
        let timeout = deadline.saturating_duration_since(Instant::now());
        let margin = (timeout / 20).clamp(SQL_MARGIN_MIN, SQL_MARGIN_MAX);
        RunState {
            sql_deadline: deadline.checked_sub(margin).unwrap_or(deadline),
            wasi,
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_RESOURCES);
                table
            },
            limiter: MemoryLimiter::new(memory_cap),
            grants,
            services,
            log_lines: 0,
            log_dropped: 0,
            denied: None,
            agent_fault: None,
            stdout,
            stderr,
            dir_errors,
            sql_error_number: None,
        }
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
