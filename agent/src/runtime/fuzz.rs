//! Property tests of the component loader: arbitrary bytes, and a real
//! probe component with bytes flipped, cut or inserted, are either loaded
//! or refused with a message naming the file; nothing panics.

use super::{Runtime, Services, engine::PoolSize};
use proptest::prelude::*;
use std::sync::{Arc, LazyLock};

static RUNTIME: LazyLock<(tokio::runtime::Runtime, Runtime)> = LazyLock::new(|| {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(PoolSize { instances: 4 }).unwrap();
    (tokio, runtime)
});

fn load(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (tokio, runtime) = &*RUNTIME;
    let services = Arc::new(Services::default());
    match tokio.block_on(runtime.load_bytes(
        "fuzzed.wasm",
        bytes,
        &services,
        super::Limits::default().memory,
    )) {
        Ok(_) => {}
        Err(e) => prop_assert!(e.message.starts_with("fuzzed.wasm: "), "{e}"),
    }
    Ok(())
}

/// A mutation of a valid component: (position as a fraction, kind, byte).
fn mutate(valid: &[u8], at: f64, kind: u8, byte: u8) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    let i = ((bytes.len() as f64 * at) as usize).min(bytes.len() - 1);
    match kind % 4 {
        0 => bytes[i] ^= byte | 1,
        1 => bytes.truncate(i),
        2 => bytes.insert(i, byte),
        _ => {
            bytes.remove(i);
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_are_refused_with_the_file_named(
        body in prop::collection::vec(any::<u8>(), 0..256),
        header: bool,
    ) {
        // Half the cases carry a component header, to get past the first check.
        let mut bytes = if header { b"\0asm\x0d\0\x01\0".to_vec() } else { Vec::new() };
        bytes.extend(body);
        load(&bytes)?;
    }
}

proptest! {
    // Each case may compile a whole component: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_mutated_probe_loads_or_is_refused_clearly(at in 0.0f64..1.0, kind: u8, byte: u8) {
        let valid = crate::builtin::bytes("host-cpu").expect("the built-in host-cpu probe");
        load(&mutate(valid, at, kind, byte))?;
    }
}
