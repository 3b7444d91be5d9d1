//! One configured probe inside the running agent. A slot lives as long as
//! a probe of that name is configured: reloads swap its setup (the code,
//! config and grants) but keep its state, counters and, unless `every`
//! changed, its schedule. A run takes the setup current when it starts, so
//! a run in flight during a swap finishes on the old code.

use crate::config::ProbeSpec;
use crate::policy::state::ProbeState;
use crate::runtime::{Grants, Limits, Probe};
use crate::telemetry::counters::ProbeCounters;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

/// What a run of the probe needs, fixed for one config generation.
pub struct ProbeSetup {
    pub spec: ProbeSpec,
    pub probe: Probe,
    pub grants: Arc<Grants>,
    pub limits: Limits,
    /// For the run events: the node, what the probe watches, and its
    /// measurements' descriptions (computed once, shared by every event).
    pub node: Arc<str>,
    pub target: Arc<str>,
    pub descriptions: Arc<BTreeMap<String, String>>,
}

impl ProbeSetup {
    pub fn new(spec: ProbeSpec, probe: Probe, node: &str) -> Self {
        let grants = Arc::new(Grants {
            name: spec.name.clone(),
            config: spec.config.clone(),
            targets: spec.targets.clone(),
            dirs: spec.dirs.clone(),
        });
        let limits = Limits {
            timeout: spec.timeout,
            memory: spec.memory,
        };
        let target = crate::telemetry::otlp::instruments::target_of(&spec).into();
        let descriptions = probe
            .info
            .measurements
            .iter()
            .map(|m| (m.name.clone(), m.description.clone()))
            .collect();
        ProbeSetup {
            spec,
            probe,
            grants,
            limits,
            node: node.into(),
            target,
            descriptions: Arc::new(descriptions),
        }
    }
}

pub struct ProbeSlot {
    pub name: String,
    setup: RwLock<Arc<ProbeSetup>>,
    pub state: Mutex<ProbeState>,
    pub counters: ProbeCounters,
    /// Recent measurements, in memory, for the status page's charts.
    recent: Mutex<crate::telemetry::recent::Recent>,
    next_run: Mutex<Option<SystemTime>>,
    /// Stops this slot's timing loop.
    cancel: Mutex<CancellationToken>,
}

impl ProbeSlot {
    pub fn new(setup: ProbeSetup, state: ProbeState) -> Self {
        ProbeSlot {
            name: setup.spec.name.clone(),
            setup: RwLock::new(Arc::new(setup)),
            state: Mutex::new(state),
            counters: ProbeCounters::default(),
            recent: Mutex::default(),
            next_run: Mutex::new(None),
            cancel: Mutex::new(CancellationToken::new()),
        }
    }

    /// The setup runs use from now on.
    pub fn setup(&self) -> Arc<ProbeSetup> {
        self.setup.read().clone()
    }

    /// Swap in a new setup (a changed config or component).
    pub fn swap(&self, setup: ProbeSetup) {
        *self.setup.write() = Arc::new(setup);
    }

    pub fn state(&self) -> parking_lot::MutexGuard<'_, ProbeState> {
        self.state.lock()
    }

    pub fn recent(&self) -> parking_lot::MutexGuard<'_, crate::telemetry::recent::Recent> {
        self.recent.lock()
    }

    pub fn next_run(&self) -> Option<SystemTime> {
        *self.next_run.lock()
    }

    pub fn set_next_run(&self, at: SystemTime) {
        *self.next_run.lock() = Some(at);
    }

    /// A fresh token for a new timing loop; the previous loop is stopped.
    pub fn restart_token(&self) -> CancellationToken {
        let fresh = CancellationToken::new();
        let old = std::mem::replace(&mut *self.cancel.lock(), fresh.clone());
        old.cancel();
        fresh
    }

    /// Stop the timing loop (a run in flight finishes).
    pub fn stop(&self) {
        self.cancel.lock().cancel();
    }
}
