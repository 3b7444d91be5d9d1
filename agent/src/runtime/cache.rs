//! The compile cache: compiled probes kept in `state_dir/cache`, so that a
//! probe is compiled once per machine rather than on every start.
//!
//! Compiling a component to native code is the slow part of loading it: a
//! Python or JavaScript probe embeds a whole interpreter and takes seconds
//! (a Rust probe, milliseconds). The cache stores wasmtime's compiled
//! artifact, keyed by the component's sha256 and a fingerprint of the
//! engine (wasmtime version, target, compiler flags and every setting that
//! changes generated code), so a new agent version or a changed engine
//! setting never meets an old artifact: it just misses.
//!
//! Loading an artifact is `unsafe` in wasmtime (its bytes become executable
//! code), so nothing is loaded blindly. Each entry starts with a header of
//! our own: a magic, the format version, the engine fingerprint, the
//! component's sha256, the artifact's length and its sha256. An entry is
//! used only when every one of these matches; a corrupt, truncated or
//! foreign one is removed, counted as rejected, and the probe is compiled
//! again. Entries are written to a temporary file, fsynced and renamed into
//! place, so a crash leaves either the old entry, the new one, or none.
//!
//! The cache holds at most `cache_size` bytes (`[agent] cache_size`):
//! after each store, the least recently used entries (by modification time,
//! refreshed on every hit) are removed until it fits. A failure of the
//! cache (a read-only disk, say) is logged and the probe is compiled as if
//! there were no cache: it never stops a probe from loading.

use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use wasmtime::Engine;
use wasmtime::component::Component;

/// First bytes of every entry: "Watchpost Compile Cache".
const MAGIC: &[u8; 8] = b"WPCCACHE";
/// Bumped whenever the layout of an entry changes.
const FORMAT: u32 = 1;
/// magic, format, reserved, engine fingerprint, component sha256, artifact
/// length, artifact sha256.
const HEADER_LEN: usize = 8 + 4 + 4 + 32 + 32 + 8 + 32;
/// File name suffix of entries.
const ENTRY_SUFFIX: &str = ".cwasm";
/// File name prefix of entries being written.
const TEMP_PREFIX: &str = ".tmp-";
/// Temporary files older than this are left over from a crash.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Where the cache lives and how big it may grow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// The cache directory (`state_dir/cache`).
    pub dir: PathBuf,
    /// Upper bound on the total size of the entries, in bytes.
    pub max_bytes: u64,
}

impl CacheSettings {
    /// The cache of an agent whose state lives in `state_dir`.
    pub fn in_state_dir(state_dir: &Path, max_bytes: u64) -> Self {
        CacheSettings {
            dir: state_dir.join("cache"),
            max_bytes,
        }
    }
}

/// What the cache did since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Probes loaded from a cache entry.
    pub hits: u64,
    /// Probes compiled because no usable entry existed.
    pub misses: u64,
    /// Entries found but refused (corrupt, truncated, foreign) and removed.
    pub rejected: u64,
}

/// An open compile cache for one engine.
pub struct CompileCache {
    settings: CacheSettings,
    /// Fingerprint of the engine's code-generation settings.
    engine_id: [u8; 32],
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
}

