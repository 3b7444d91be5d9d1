//! Where `check` and `validate` keep compiled probes: the compile cache in
//! `state_dir/cache` of the `-c` config, else of the default state
//! directory (`WATCHPOST_STATE_DIR`, else `~/.local/state/watchpost`, or
//! `/var/lib/watchpost` for root), unless `--no-cache` is given; a root run
//! whose state directory is another user's (the packaged service's) keeps
//! its own cache instead ([`super::state_dir`]). The agent
//! itself uses the same cache, so a probe tried with `check` starts fast in
//! `run`, and the other way round.

use crate::config::{self, Agent};
use crate::runtime::Runtime;
use crate::runtime::cache::CacheSettings;

#[derive(clap::Args, Debug, Clone)]
pub struct CacheArg {
    /// Compile probes without the compile cache (neither read nor written).
    #[arg(long)]
    pub no_cache: bool,
}

impl CacheArg {
    /// The cache settings for an agent configured as `agent` (the `-c`
    /// config's, else the embedded default's); `None` with `--no-cache`.
    pub fn settings(&self, agent: Option<&Agent>) -> Option<CacheSettings> {
        if self.no_cache {
            return None;
        }
        let settings = |agent: &Agent| {
            let dir = super::state_dir::cache_state_dir(&agent.state_dir);
            CacheSettings::in_state_dir(&dir, agent.cache_size)
        };
        Some(match agent {
            Some(agent) => settings(agent),
            None => settings(&config::embedded_default().agent),
        })
    }

    /// `runtime` with the cache these settings name, if any.
    pub fn apply(&self, runtime: Runtime, agent: Option<&Agent>) -> Runtime {
        match self.settings(agent) {
            Some(settings) => runtime.with_cache(settings),
            None => runtime,
        }
    }
}
