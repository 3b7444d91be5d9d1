//! `config`: the probe's own key/value settings.

use crate::runtime::bindings::config::Host;
use crate::runtime::state::RunState;

impl Host for RunState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.grants.config.get(&key).cloned()
    }

    async fn entries(&mut self) -> Vec<(String, String)> {
        self.grants
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
