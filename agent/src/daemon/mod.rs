//! The running agent (`watchpost run`): its shared state, start-up, hot
//! reload and shutdown.
//!
//! [`Shared`] is what the daemon's own tasks and the status API see: the
//! runtime, the services behind the probes' imports, one
//! [`slot::ProbeSlot`] per configured probe, the state writer and the event
//! bus. Each slot has a timing loop ([`crate::schedule`]) whose ticks go
//! through [`pipeline`]; [`reload`] diffs a new config against the slots;
//! [`signals`] maps SIGHUP/SIGTERM/SIGINT to reload and shutdown. The
//! stages downstream (remediation, OTLP export) never see `Shared`: they
//! get narrow ports ([`port`]) and events.

mod persist;
pub mod pipeline;
pub mod port;
pub mod reload;
pub mod signals;
pub mod slot;

use crate::config::{Config, ProbeSpec};
use crate::events::Bus;
use crate::runtime::{Probe, Runtime, Services, engine::PoolSize};
use crate::sql::{SqlTargets, TargetSpec};
use crate::store::{Store, writer::StateWriter};
use crate::telemetry::snapshot::{AgentSnapshot, ClusterSummary, Reloads};
use anyhow::Context;
use parking_lot::RwLock;
use slot::{ProbeSetup, ProbeSlot};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every task of the running agent shares. Its fields are the
/// daemon's own; readers outside it (the status API, /metrics, the command
/// line) get the methods below and one value type for the agent's own
/// figures, [`AgentSnapshot`].
pub struct Shared {
    runtime: Arc<Runtime>,
    services: RwLock<Arc<Services>>,
    semaphore: RwLock<Arc<Semaphore>>,
    slots: RwLock<BTreeMap<String, Arc<ProbeSlot>>>,
    config: RwLock<Arc<Config>>,
    /// The config file, re-read on reload (`None`: the embedded default).
    config_path: Option<PathBuf>,
    store: Store,
    writer: StateWriter<crate::policy::state::ProbeState>,
    events: Bus,
    /// Timing loops and runs in flight, so shutdown can wait for them.
    tasks: TaskTracker,
    /// Fires on SIGTERM/SIGINT.
    shutdown: CancellationToken,
    started: SystemTime,
    /// Serializes reloads (SIGHUP and the API may ask at once).
    reload_lock: tokio::sync::Mutex<()>,
    reloads: crate::telemetry::counters::ReloadCounters,
    /// Remediation decisions, the audit log and the operator controls.
    remediator: Arc<crate::remediate::Remediator>,
    /// `watchpost run --dry-run`: kept across reloads.
    dry_run_flag: std::sync::atomic::AtomicBool,
    /// The OTLP export, when configured.
    otlp: parking_lot::Mutex<Option<crate::telemetry::otlp::OtlpExport>>,
    /// This node's part in its cluster, when `[cluster]` is configured
    /// (set once at start; a change of `[cluster]` needs a restart).
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl Shared {
    pub fn services(&self) -> Arc<Services> {
        self.services.read().clone()
    }

    pub fn semaphore(&self) -> Arc<Semaphore> {
        self.semaphore.read().clone()
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().clone()
    }

    /// Every slot, by name.
    pub fn slots(&self) -> BTreeMap<String, Arc<ProbeSlot>> {
        self.slots.read().clone()
    }

    pub fn slot(&self, name: &str) -> Option<Arc<ProbeSlot>> {
        self.slots.read().get(name).cloned()
    }

    pub fn node(&self) -> String {
        self.config().agent.node.clone()
    }

    /// The agent's own figures now: node, uptime, reloads, what OTLP
    /// dropped, remediation decisions and the cluster summary.
    pub fn snapshot(&self) -> AgentSnapshot {
        AgentSnapshot {
            node: self.node(),
            uptime: self.uptime(),
            reloads: Reloads {
                succeeded: self.reloads.succeeded.load(Ordering::Relaxed),
                failed: self.reloads.failed.load(Ordering::Relaxed),
            },
            telemetry_dropped: self
                .otlp
                .lock()
                .as_ref()
                .map(|export| {
                    export
                        .outages
                        .iter()
                        .map(|o| (o.signal(), o.dropped()))
                        .collect()
                })
                .unwrap_or_default(),
            remediation_decisions: self
                .remediator
                .counts()
                .into_iter()
                .map(|((remediation, decision), count)| (remediation, decision.as_str(), count))
                .collect(),
            cluster: self.cluster().map(|cluster| {
                let view = cluster.view();
                ClusterSummary {
                    scope: cluster.spec.scope.clone(),
                    is_leader: view.is_leader,
                    members: view.members.len(),
                    timeline: view.observation.timeline,
                }
            }),
        }
    }

    /// Time since the agent started (zero if the clock went back).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed().unwrap_or_default()
    }

