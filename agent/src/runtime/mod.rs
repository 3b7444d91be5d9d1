//! The probe runtime: loads probe components and runs them in a sandbox.
//!
//! One [`Runtime`] owns the shared wasmtime `Engine` (pooling allocator,
//! epoch interruption) and a `Linker` holding the host side of every import
//! of the `watchpost:probe` world plus WASI (clocks and random, and the
//! read-only directories a probe is granted; no other files, no sockets,
//! environment or arguments). [`Runtime::load_bytes`]
//! compiles a component once — or takes it from the [`cache`] when the
//! runtime has one ([`Runtime::with_cache`]) — and pre-links it
//! ([`Probe`]); [`Runtime::run`] gives each
//! run a fresh `Store` with a deadline and a memory cap and turns whatever
//! happens — a report, a trap, a timeout, a memory bomb — into a
//! [`Report`](crate::report::Report). Nothing a probe does stops the agent.

pub mod bindings;
pub mod budget;
pub mod cache;
mod capture;
pub mod engine;
#[cfg(test)]
mod fuzz;
mod imports;
mod limiter;
pub mod loader;
pub mod output;
mod run;
mod state;

pub use loader::LoadError;

use crate::hostinfo::HostMetrics;
use crate::report::{ErrorKind, Report};
use crate::sql::SqlTargets;
use anyhow::Result;
use bindings::ProbePre;
use cache::{CacheSettings, CacheStats, CompileCache};
use sha2::{Digest, Sha256};
use state::RunState;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// Limits of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline of the run, from instantiation to the report.
    pub timeout: Duration,
    /// Cap on the run's linear memory, in bytes.
    pub memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(10),
            memory: 64 << 20,
        }
    }
}

/// What a probe is given for its runs: its name (for logs), its config,
/// the database targets it may use and the directories it may read
/// (name -> host path; the probe sees each read-only at `/NAME`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    pub name: String,
    pub config: BTreeMap<String, String>,
    pub targets: Vec<String>,
    pub dirs: BTreeMap<String, std::path::PathBuf>,
}

/// The shared services behind the world's imports.
#[derive(Clone, Default)]
pub struct Services {
    pub host: HostMetrics,
    pub sql: SqlTargets,
    pub redis: crate::redis::RedisTargets,
}

/// A probe's static description, from its `describe` export.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProbeInfo {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub description: String,
    pub measurements: Vec<MeasurementInfo>,
}

impl ProbeInfo {
    /// The description of a [`NativeCheck`] (its version is the agent's):
    /// `kind` as in the WIT (`availability`, `integrity`, ...), and each
    /// measurement as (name, UCUM unit, one-line description).
    pub fn native(
        name: &str,
        kind: &str,
        description: &str,
        measurements: &[(&str, &str, &str)],
    ) -> ProbeInfo {
        ProbeInfo {
            name: name.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: kind.into(),
            description: description.into(),
            measurements: measurements
                .iter()
                .map(|(name, unit, description)| MeasurementInfo {
                    name: (*name).into(),
                    unit: (*unit).into(),
                    description: (*description).into(),
                })
                .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MeasurementInfo {
    pub name: String,
    pub unit: String,
    pub description: String,
}

/// A boxed future returned by a [`NativeCheck`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A check the agent runs itself, outside the sandbox (a restore drill
/// starts a server and runs programs, which no probe may): it gets the
/// same schedule, deadline, states and telemetry as a component. The
/// runtime bounds it with the probe's `timeout` by dropping its future, so
/// an implementation cleans up in `Drop`.
pub trait NativeCheck: Send + Sync + 'static {
    fn check(&self) -> BoxFuture<'_, Report>;
}

/// What runs: a pre-linked component, or a native check.
#[derive(Clone)]
enum Body {
    Component(ProbePre<RunState>),
    Native(Arc<dyn NativeCheck>),
}

/// A loaded probe: compiled, pre-linked and described (or a native
/// check). Cheap to clone.
#[derive(Clone)]
pub struct Probe {
    body: Body,
    /// Where it came from (a path), for messages.
    pub source: String,
    /// sha256 of the component bytes, hex.
    pub sha256: String,
    pub info: ProbeInfo,
}

/// The sandbox. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RunState>,
    /// Compiled probes kept across starts (none: compile every time).
    cache: Option<Arc<CompileCache>>,
    /// The agent-wide memory budget, in MiB permits: a run (or a load's
    /// `describe`) holds its cap's worth while it runs.
    budget: budget::MemoryBudget,
    _ticker: engine::EpochTicker,
}

impl Runtime {
    pub fn new(pool: engine::PoolSize) -> Result<Self> {
        let engine = engine::build(pool)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::Probe::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state| state,
        )?;
        let ticker = engine::EpochTicker::start(&engine)?;
        Ok(Runtime {
            engine,
            linker,
            cache: None,
            budget: budget::MemoryBudget::new(budget::DEFAULT),
            _ticker: ticker,
        })
    }

