//! The probes embedded in the binary (`wasm = "builtin:NAME"`), built from
//! `plugins/` by `build.rs`.

/// (name, component bytes) of every built-in probe.
pub const PROBES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The component bytes of built-in probe `name`.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    PROBES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The names of all built-in probes.
pub fn names() -> Vec<&'static str> {
    PROBES.iter().map(|(n, _)| *n).collect()
}
