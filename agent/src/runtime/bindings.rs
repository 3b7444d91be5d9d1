//! Host-side bindings for the `watchpost:probe` world, generated from `wit/`.
//!
//! Imports are async so that a probe waiting on a database holds no OS
//! thread; exports are called with `call_*` futures that the runtime bounds
//! with the run's deadline.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "probe",
    imports: { default: async },
    exports: { default: async },
});

// `self::`: in doctests the crate itself is also an extern crate named
// `watchpost`, which would make a bare `watchpost::` ambiguous.
pub use self::watchpost::probe::{config, dirs, host, log, redis, sql, types};