    /// Keep compiled probes in the compile cache described by `settings`.
    /// A cache that cannot be opened (say, a directory that cannot be
    /// created) is logged as a warning and the runtime compiles every
    /// probe, as without a cache: it never stops probes from loading.
    pub fn with_cache(mut self, settings: CacheSettings) -> Self {
        let dir = settings.dir.clone();
        match CompileCache::open(&self.engine, settings) {
            Ok(cache) => {
                tracing::debug!(dir = %dir.display(), "compile cache opened");
                self.cache = Some(Arc::new(cache));
            }
            Err(e) => tracing::warn!(
                "compile cache disabled: cannot use {}: {e}; set `state_dir` in the config \
                 or WATCHPOST_STATE_DIR to a writable directory (or pass --no-cache)",
                dir.display()
            ),
        }
        self
    }

    /// Bound the sum of the memory caps of runs in flight to `bytes` (see
    /// [`budget`]).
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.budget = budget::MemoryBudget::new(bytes);
        self
    }

    /// What the compile cache did so far (`None` without a cache).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|cache| cache.stats())
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Load the probe at `path`: read, compile, link, describe. With
    /// `pin` (a sha256 in hex), the file is read once and the bytes read
    /// are hashed and compared before they are compiled: a file swapped
    /// after the config was checked is refused, never compiled.
    pub async fn load_file(
        &self,
        path: &Path,
        pin: Option<&str>,
        services: &Arc<Services>,
        cap: u64,
    ) -> Result<Probe, LoadError> {
        let bytes = loader::read(path)?;
        let source = path.display().to_string();
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some(pin) = pin {
            loader::check_pin(&source, pin, &digest)?;
        }
        self.load_digested(&source, &bytes, digest, services, cap)
            .await
    }

    /// Load a probe from its bytes; `source` names it in messages.
    pub async fn load_bytes(
        &self,
        source: &str,
        bytes: &[u8],
        services: &Arc<Services>,
        cap: u64,
    ) -> Result<Probe, LoadError> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        self.load_digested(source, bytes, digest, services, cap)
            .await
    }

    /// Compile (or take from the cache, keyed by `digest`), link and
    /// describe `bytes`, whose sha256 is `digest`.
    async fn load_digested(
        &self,
        source: &str,
        bytes: &[u8],
        digest: [u8; 32],
        services: &Arc<Services>,
        cap: u64,
    ) -> Result<Probe, LoadError> {
        loader::check_header(source, bytes)?;
        let component = self.compile(source, digest, bytes).await?;
        let pre = loader::link(&self.linker, source, &component)?;
        let _room = self.budget.reserve(cap).await;
        let _busy = self._ticker.busy();
        let info = run::describe(&pre, services, cap)
            .await
            .map_err(|e| LoadError {
                message: format!("{source}: `describe` failed: {e}"),
            })?;
        Ok(Probe {
            body: Body::Component(pre),
            source: source.to_string(),
            sha256: hex::encode(digest),
            info,
        })
    }

    /// Load a probe named by the config: a built-in one or a file (whose
    /// `sha256` pin, if any, is checked on the very bytes compiled).
    pub async fn load_source(
        &self,
        source: &crate::config::WasmSource,
        pin: Option<&str>,
        services: &Arc<Services>,
        cap: u64,
    ) -> Result<Probe, LoadError> {
        match source {
            crate::config::WasmSource::Builtin(name) => {
                let bytes = crate::builtin::bytes(name).ok_or_else(|| LoadError {
                    message: format!(
                        "builtin:{name}: there is no such built-in probe; built-in probes are: {}",
                        crate::builtin::names().join(", ")
                    ),
                })?;
                self.load_bytes(&source.to_string(), bytes, services, cap)
                    .await
            }
            crate::config::WasmSource::File(path) => self.load_file(path, pin, services, cap).await,
            crate::config::WasmSource::Drill(name) => Err(LoadError {
                message: format!("drill:{name}: a drill is not a component; the agent runs it"),
            }),
            crate::config::WasmSource::Etcd => Err(LoadError {
                message: "cluster:etcd: etcd's health is not a component; the agent checks it"
                    .into(),
            }),
        }
    }

    /// Compile a component (or take it from the cache) on a blocking
    /// thread: compiling a Python probe keeps a core busy for seconds.
    async fn compile(
        &self,
        source: &str,
        digest: [u8; 32],
        bytes: &[u8],
    ) -> Result<Component, LoadError> {
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let name = source.to_string();
        let bytes = bytes.to_vec();
        let compiled = tokio::task::spawn_blocking(move || match cache {
            Some(cache) => cache.component(&engine, &name, &digest, &bytes),
            None => Component::new(&engine, &bytes),
        })
        .await;
        match compiled {
            Ok(Ok(component)) => Ok(component),
            Ok(Err(error)) => Err(loader::invalid_component(source, &error)),
            Err(join) => Err(LoadError {
                message: format!("{source}: compiling the probe failed unexpectedly: {join}"),
            }),
        }
    }

    /// Run `probe` once with `grants` and `limits`. Never fails: every
    /// failure is a report with status `unknown` and an error.
    pub async fn run(
        &self,
        probe: &Probe,
        grants: &Arc<Grants>,
        services: &Arc<Services>,
        limits: Limits,
    ) -> Report {
        match &probe.body {
            Body::Component(pre) => {
                // Room in the agent's memory budget first: the cap is what
                // the run may take, in the sandbox and in host calls.
                let _room = self.budget.reserve(limits.memory).await;
                // The epoch advances only while some run needs it.
                let _busy = self._ticker.busy();
                run::check(pre, grants, services, limits).await
            }
            Body::Native(check) => {
                let started = std::time::Instant::now();
                match tokio::time::timeout(limits.timeout, check.check()).await {
                    Ok(report) => report,
                    Err(_) => Report::failed(
                        crate::report::RunError::new(
                            ErrorKind::Timeout,
                            format!(
                                "did not finish within its timeout of {:.0} s (stopped and cleaned up)",
                                limits.timeout.as_secs_f64()
                            ),
                        ),
                        started.elapsed(),
                        0,
                    ),
                }
            }
        }
    }
}

impl Probe {
    /// A probe whose runs are `check`, described by `info`.
    pub fn native(source: String, info: ProbeInfo, check: Arc<dyn NativeCheck>) -> Probe {
        Probe {
            body: Body::Native(check),
            source,
            sha256: String::new(),
            info,
        }
    }
}

/// True when the error kind means the sandbox stopped the probe (as
/// opposed to the probe reporting a problem itself).
pub fn is_sandbox_error(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Timeout
            | ErrorKind::Memory
            | ErrorKind::Trap
            | ErrorKind::Denied
            | ErrorKind::InvalidOutput
    )
}

#[cfg(test)]
mod pin_tests;
