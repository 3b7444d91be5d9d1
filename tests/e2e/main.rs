//! End-to-end tests of Watchpost, one module per area. They run the real
//! binary on real probe components built from source (see `tests/build.rs`).

mod check_host_probes;
mod check_output;
mod compile_cache;
mod kit_c;
mod kit_js;
mod kit_python;
mod new_project;
mod not_probes;
mod sandbox;
