//! Bindings generated from `wit/` by `wit-bindgen`.
//!
//! Probe authors rarely need this module directly: the crate root re-exports
//! the types, and [`export_probe!`](crate::export_probe) wires a [`Probe`]
//! (crate::Probe) implementation to the world's exports.

wit_bindgen::generate!({
    path: "../../wit",
    world: "probe",
    pub_export_macro: true,
    export_macro_name: "__export_probe_world",
    default_bindings_module: "::watchpost_probe::bindings",
    additional_derives: [PartialEq],
    // Gate the generated `impl std::error::Error` behind a feature this
    // crate never enables, so that `sql::Error` converts into
    // `watchpost_probe::Error` through its own readable `From` impl rather
    // than the blanket one for all `std::error::Error` types.
    std_feature,
});
