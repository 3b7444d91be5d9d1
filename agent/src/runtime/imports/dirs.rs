//! `dirs`: the read-only directories a probe is granted. The directories
//! themselves are WASI preopens made for each run (see
//! [`RunState::new`](crate::runtime::state::RunState::new)); this only
//! tells the probe which names it has and which could not be opened.

use crate::runtime::bindings::dirs::{Dir, Host};
use crate::runtime::state::RunState;

impl Host for RunState {
    async fn granted(&mut self) -> Vec<Dir> {
        self.grants
            .dirs
            .keys()
            .map(|name| Dir {
                name: name.clone(),
                error: self.dir_errors.get(name).cloned(),
            })
            .collect()
    }
}
