//! The `sha256` pin holds for the bytes that are compiled, not for an
//! earlier read of the file: a probe file swapped after the config was
//! parsed (and its pin checked) is refused at load, never compiled.

use super::*;
use crate::config::WasmSource;

#[tokio::test]
async fn a_file_swapped_after_the_config_was_parsed_is_not_compiled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.wasm");
    let names = crate::builtin::names();
    let pinned = crate::builtin::bytes(names[0]).unwrap();
    let other = crate::builtin::bytes(names[1]).unwrap();
    assert_ne!(pinned, other);
    std::fs::write(&path, pinned).unwrap();
    let pin = hex::encode(Sha256::digest(pinned));
    let text = format!("[[probe]]\nname = \"x\"\nwasm = \"probe.wasm\"\nsha256 = \"{pin}\"\n");
    let config = crate::config::parse_str("w.toml", &text, dir.path()).expect("the pin matches");
    let spec = &config.probes[0];
    assert_eq!(spec.sha256.as_deref(), Some(pin.as_str()));

    // Swapped after the parse: a valid component, but not the pinned one.
    std::fs::write(&path, other).unwrap();
    let runtime = Runtime::new(engine::PoolSize { instances: 2 }).unwrap();
    let services = Arc::new(Services::default());
    let err = match runtime
        .load_source(&spec.wasm, spec.sha256.as_deref(), &services, spec.memory)
        .await
    {
        Ok(probe) => panic!("loaded {} despite the pin", probe.sha256),
        Err(e) => e,
    };
    assert!(
        err.message.contains("pin does not match the bytes read"),
        "{err}"
    );
    assert!(
        err.message.contains(&hex::encode(Sha256::digest(other))),
        "{err}"
    );

    // The pinned bytes load, and what was compiled is what was pinned.
    std::fs::write(&path, pinned).unwrap();
    let probe = runtime
        .load_source(
            &WasmSource::File(path.clone()),
            Some(&pin),
            &services,
            super::Limits::default().memory,
        )
        .await
        .unwrap();
    assert_eq!(probe.sha256, pin);
}