    /// Remediation decisions, the audit log and the operator controls.
    pub fn remediator(&self) -> &Arc<crate::remediate::Remediator> {
        &self.remediator
    }

    /// This node's part in its cluster, when `[cluster]` is configured.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Fires when the agent shuts down (SIGTERM/SIGINT).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// `watchpost run --dry-run`: remediation decides but does not act;
    /// kept across reloads.
    pub fn set_dry_run(&self, dry_run: bool) {
        self.dry_run_flag.store(dry_run, Ordering::Relaxed);
    }

    /// Start the timing loop of `slot`.
    fn schedule(self: &Arc<Self>, slot: &Arc<ProbeSlot>) {
        let every = slot.setup().spec.every;
        let cancel = slot.restart_token();
        let job = Arc::new(pipeline::ProbeJob {
            slot: slot.clone(),
            shared: self.clone(),
        });
        let window = crate::schedule::first_run_window(self.config().probes.len());
        crate::schedule::spawn(&slot.name, job, every, window, cancel, self.tasks.clone());
    }
}

/// Database targets of a config, as the sql service wants them.
pub fn target_specs(config: &Config) -> BTreeMap<String, TargetSpec> {
    config
        .targets
        .iter()
        .filter(|(_, t)| t.kind != crate::config::TargetKind::Redis)
        .map(|(name, t)| {
            (
                name.clone(),
                TargetSpec {
                    kind: match t.kind {
                        crate::config::TargetKind::Mysql => crate::sql::Kind::Mysql,
                        _ => crate::sql::Kind::Postgres,
                    },
                    dsn: t.dsn.clone(),
                    read_only: t.read_only,
                    password: t.password.as_ref().map(|p| p.expose().to_string()),
                    admin_dsn: t.admin_dsn.clone(),
                    admin_password: t.admin_password.as_ref().map(|p| p.expose().to_string()),
                    strict_privileges: t.strict_privileges,
                    replication_dsn: t.replication_dsn.clone(),
                    replication_password: t
                        .replication_password
                        .as_ref()
                        .map(|p| p.expose().to_string()),
                },
            )
        })
        .collect()
}

/// Redis targets of a config (`kind = "redis"`), as the redis service
/// wants them.
pub fn redis_specs(config: &Config) -> BTreeMap<String, crate::redis::RedisSpec> {
    config
        .targets
        .iter()
        .filter(|(_, t)| t.kind == crate::config::TargetKind::Redis)
        .map(|(name, t)| {
            let options = t.redis.clone().unwrap_or_default();
            let mut spec = crate::redis::RedisSpec::new(t.dsn.clone());
            spec.password = t.password.as_ref().map(|p| p.expose().to_string());
            spec.tls_ca_file = options.tls_ca_file;
            spec.tls_cert_file = options.tls_cert_file;
            spec.tls_key_file = options.tls_key_file;
            spec.heartbeat_key = options.heartbeat_key;
            spec.strict_privileges = t.strict_privileges;
            (name.clone(), spec)
        })
        .collect()
}

/// Size of the instance pool for a config: every run that may be in
/// flight, plus room for loading probes.
fn pool_size(config: &Config) -> PoolSize {
    PoolSize {
        instances: (config.agent.concurrency as u32 * 2 + 16).max(64),
    }
}

/// Probes of a config that cannot be loaded: one line each, with the
/// probe's place in the config and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct LoadErrors(pub Vec<String>);

