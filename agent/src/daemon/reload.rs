//! Hot reload: re-read the config, and if it is valid (every probe loads),
//! apply the difference without restarting: added probes start, removed
//! ones stop, changed ones are swapped (a run in flight finishes on the old
//! code), unchanged ones keep their state and schedule. An invalid config
//! is rejected whole: the error is logged and returned, the old config
//! goes on running.

use super::slot::{ProbeSetup, ProbeSlot};
use super::{Shared, load_probes, target_specs};
use crate::config;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::Semaphore;

/// Why a reload was rejected (the previous config keeps running). The
/// message is the whole explanation, as logged and as `POST /v1/reload`
/// returns it.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file does not parse or validate: every diagnostic.
    #[error(transparent)]
    Config(#[from] config::ConfigErrors),
    /// `listen` or `api_token_env` changed (each change described): they
    /// are set at start.
    #[error(
        "[agent]: the status API's address and token cannot change by reload: {}; \
         restore them in the config to reload, or restart the agent to apply them",
        .changed.join("; ")
    )]
    AuthChange { changed: Vec<String> },
    /// A database or Redis target of the new config cannot be set up.
    #[error("{0}")]
    Targets(String),
    /// Probes of the new config that cannot be loaded.
    #[error(transparent)]
    Probes(#[from] super::LoadErrors),
}

/// What a reload did, by probe name.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Settings that only take effect after a restart.
    pub needs_restart: Vec<String>,
}

/// The status API's socket and its token are set at start: a reload that
/// would change them is refused, so that it can never leave the bound
/// socket with weaker authentication than the config it was bound for
/// (e.g. `listen` moved back to loopback and `api_token_env` dropped while
/// the old public address is still bound).
fn refuse_auth_change(old: &config::Agent, new: &config::Agent) -> Result<(), ReloadError> {
    let mut changed = Vec::new();
    if old.listen != new.listen {
        changed.push(format!(
            "`listen` ({} -> {}): the API stays bound to {} until a restart",
            old.listen, new.listen, old.listen
        ));
    }
    if old.api_token_env != new.api_token_env {
        let show = |v: &Option<String>| {
            v.as_deref()
                .map_or("not set".to_string(), |n| format!("{n:?}"))
        };
        changed.push(format!(
            "`api_token_env` ({} -> {}): the API keeps the token it started with until a restart",
            show(&old.api_token_env),
            show(&new.api_token_env)
        ));
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(ReloadError::AuthChange { changed })
}

/// Reload the config file (or the embedded default).
pub async fn reload(shared: &Arc<Shared>) -> Result<ReloadSummary, ReloadError> {
    let _one_at_a_time = shared.reload_lock.lock().await;
    let result = apply(shared).await;
    match &result {
        Ok(summary) => {
            shared.reloads.succeeded.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "config reloaded: added {:?}, removed {:?}, changed {:?}, {} unchanged",
                summary.added,
                summary.removed,
                summary.changed,
                summary.unchanged.len()
            );
            for setting in &summary.needs_restart {
                tracing::warn!("`{setting}` changed: it takes effect after a restart");
            }
        }
        Err(message) => {
            shared.reloads.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                "config reload rejected, the previous config keeps running:\n{message}"
            );
        }
    }
    result
}

async fn apply(shared: &Arc<Shared>) -> Result<ReloadSummary, ReloadError> {
    let mut new = config::load_or_default(shared.config_path.as_deref())?;
    // `--dry-run` on the command line outlives reloads.
    if shared.dry_run_flag.load(Ordering::Relaxed) {
        new.agent.dry_run = true;
    }
    let old = shared.config();
    refuse_auth_change(&old.agent, &new.agent)?;
    let services = shared.services();
    let sql = services
        .sql
        .rebuild(&target_specs(&new))
        .map_err(ReloadError::Targets)?;
    let redis = services
        .redis
        .rebuild(&super::redis_specs(&new))
        .map_err(ReloadError::Targets)?;
    let services = Arc::new(crate::runtime::Services {
        sql,
        redis,
        host: services.host.clone(),
    });
    let slots = shared.slots();
    let loaded: BTreeMap<String, crate::runtime::Probe> = slots
        .iter()
        .map(|(name, slot)| (name.clone(), slot.setup().probe.clone()))
        .collect();
    let probes = load_probes(&shared.runtime, &services, &new, &loaded).await?;
    crate::util::release_free_memory();

    // Valid: from here on, nothing fails.
    let mut summary = ReloadSummary::default();
    for (setting, changed) in [
        (
            "agent.state_dir",
            old.agent.state_dir != new.agent.state_dir,
        ),
        ("telemetry", old.telemetry != new.telemetry),
        (
            "agent.memory_budget",
            old.agent.memory_budget != new.agent.memory_budget,
        ),
        // The cluster loop reads its settings once, at start.
        ("cluster", old.cluster != new.cluster),
    ] {
        if changed {
            summary.needs_restart.push(setting.to_string());
        }
    }
    *shared.services.write() = services;
    if old.agent.concurrency != new.agent.concurrency {
        *shared.semaphore.write() = Arc::new(Semaphore::new(new.agent.concurrency));
    }
    let mut next = BTreeMap::new();
    let mut to_schedule = Vec::new();
    for spec in &new.probes {
        let probe = probes[&spec.name].clone();
        match slots.get(&spec.name) {
            Some(slot) => {
                let current = slot.setup();
                let same_code =
                    current.probe.sha256 == probe.sha256 && current.probe.source == probe.source;
                if current.spec == *spec && same_code {
                    summary.unchanged.push(spec.name.clone());
                } else {
                    let every_changed = current.spec.every != spec.every;
                    slot.swap(ProbeSetup::new(spec.clone(), probe, &new.agent.node));
                    if every_changed {
                        to_schedule.push(slot.clone());
                    }
                    summary.changed.push(spec.name.clone());
                }
                next.insert(spec.name.clone(), slot.clone());
            }
            None => {
                let state = shared
                    .writer
                    .latest(&spec.name)
                    .or_else(|| shared.store.load_probe(&spec.name))
                    .unwrap_or_default();
                let slot = Arc::new(ProbeSlot::new(
                    ProbeSetup::new(spec.clone(), probe, &new.agent.node),
                    state,
                ));
                to_schedule.push(slot.clone());
                next.insert(spec.name.clone(), slot);
                summary.added.push(spec.name.clone());
            }
        }
    }
    for (name, slot) in &slots {
        if !next.contains_key(name) {
            slot.stop();
            summary.removed.push(name.clone());
        }
    }
    *shared.slots.write() = next;
    *shared.config.write() = Arc::new(new);
    for slot in &to_schedule {
        shared.schedule(slot);
    }
    // Remediations may have been added or changed: look at the triggers.
    shared.remediator.wake();
    Ok(summary)
}
