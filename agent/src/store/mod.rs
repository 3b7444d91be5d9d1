//! Persistent state in `state_dir`: what the agent must remember across a
//! restart or a crash. One JSON file per probe in `probes/`, replaced
//! crash-safely ([`atomic`]); a file that cannot be read back is set aside
//! (renamed `*.corrupt-TIMESTAMP`) with a logged message, never silently
//! overwritten. [`writer`] batches writes off the probe runs' path: soft
//! changes go to a [`journal`] (one write and one fsync per interval for
//! every changed probe), changes something acts on to the probe's file.
//!
//! The store knows files, not what is in them: it saves and loads any
//! serde value by probe name, so it depends on nothing else in the agent
//! (the policy decides what a probe's state is).

pub mod atomic;
pub mod journal;
pub mod writer;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Version of the probe state file format.
const FORMAT: u32 = 1;

/// What a probe's file holds (`T` is the probe's state).
#[derive(Serialize)]
struct ProbeFile<'a, T> {
    format: u32,
    probe: &'a str,
    state: &'a T,
}

/// A probe's file as read back.
#[derive(Deserialize)]
struct ProbeFileOwned<T> {
    format: u32,
    state: T,
}

/// The `state_dir` and what lives in it.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Open (and create) the state directory; the error says which
    /// directory and what to do.
    ///
    /// The directory (created 0700 when missing) and its subdirectories
    /// (`probes`, `cache`, `drills`) must be the agent user's and not
    /// writable by group or others: the agent, often root, trusts what is
    /// in them (the compile cache holds native code it loads).
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        let probes = dir.join("probes");
        crate::safefs::create_private_dir(&probes).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the state directory ({e}); set `state_dir` in [agent] to a writable directory"
            )
        })?;
        for sub in [
            dir.to_path_buf(),
            probes.clone(),
            dir.join("cache"),
            dir.join("drills"),
        ] {
            if sub != dir && std::fs::symlink_metadata(&sub).is_err() {
                continue;
            }
            crate::safefs::check_private_dir(&sub)
                .map_err(|e| anyhow::anyhow!("refusing the state directory: {e}"))?;
        }
        let probe = probes.join(format!(".write-test-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(|e| {
            anyhow::anyhow!(
                "the state directory {} is not writable: {e}; set `state_dir` in [agent] to a writable directory",
                dir.display()
            )
        })?;
        let _ = std::fs::remove_file(&probe);
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn probe_path(&self, name: &str) -> PathBuf {
        self.dir.join("probes").join(format!("{name}.json"))
    }

    /// Write one probe's state durably.
    pub fn save_probe<T: Serialize>(&self, name: &str, state: &T) -> io::Result<()> {
        let file = ProbeFile {
            format: FORMAT,
            probe: name,
            state,
        };
        let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
        atomic::write(&self.probe_path(name), &bytes)
    }

    /// Read one probe's state, if it has been saved (an unreadable file is
    /// set aside and logged).
    pub fn load_probe<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let path = self.probe_path(name);
        if !path.exists() {
            return None;
        }
        read_probe_file(&path)
            .map_err(|problem| set_aside(&path, &problem))
            .ok()
    }

    /// Every probe's latest state: its own file, the snapshot and the
    /// journal folded together (see [`journal`]), and the probes whose own
    /// file is older than that.
    pub fn load_all<T: journal::Journaled>(&self) -> (BTreeMap<String, T>, Vec<String>) {
        let mut states: BTreeMap<String, T> = self.load_probes();
        let own: BTreeMap<String, u64> = states.iter().map(|(n, s)| (n.clone(), s.seq())).collect();
        journal::Journal::new(&self.dir).load(&mut states);
        let stale = states
            .iter()
            .filter(|(name, state)| own.get(*name) != Some(&state.seq()))
            .map(|(name, _)| name.clone())
            .collect();
        (states, stale)
    }

    /// Read every probe's state. Unreadable files are set aside and logged.
    pub fn load_probes<T: DeserializeOwned>(&self) -> BTreeMap<String, T> {
        let mut states = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(self.dir.join("probes")) else {
            return states;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|n| !n.starts_with('.'))
            else {
                continue;
            };
            match read_probe_file(&path) {
                Ok(state) => {
                    states.insert(name.to_string(), state);
                }
                Err(problem) => set_aside(&path, &problem),
            }
        }
        states
    }
}

fn read_probe_file<T: DeserializeOwned>(path: &Path) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let file: ProbeFileOwned<T> =
        serde_json::from_slice(&bytes).map_err(|e| format!("it is not valid state JSON: {e}"))?;
    if file.format != FORMAT {
        return Err(format!(
            "it has format {}, this agent reads format {FORMAT}",
            file.format
        ));
    }
    Ok(file.state)
}

/// Rename a bad state file out of the way, so it is kept for inspection
/// and not overwritten by the fresh state.
fn set_aside(path: &Path, problem: &str) {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = path.with_extension(format!("json.corrupt-{stamp}"));
    match std::fs::rename(path, &aside) {
        Ok(()) => tracing::error!(
            "state file {} is unusable ({problem}); set it aside as {} and starting that probe with a fresh state",
            path.display(),
            aside.display()
        ),
        Err(e) => tracing::error!(
            "state file {} is unusable ({problem}) and could not be set aside ({e}); starting that probe with a fresh state",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    struct State {
        failures: u32,
    }

    #[test]
    fn states_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.save_probe("disk", &State { failures: 7 }).unwrap();
        let loaded: BTreeMap<String, State> = store.load_probes();
        assert_eq!(loaded["disk"].failures, 7);
        assert_eq!(
            store.load_probe::<State>("disk"),
            Some(State { failures: 7 })
        );
        let text = std::fs::read_to_string(dir.path().join("probes/disk.json")).unwrap();
        assert_eq!(
            text,
            r#"{"format":1,"probe":"disk","state":{"failures":7}}"#
        );
    }

    #[test]
    fn a_corrupt_file_is_set_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("probes/disk.json"), b"{ not json").unwrap();
        assert!(store.load_probes::<State>().is_empty());
        let names: Vec<String> = std::fs::read_dir(dir.path().join("probes"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with("disk.json.corrupt-"), "{names:?}");
        assert_eq!(
            std::fs::read(dir.path().join("probes").join(&names[0])).unwrap(),
            b"{ not json"
        );
    }
}