/// Load every probe of `config`, reusing already loaded components whose
/// source and content did not change. All load errors, with the place of
/// the probe in the config.
pub async fn load_probes(
    runtime: &Runtime,
    services: &Arc<Services>,
    config: &Config,
    loaded: &BTreeMap<String, Probe>,
) -> Result<BTreeMap<String, Probe>, LoadErrors> {
    let mut probes = BTreeMap::new();
    let mut errors = Vec::new();
    // Probes that name the same component share one compiled copy.
    let mut by_source: std::collections::HashMap<String, Probe> = Default::default();
    for spec in &config.probes {
        if let crate::config::WasmSource::Drill(name) = &spec.wasm {
            if let Some(drill) = config.drills.iter().find(|d| &d.name == name) {
                let probe = crate::drill::probe(drill, &config.agent.state_dir);
                probes.insert(spec.name.clone(), probe);
            }
            continue;
        }
        if spec.wasm == crate::config::WasmSource::Etcd {
            match config
                .cluster
                .as_ref()
                .map(|c| crate::cluster::etcd::health::probe(c, spec.timeout))
            {
                Some(Ok(probe)) => {
                    probes.insert(spec.name.clone(), probe);
                }
                Some(Err(e)) => errors.push(format!("{}: [cluster]: {e}", config.file)),
                None => {}
            }
            continue;
        }
        // Read (and hash) each component file once, however many probes
        // name it.
        let pinned = |probe: &Probe| {
            spec.sha256
                .as_deref()
                .is_none_or(|pin| pin.eq_ignore_ascii_case(&probe.sha256))
        };
        if let Some(probe) = by_source.get(&spec.wasm.to_string()).filter(|p| pinned(p)) {
            probes.insert(spec.name.clone(), probe.clone());
            continue;
        }
        if let Some(probe) = reusable(spec, loaded.get(&spec.name)).filter(|p| pinned(p)) {
            by_source.insert(spec.wasm.to_string(), probe.clone());
            probes.insert(spec.name.clone(), probe);
            continue;
        }
        match runtime
            .load_source(&spec.wasm, spec.sha256.as_deref(), services, spec.memory)
            .await
        {
            Ok(probe) => {
                by_source.insert(spec.wasm.to_string(), probe.clone());
                probes.insert(spec.name.clone(), probe);
            }
            Err(e) => errors.push(format!(
                "{}: [[probe]] {:?}: cannot load: {}",
                spec.place, spec.name, e.message
            )),
        }
    }
    if errors.is_empty() {
        Ok(probes)
    } else {
        Err(LoadErrors(errors))
    }
}

/// The already loaded component, if the spec points at the same bytes.
fn reusable(spec: &ProbeSpec, loaded: Option<&Probe>) -> Option<Probe> {
    let loaded = loaded?;
    if loaded.source != spec.wasm.to_string() {
        return None;
    }
    match &spec.wasm {
        crate::config::WasmSource::Builtin(_) => Some(loaded.clone()),
        crate::config::WasmSource::Drill(_) | crate::config::WasmSource::Etcd => None,
        crate::config::WasmSource::File(path) => {
            let bytes = std::fs::read(path).ok()?;
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            (sha == loaded.sha256).then(|| loaded.clone())
        }
    }
}

