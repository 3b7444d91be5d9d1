//! Soft state without an fsync per probe: a journal of small changes plus
//! a snapshot of every probe's state, both in `state_dir`.
//!
//! - `probes.journal`: JSON lines `{"probe": NAME, "delta": DELTA}`, one
//!   per changed probe, appended by the writer once per flush interval in
//!   one `write` and one `fdatasync` for all of them. A delta is what a
//!   probe's state gained since its last record (see [`Journaled`]), not
//!   the whole state, so the bytes stay small.
//! - `probes.snapshot.json`: every probe's whole state, replaced
//!   crash-safely ([`super::atomic`]) when the journal has grown past
//!   [`compact_at`]; then the journal starts over.
//!
//! Every state and delta carries a sequence number (runs folded in), so
//! replaying a record already in the snapshot or a per-probe file is a
//! no-op and the order of the sources cannot go wrong. A torn last line
//! (a crash in the middle of a write) is skipped.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Version of the snapshot format.
const FORMAT: u32 = 1;

/// A state saved as snapshots plus journaled changes.
pub trait Journaled: Serialize + DeserializeOwned + Clone + Default + Send + 'static {
    /// What a journal record holds, as read back.
    type Delta: DeserializeOwned;
    /// Changes folded in so far (0 for a fresh state).
    fn seq(&self) -> u64;
    /// Write the record of what changed since `since` (a `seq` of an
    /// earlier version of this state) as JSON to `out`.
    fn write_delta(&self, since: u64, out: &mut Vec<u8>) -> serde_json::Result<()>;
    /// Fold a record in; one not newer than the state is ignored.
    fn apply(&mut self, delta: Self::Delta);
}

#[derive(Serialize)]
struct SnapshotRef<'a, T> {
    format: u32,
    probes: &'a BTreeMap<String, T>,
}

#[derive(Deserialize)]
struct Snapshot<T> {
    format: u32,
    probes: BTreeMap<String, T>,
}

#[derive(Deserialize)]
struct Record<D> {
    probe: String,
    delta: D,
}

/// The journal and snapshot files of a state directory.
pub struct Journal {
    dir: PathBuf,
    file: Option<File>,
    /// Bytes in the journal file now.
    journal_bytes: u64,
    /// Size of the last snapshot written.
    snapshot_bytes: u64,
}

/// Journal size past which the snapshot is rewritten: 8 times the last
/// snapshot, at least 1 MiB, at most 64 MiB. At 1,000 probes a second this
/// rewrites the snapshot about once a minute.
pub fn compact_at(snapshot_bytes: u64) -> u64 {
    snapshot_bytes.saturating_mul(8).clamp(1 << 20, 64 << 20)
}

impl Journal {
    pub fn new(dir: &Path) -> Journal {
        Journal {
            dir: dir.to_path_buf(),
            file: None,
            journal_bytes: 0,
            snapshot_bytes: 0,
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join("probes.journal")
    }

    fn snapshot_path(&self) -> PathBuf {
        self.dir.join("probes.snapshot.json")
    }

    /// Fold the snapshot and then the journal into `states` (each record
    /// only where it is newer). Unreadable parts are logged and skipped.
    pub fn load<T: Journaled>(&mut self, states: &mut BTreeMap<String, T>) {
        let snapshot = self.snapshot_path();
        match std::fs::read(&snapshot) {
            Ok(bytes) => {
                self.snapshot_bytes = bytes.len() as u64;
                match serde_json::from_slice::<Snapshot<T>>(&bytes) {
                    Ok(s) if s.format == FORMAT => {
                        for (name, state) in s.probes {
                            match states.get(&name) {
                                Some(known) if known.seq() >= state.seq() => {}
                                _ => {
                                    states.insert(name, state);
                                }
                            }
                        }
                    }
                    Ok(s) => tracing::error!(
                        "state snapshot {} has format {}, this agent reads format {FORMAT}; ignoring it",
                        snapshot.display(),
                        s.format
                    ),
                    Err(e) => tracing::error!(
                        "state snapshot {} is unusable ({e}); ignoring it (the per-probe files and the journal are used)",
                        snapshot.display()
                    ),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!("cannot read {}: {e}", snapshot.display()),
        }
        let path = self.journal_path();
        let Ok(file) = File::open(&path) else {
            return;
        };
        let mut reader = io::BufReader::new(file);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("cannot read {}: {e}", path.display());
                    break;
                }
            }
            number += 1;
            if line.last() != Some(&b'\n') {
                tracing::warn!(
                    "{}: line {number} is incomplete (the agent stopped while writing it); skipped",
                    path.display()
                );
                // Cut it off, or the next record appended would be glued
                // to it and lost at the next start.
                self.cut_journal(&path);
                break;
            }
            self.journal_bytes += line.len() as u64;
            match serde_json::from_slice::<Record<T::Delta>>(&line) {
                Ok(record) => states.entry(record.probe).or_default().apply(record.delta),
                Err(e) => tracing::warn!(
                    "{}: line {number} is unusable ({e}); skipped",
                    path.display()
                ),
            }
        }
    }

    /// Truncate the journal to its complete lines (`journal_bytes`).
    fn cut_journal(&mut self, path: &Path) {
        let cut = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .and_then(|file| {
                file.set_len(self.journal_bytes)?;
                file.sync_data()
            });
        if let Err(e) = cut {
            tracing::error!(
                "cannot cut the incomplete last line off {}: {e}",
                path.display()
            );
        }
    }

    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            // Private like every state file, and never through a link
            // planted in the state directory.
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(self.journal_path())?;
            self.journal_bytes = file.metadata()?.len();
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Append `records` (whole JSON lines) in one write, then `fdatasync`.
    pub fn append(&mut self, records: &[u8]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let file = self.file()?;
        file.write_all(records)?;
        file.sync_data()?;
        self.journal_bytes += records.len() as u64;
        Ok(())
    }

    /// True when the journal is long enough to be folded into a snapshot.
    pub fn wants_compaction(&self) -> bool {
        self.journal_bytes >= compact_at(self.snapshot_bytes)
    }

    /// Write every state as the snapshot (durably), then empty the journal.
    pub fn compact<T: Serialize>(&mut self, states: &BTreeMap<String, T>) -> io::Result<()> {
        let bytes = serde_json::to_vec(&SnapshotRef {
            format: FORMAT,
            probes: states,
        })
        .map_err(io::Error::other)?;
        super::atomic::write(&self.snapshot_path(), &bytes)?;
        self.snapshot_bytes = bytes.len() as u64;
        // Replaying what is left (after a crash before this) is harmless:
        // every record in it is already in the snapshot.
        self.file()?.set_len(0)?;
        self.journal_bytes = 0;
        Ok(())
    }
}

impl Journal {
    /// Forget the snapshot and the journal, once every probe's own file
    /// holds its latest state (a clean shutdown): the next start reads the
    /// probe files alone, so a probe file set aside starts that probe
    /// afresh, as it says.
    pub fn clear(&mut self) -> io::Result<()> {
        match std::fs::remove_file(self.snapshot_path()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.snapshot_bytes = 0;
        self.file()?.set_len(0)?;
        self.journal_bytes = 0;
        Ok(())
    }
}

/// One journal line for `probe`: `{"probe":...,"delta":...}\n`.
pub fn record<T: Journaled>(
    out: &mut Vec<u8>,
    probe: &str,
    state: &T,
    since: u64,
) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"probe\":");
    serde_json::to_writer(&mut *out, probe)?;
    out.extend_from_slice(b",\"delta\":");
    state.write_delta(since, out)?;
    out.extend_from_slice(b"}\n");
    Ok(())
}
