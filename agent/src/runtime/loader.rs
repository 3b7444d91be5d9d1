//! Loading a probe file: check that it is a component of the `probe`
//! world before anything runs, and say precisely what is wrong if not.

use super::bindings::ProbePre;
use super::state::RunState;
use std::fmt;
use std::path::Path;
use wasmtime::component::{Component, Linker};

/// Why a file cannot be a probe. The message names the file.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}

fn fail(source: &str, what: impl fmt::Display) -> LoadError {
    LoadError {
        message: format!("{source}: {what}"),
    }
}

const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Read a probe file, refusing what cannot be a probe with a clear message.
pub fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    let source = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| fail(&source, format!("cannot read the file: {e}")))?;
    check_header(&source, &bytes)?;
    Ok(bytes)
}

/// Refuse bytes whose sha256 (`digest`) is not `pin` (hex, any case).
pub fn check_pin(source: &str, pin: &str, digest: &[u8; 32]) -> Result<(), LoadError> {
    let actual = hex::encode(digest);
    if pin.eq_ignore_ascii_case(&actual) {
        Ok(())
    } else {
        Err(fail(
            source,
            format!(
                "`sha256` pin does not match the bytes read: their sha256 is {actual}, the pin says {pin}; \
                 the file changed (update the pin if that was on purpose); not compiled"
            ),
        ))
    }
}

/// Refuse empty files, non-Wasm files and core modules before compiling.
pub fn check_header(source: &str, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.is_empty() {
        return Err(fail(
            source,
            "the file is empty; expected a WebAssembly component",
        ));
    }
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(fail(
            source,
            "not a WebAssembly file (it does not start with the `\\0asm` header); expected a \
             probe component built for wasm32-wasip2",
        ));
    }
    // Bytes 6..8 are the layer: 0 for a core module, 1 for a component.
    if bytes[6..8] == [0, 0] {
        return Err(fail(
            source,
            "this is a core WebAssembly module, not a component; build the probe for \
             wasm32-wasip2 (`cargo build --target wasm32-wasip2`) or wrap the module with \
             `wasm-tools component new`",
        ));
    }
    Ok(())
}

/// The error for bytes that do not compile as a component.
pub fn invalid_component(source: &str, error: &wasmtime::Error) -> LoadError {
    fail(source, format!("not a valid component: {error:#}"))
}

/// Pre-link a compiled component against the host's imports and check that
/// it exports the world's functions.
pub fn link(
    linker: &Linker<RunState>,
    source: &str,
    component: &Component,
) -> Result<ProbePre<RunState>, LoadError> {
    let pre = linker.instantiate_pre(component).map_err(|e| {
        let text = format!("{e:#}");
        match missing_import(&text) {
            Some(import) => fail(
                source,
                format!(
                    "the probe imports `{import}`, which Watchpost does not provide; a probe may \
                     import watchpost:probe/{{log,config,host,sql}}@0.1.0 and the WASI \
                     clocks, random, cli and io interfaces"
                ),
            ),
            None => fail(source, format!("cannot be linked: {text}")),
        }
    })?;
    ProbePre::new(pre).map_err(|e| {
        fail(
            source,
            format!(
                "does not implement the watchpost:probe@0.1.0 world ({e:#}); a probe must export \
                 `describe` and `check`"
            ),
        )
    })
}

/// The import named in wasmtime's "component imports ... `NAME`, but a
/// matching implementation was not found" message.
fn missing_import(message: &str) -> Option<&str> {
    let start = message.find("component imports ")?;
    let rest = &message[start..];
    let open = rest.find('`')? + 1;
    let close = rest[open..].find('`')? + open;
    Some(&rest[open..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked_before_compiling() {
        let err = check_header("x.wasm", b"").unwrap_err();
        assert!(err.message.contains("x.wasm: the file is empty"), "{err}");
        let err = check_header("x.wasm", b"#!/bin/sh\necho hi").unwrap_err();
        assert!(err.message.contains("not a WebAssembly file"), "{err}");
        let core = wat::parse_str("(module)").unwrap();
        let err = check_header("x.wasm", &core).unwrap_err();
        assert!(
            err.message
                .contains("core WebAssembly module, not a component"),
            "{err}"
        );
        let component = wat::parse_str("(component)").unwrap();
        assert!(check_header("x.wasm", &component).is_ok());
    }

    #[test]
    fn the_missing_import_is_named() {
        let text = "component imports instance `acme:evil/net@1.0.0`, but a matching \
                    implementation was not found in the linker: oops";
        assert_eq!(missing_import(text), Some("acme:evil/net@1.0.0"));
    }
}