/// Start the agent on `config`; returns once it is running.
pub async fn start(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<Arc<Shared>> {
    let store = Store::open(&config.agent.state_dir)?;
    let cache = crate::runtime::cache::CacheSettings::in_state_dir(
        &config.agent.state_dir,
        config.agent.cache_size,
    );
    let runtime = Arc::new(
        Runtime::new(pool_size(&config))?
            .with_cache(cache)
            .with_memory_budget(config.agent.memory_budget),
    );
    let sql = SqlTargets::new(&target_specs(&config)).map_err(anyhow::Error::msg)?;
    let redis =
        crate::redis::RedisTargets::new(&redis_specs(&config)).map_err(anyhow::Error::msg)?;
    let services = Arc::new(Services {
        sql,
        redis,
        ..Services::default()
    });
    let probes = load_probes(&runtime, &services, &config, &BTreeMap::new())
        .await
        .context("the config names probes that cannot be loaded")?;
    // Compiling leaves freed memory in the allocator's arenas.
    crate::util::release_free_memory();
    let (mut states, stale) = store.load_all::<crate::policy::state::ProbeState>();
    let remediator = crate::remediate::Remediator::open(store.dir())?;
    let shared = Arc::new(Shared {
        runtime,
        services: RwLock::new(services),
        semaphore: RwLock::new(Arc::new(Semaphore::new(config.agent.concurrency))),
        slots: RwLock::new(BTreeMap::new()),
        config_path,
        writer: StateWriter::start(
            store.clone(),
            states.clone(),
            stale,
            config.agent.state_flush,
        ),
        store,
        events: Bus::default(),
        tasks: TaskTracker::new(),
        shutdown: CancellationToken::new(),
        started: SystemTime::now(),
        reload_lock: tokio::sync::Mutex::new(()),
        reloads: crate::telemetry::counters::ReloadCounters::default(),
        remediator,
        otlp: parking_lot::Mutex::new(None),
        cluster: std::sync::OnceLock::new(),
        dry_run_flag: std::sync::atomic::AtomicBool::new(false),
        config: RwLock::new(Arc::new(config.clone())),
    });
    let mut slots = BTreeMap::new();
    for spec in &config.probes {
        let probe = probes[&spec.name].clone();
        let state = states.remove(&spec.name).unwrap_or_default();
        let slot = Arc::new(ProbeSlot::new(
            ProbeSetup::new(spec.clone(), probe, &config.agent.node),
            state,
        ));
        slots.insert(spec.name.clone(), slot);
    }
    *shared.slots.write() = slots.clone();
    // Reconcile and start remediation before the first run.
    shared
        .remediator
        .start(Arc::new(port::RemediationPort(Arc::downgrade(&shared))));
    let counters: std::sync::Weak<dyn crate::telemetry::CounterSource> =
        Arc::downgrade(&shared) as _;
    let export =
        crate::telemetry::otlp::start(&config, shared.store.dir(), &shared.events, counters)?;
    *shared.otlp.lock() = export;
    if let Some(spec) = config.cluster.clone() {
        let cluster = crate::cluster::Cluster::start(
            spec,
            shared.services().sql.clone(),
            shared.remediator.clone(),
            format!("http://{}", config.agent.listen),
            shared.store.dir(),
            shared.shutdown.clone(),
        )?;
        let _ = shared.cluster.set(cluster);
    }
    for slot in slots.values() {
        shared.schedule(slot);
    }
    tracing::info!(
        node = %config.agent.node,
        probes = config.probes.len(),
        "watchpost {} started with {} (state in {})",
        env!("CARGO_PKG_VERSION"),
        config.file,
        shared.store.dir().display()
    );
    Ok(shared)
}

/// Stop scheduling and starting remediation actions, let runs in flight
/// finish (each within its timeout) and actions in flight within
/// [`crate::remediate::SHUTDOWN_GRACE`], write all state, and return.
pub async fn stop(shared: &Shared) {
    for slot in shared.slots().values() {
        slot.stop();
    }
    let actions = shared.remediator.shutdown(crate::remediate::SHUTDOWN_GRACE);
    shared.tasks.close();
    let longest = shared
        .slots()
        .values()
        .map(|s| s.setup().spec.timeout)
        .max()
        .unwrap_or_default();
    let runs = tokio::time::timeout(
        longest.saturating_add(Duration::from_secs(2)),
        shared.tasks.wait(),
    );
    let (runs, ()) = tokio::join!(runs, actions);
    if runs.is_err() {
        tracing::warn!("some runs did not finish in time; stopping anyway");
    }
    if let Some(cluster) = shared.cluster.get() {
        cluster.stopped(Duration::from_secs(10)).await;
    }
    shared.writer.flush().await;
    let export = shared.otlp.lock().take();
    if let Some(export) = export {
        export.shutdown().await;
    }
    tracing::info!("stopped; state written to {}", shared.store.dir().display());
}
