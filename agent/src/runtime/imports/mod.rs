//! Host implementations of the `watchpost:probe` world's imports, one file
//! per interface. Each is a thin layer over [`RunState`](super::state::RunState):
//! it applies the run's grants and limits, then calls a shared service.

mod config;
mod dirs;
mod host;
mod log;
mod redis;
mod sql;

use super::bindings::types;
use super::state::RunState;

impl types::Host for RunState {}
