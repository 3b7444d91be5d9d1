//! Unit tests of the compile cache: hits and misses, entries that must not
//! be loaded (corrupt, truncated, foreign), and the size bound.

use super::*;
use wasmtime::{Config, OptLevel};

fn engine(opt: OptLevel) -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true).cranelift_opt_level(opt);
    Engine::new(&config).unwrap()
}

fn component(export: &str) -> (Vec<u8>, [u8; 32]) {
    let bytes = wat::parse_str(format!(
        r#"(component (core module (func (export "{export}"))))"#
    ))
    .unwrap();
    let digest = Sha256::digest(&bytes).into();
    (bytes, digest)
}

fn open(engine: &Engine, dir: &Path, max_bytes: u64) -> CompileCache {
    CompileCache::open(
        engine,
        CacheSettings {
            dir: dir.to_path_buf(),
            max_bytes,
        },
    )
    .unwrap()
}

fn stats(hits: u64, misses: u64, rejected: u64) -> CacheStats {
    CacheStats {
        hits,
        misses,
        rejected,
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ENTRY_SUFFIX))
        .collect();
    found.sort();
    found
}

#[test]
fn the_first_load_compiles_and_the_second_hits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(OptLevel::Speed);
    let (bytes, digest) = component("f");
    let cache = open(&engine, dir.path(), 1 << 30);
    cache.component(&engine, "f.wasm", &digest, &bytes).unwrap();
    assert_eq!(cache.stats(), stats(0, 1, 0));
    assert_eq!(entries(dir.path()).len(), 1);
    // A new cache on the same directory (a restart) finds the entry.
    let again = open(&engine, dir.path(), 1 << 30);
    again.component(&engine, "f.wasm", &digest, &bytes).unwrap();
    assert_eq!(again.stats(), stats(1, 0, 0));
}

/// Damage the one entry in `dir` with `damage`, then check that a load
/// refuses it, compiles again and leaves a good entry behind.
fn refused_after(damage: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(OptLevel::Speed);
    let (bytes, digest) = component("f");
    let cache = open(&engine, dir.path(), 1 << 30);
    cache.component(&engine, "f.wasm", &digest, &bytes).unwrap();
    damage(&entries(dir.path())[0]);
    cache.component(&engine, "f.wasm", &digest, &bytes).unwrap();
    assert_eq!(cache.stats(), stats(0, 2, 1));
    cache.component(&engine, "f.wasm", &digest, &bytes).unwrap();
    assert_eq!(cache.stats(), stats(1, 2, 1), "the entry was written again");
}

#[test]
fn a_corrupt_entry_is_refused_and_recompiled() {
    refused_after(|path| {
        let mut data = fs::read(path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0x40;
        fs::write(path, data).unwrap();
    });
}

#[test]
fn a_truncated_entry_is_refused_and_recompiled() {
    refused_after(|path| {
        let data = fs::read(path).unwrap();
        fs::write(path, &data[..data.len() / 2]).unwrap();
    });
    refused_after(|path| fs::write(path, &fs::read(path).unwrap()[..10]).unwrap());
    refused_after(|path| fs::write(path, b"").unwrap());
}

#[test]
fn a_file_that_is_not_an_entry_is_refused() {
    refused_after(|path| fs::write(path, vec![7u8; 4096]).unwrap());
}

#[test]
fn an_entry_for_another_component_is_refused() {
    let (other, other_digest) = component("g");
    refused_after(move |path| {
        // A valid entry, for a different component, under this one's name.
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(OptLevel::Speed);
        let cache = open(&engine, dir.path(), 1 << 30);
        cache
            .component(&engine, "g.wasm", &other_digest, &other)
            .unwrap();
        fs::copy(&entries(dir.path())[0], path).unwrap();
    });
}

#[test]
fn an_entry_of_another_engine_configuration_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, digest) = component("f");
    let speed = engine(OptLevel::Speed);
    let none = engine(OptLevel::None);
    assert_ne!(engine_fingerprint(&speed), engine_fingerprint(&none));

    let written = open(&speed, dir.path(), 1 << 30);
    written
        .component(&speed, "f.wasm", &digest, &bytes)
        .unwrap();
    // The other engine looks under another name: a plain miss.
    let other = open(&none, dir.path(), 1 << 30);
    other.component(&none, "f.wasm", &digest, &bytes).unwrap();
    assert_eq!(other.stats(), stats(0, 1, 0));
    assert_eq!(entries(dir.path()).len(), 2);

    // An entry of the first engine put under the second one's name is
    // refused by its header, never handed to wasmtime.
    let speed_entry = written.entry_path(&digest);
    let none_entry = other.entry_path(&digest);
    fs::copy(&speed_entry, &none_entry).unwrap();
    other.component(&none, "f.wasm", &digest, &bytes).unwrap();
    assert_eq!(other.stats(), stats(0, 2, 1));
}