impl CompileCache {
    /// Open (creating it if needed, private to this user) the cache
    /// directory for artifacts compiled by `engine`.
    ///
    /// A cache directory (or the directory holding it) that is a symlink,
    /// belongs to another user or is writable by group or others is
    /// refused: its entries become native code in the agent.
    pub fn open(engine: &Engine, settings: CacheSettings) -> io::Result<Self> {
        crate::safefs::create_private_dir(&settings.dir)?;
        if let Some(parent) = settings.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::safefs::check_parent_dir(parent)?;
        }
        crate::safefs::check_private_dir(&settings.dir)?;
        Ok(CompileCache {
            settings,
            engine_id: engine_fingerprint(engine),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    /// The compiled form of component `bytes` (whose sha256 is `sha256`):
    /// from the cache when a valid entry exists, else compiled now and
    /// stored. `source` names the probe in log lines. Fails only when the
    /// bytes do not compile.
    pub fn component(
        &self,
        engine: &Engine,
        source: &str,
        sha256: &[u8; 32],
        bytes: &[u8],
    ) -> wasmtime::Result<Component> {
        let path = self.entry_path(sha256);
        let started = Instant::now();
        match self.read(engine, &path, sha256) {
            Ok(Some(component)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                touch(&path);
                tracing::debug!(
                    probe = source,
                    entry = %path.display(),
                    ms = started.elapsed().as_secs_f64() * 1000.0,
                    "compile cache hit"
                );
                return Ok(component);
            }
            Ok(None) => {}
            Err(reason) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    probe = source,
                    entry = %path.display(),
                    "compile cache entry refused ({reason}); removing it and compiling again"
                );
                let _ = fs::remove_file(&path);
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(probe = source, "compile cache miss: compiling");
        let started = Instant::now();
        let component = Component::new(engine, bytes)?;
        tracing::debug!(
            probe = source,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "compiled"
        );
        if let Err(e) = self.store(&path, sha256, &component) {
            tracing::warn!(
                probe = source,
                dir = %self.settings.dir.display(),
                "cannot store the compiled probe in the compile cache: {e}"
            );
        }
        Ok(component)
    }

    /// `HEX(component sha256)-HEX(engine fingerprint, 8 bytes).cwasm`.
    fn entry_path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.settings.dir.join(format!(
            "{}-{}{ENTRY_SUFFIX}",
            hex::encode(sha256),
            hex::encode(&self.engine_id[..8])
        ))
    }

    /// The entry at `path`: `Ok(None)` when there is none, `Err(reason)`
    /// when there is one that must not be used.
    fn read(
        &self,
        engine: &Engine,
        path: &Path,
        sha256: &[u8; 32],
    ) -> Result<Option<Component>, String> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read it: {e}")),
        };
        // Only an entry this user wrote, that no one else may change.
        {
            use std::os::unix::fs::MetadataExt;
            let meta = file
                .metadata()
                .map_err(|e| format!("cannot read it: {e}"))?;
            let me = rustix::process::geteuid().as_raw();
            if !meta.is_file() || meta.uid() != me || meta.mode() & 0o022 != 0 {
                return Err(format!(
                    "not a private file of this user (uid {}, mode {:04o})",
                    meta.uid(),
                    meta.mode() & 0o7777
                ));
            }
        }
        let mut data = Vec::new();
        io::Read::read_to_end(&mut file, &mut data).map_err(|e| format!("cannot read it: {e}"))?;
        let artifact = verify(&data, &self.engine_id, sha256)?;
        // SAFETY: `verify` checked that these bytes are, bit for bit, what
        // `Component::serialize` produced for this very component with an
        // engine of the same fingerprint (the header says so and the
        // artifact's sha256 matches the one recorded when it was written).
        // wasmtime also checks its own version and settings stamp again.
        let component = unsafe { Component::deserialize(engine, artifact) }
            .map_err(|e| format!("wasmtime refused it: {e}"))?;
        Ok(Some(component))
    }

    /// Write the entry for `component` atomically, then prune.
    fn store(&self, path: &Path, sha256: &[u8; 32], component: &Component) -> io::Result<()> {
        let artifact = component.serialize().map_err(io::Error::other)?;
        let size = (HEADER_LEN + artifact.len()) as u64;
        if size > self.settings.max_bytes {
            tracing::debug!(
                size,
                max = self.settings.max_bytes,
                "compiled probe is larger than the whole compile cache; not stored"
            );
            return Ok(());
        }
        let header = header(&self.engine_id, sha256, &artifact);
        let mut temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.settings.dir)?;
        temp.write_all(&header)?;
        temp.write_all(&artifact)?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|e| e.error)?;
        // Make the rename itself durable.
        File::open(&self.settings.dir)?.sync_all()?;
        self.prune(path)
    }

    /// Remove the least recently used entries until the cache fits its
    /// bound (never `keep`, the entry just written), and temporary files
    /// left by a crash.
    fn prune(&self, keep: &Path) -> io::Result<()> {
        let mut entries = Vec::new();
        let mut total = 0u64;
        for entry in fs::read_dir(&self.settings.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.starts_with(TEMP_PREFIX) {
                let age = SystemTime::now()
                    .duration_since(modified)
                    .unwrap_or_default();
                if age > STALE_TEMP_AGE {
                    let _ = fs::remove_file(entry.path());
                }
            } else if name.ends_with(ENTRY_SUFFIX) && meta.is_file() {
                total += meta.len();
                entries.push((modified, meta.len(), entry.path()));
            }
        }
        entries.sort();
        for (_, size, path) in entries {
            if total <= self.settings.max_bytes {
                break;
            }
            if path != keep && fs::remove_file(&path).is_ok() {
                tracing::debug!(entry = %path.display(), "compile cache: removed least recently used entry");
                total -= size;
            }
        }
        Ok(())
    }
}

/// Mark an entry as just used (its modification time orders the LRU).
fn touch(path: &Path) {
    if let Ok(file) = File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

fn header(engine_id: &[u8; 32], sha256: &[u8; 32], artifact: &[u8]) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(engine_id);
    header.extend_from_slice(sha256);
    header.extend_from_slice(&(artifact.len() as u64).to_le_bytes());
    header.extend_from_slice(&Sha256::digest(artifact));
    debug_assert_eq!(header.len(), HEADER_LEN);
    header
}

/// The artifact inside entry `data`, if the entry is whole and was made
/// for this engine and this component; else why not.
fn verify<'a>(data: &'a [u8], engine_id: &[u8; 32], sha256: &[u8; 32]) -> Result<&'a [u8], String> {
    if data.len() < HEADER_LEN {
        return Err(format!(
            "truncated: {} bytes, shorter than its header",
            data.len()
        ));
    }
    let (header, artifact) = data.split_at(HEADER_LEN);
    let field = |start: usize, len: usize| &header[start..start + len];
    if field(0, 8) != MAGIC {
        return Err("not a Watchpost compile cache entry".into());
    }
    let format = u32::from_le_bytes(field(8, 4).try_into().unwrap_or_default());
    if format != FORMAT {
        return Err(format!("entry format {format}, this agent writes {FORMAT}"));
    }
    if field(16, 32) != engine_id {
        return Err("compiled by a different wasmtime version or engine configuration".into());
    }
    if field(48, 32) != sha256 {
        return Err("compiled from a different component".into());
    }
    let length = u64::from_le_bytes(field(80, 8).try_into().unwrap_or_default());
    if length != artifact.len() as u64 {
        return Err(format!(
            "truncated or padded: the header says {length} bytes of code, the file holds {}",
            artifact.len()
        ));
    }
    if Sha256::digest(artifact).as_slice() != field(88, 32) {
        return Err("corrupt: the checksum of the compiled code does not match".into());
    }
    Ok(artifact)
}

/// sha256 of everything in `engine` that decides whether compiled code is
/// valid for it: wasmtime's own compatibility hash (version, target,
/// compiler flags, tunables, wasm features) and this cache's format.
pub fn engine_fingerprint(engine: &Engine) -> [u8; 32] {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.0.update(MAGIC);
    hasher.0.update(FORMAT.to_le_bytes());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

/// A `Hasher` that feeds sha256, so that a `Hash` value yields a stable,
/// collision-resistant digest (std's hashers are neither).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests;
