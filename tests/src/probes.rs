//! Paths of the probe components built for the tests.

use std::path::PathBuf;

const BUILT: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/probes.rs"));

/// The component built from crate `name` (e.g. `host-disk`, `spin`).
pub fn path(name: &str) -> PathBuf {
    let (_, path) = BUILT.iter().find(|(n, _)| *n == name).unwrap_or_else(|| {
        panic!("no probe named {name} is built for the tests; add it to tests/build.rs")
    });
    PathBuf::from(path)
}