#[test]
fn the_engine_fingerprint_is_stable_for_one_configuration() {
    assert_eq!(
        engine_fingerprint(&engine(OptLevel::Speed)),
        engine_fingerprint(&engine(OptLevel::Speed))
    );
}

#[test]
fn bytes_that_do_not_compile_fail_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(OptLevel::Speed);
    let cache = open(&engine, dir.path(), 1 << 30);
    let bytes = b"\0asm\x0d\0\x01\0garbage".to_vec();
    let digest = Sha256::digest(&bytes).into();
    assert!(
        cache
            .component(&engine, "bad.wasm", &digest, &bytes)
            .is_err()
    );
    assert!(entries(dir.path()).is_empty());
}

fn set_age(path: &Path, seconds_ago: u64) {
    let file = File::options().append(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(seconds_ago))
        .unwrap();
}

#[test]
fn the_least_recently_used_entries_go_when_the_cache_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(OptLevel::Speed);
    let (a, a_digest) = component("a");
    let (b, b_digest) = component("b");
    let (c, c_digest) = component("c");
    // Measure one entry, then allow a little more than two.
    let probe = open(&engine, dir.path(), 1 << 30);
    probe.component(&engine, "a", &a_digest, &a).unwrap();
    let size = fs::metadata(probe.entry_path(&a_digest)).unwrap().len();
    let cache = open(&engine, dir.path(), size * 5 / 2);

    cache.component(&engine, "b", &b_digest, &b).unwrap();
    set_age(&cache.entry_path(&a_digest), 300);
    set_age(&cache.entry_path(&b_digest), 200);
    // A hit makes `a` the most recently used.
    cache.component(&engine, "a", &a_digest, &a).unwrap();
    assert_eq!(cache.stats(), stats(1, 1, 0));
    cache.component(&engine, "c", &c_digest, &c).unwrap();

    assert!(cache.entry_path(&a_digest).exists());
    assert!(
        !cache.entry_path(&b_digest).exists(),
        "b was the least recently used"
    );
    assert!(cache.entry_path(&c_digest).exists());
}

#[test]
fn an_entry_larger_than_the_whole_cache_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(OptLevel::Speed);
    let (bytes, digest) = component("f");
    let cache = open(&engine, dir.path(), 64);
    cache.component(&engine, "f.wasm", &digest, &bytes).unwrap();
    cache.component(&engine, "f.wasm", &digest, &bytes).unwrap();
    assert_eq!(cache.stats(), stats(0, 2, 0));
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn temporary_files_left_by_a_crash_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(OptLevel::Speed);
    let stale = dir.path().join(format!("{TEMP_PREFIX}crashed"));
    let fresh = dir.path().join(format!("{TEMP_PREFIX}writing"));
    fs::write(&stale, b"half an entry").unwrap();
    fs::write(&fresh, b"being written").unwrap();
    set_age(&stale, STALE_TEMP_AGE.as_secs() + 60);
    let (bytes, digest) = component("f");
    let cache = open(&engine, dir.path(), 1 << 30);
    cache.component(&engine, "f.wasm", &digest, &bytes).unwrap();
    assert!(!stale.exists());
    assert!(fresh.exists(), "another writer may still be busy with it");
}

#[test]
fn the_cache_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("state/cache");
    open(&engine(OptLevel::Speed), &cache_dir, 1 << 30);
    let mode = fs::metadata(&cache_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}
