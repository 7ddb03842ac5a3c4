//! The board's state directory: a lock, so that one process at a time writes
//! the board's clocks, and a store file holding the clocks as they were before
//! the first write, so that a process that died without restoring them
//! (SIGKILL, an out-of-memory kill, an abort) is undone by the next start or by
//! hand (`ecoedge board --restore`), as `jetson_clocks --store` / `--restore`
//! would.
//!
//! Both live in [`DEFAULT_DIR`] under the board's root (`/run/ecoedge` on a
//! board: a tmpfs, cleared by the reboot that also resets the clocks; inside
//! the tree for a fake one), or in a directory the caller names.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::restore::{SavedClock, SavedEmc};
use crate::sysfs::{Error, Result};

/// The state directory's board path: under the root of the board's files.
pub const DEFAULT_DIR: &str = "/run/ecoedge";
const LOCK_FILE: &str = "board.lock";
const STORE_FILE: &str = "store.json";

/// What the store file holds: the clocks as they were before a process (the
/// `pid`) first wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The process that wrote the store.
    pub pid: u32,
    /// Every cpufreq policy's and the GPU's governor and limits.
    pub clocks: Vec<SavedClock>,
    /// The memory clock's lock and rate, where the board has the interface.
    pub emc: Option<SavedEmc>,
}

/// The state directory of one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    dir: PathBuf,
}

/// Holds the board for this process until dropped (the kernel drops it when
/// the process ends, however it ends).
#[derive(Debug)]
pub struct BoardLock {
    _file: File,
}

impl StateDir {
    /// The state directory at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateDir { dir: dir.into() }
    }

    /// Where it is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, file: &str, source: io::Error) -> Error {
        Error::State {
            path: self.dir.join(file),
            source,
        }
    }

    /// Takes the board's lock (an exclusive `flock` on `board.lock`), writing
    /// this process's id into it. Another holder: [`Error::Locked`] with its
    /// id, never a wait.
    pub fn lock(&self) -> Result<BoardLock> {
        create_private_dir(&self.dir).map_err(|e| self.io("", e))?;
        let path = self.dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| self.io(LOCK_FILE, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::Locked {
                    path,
                    pid: holder.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(self.io(LOCK_FILE, e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .map_err(|e| self.io(LOCK_FILE, e))?;
        Ok(BoardLock { _file: file })
    }

    /// Writes the store, atomically: see [`StateDir::write_json`].
    pub fn write_store(&self, stored: &Stored) -> Result<()> {
        self.write_json(STORE_FILE, stored)
    }

    /// The store, if one is there.
    pub fn read_store(&self) -> Result<Option<Stored>> {
        self.read_json(STORE_FILE)
    }

    /// Removes the store (after a verified restore); none there is fine.
    pub fn remove_store(&self) -> Result<()> {
        self.remove(STORE_FILE)
    }

    /// Writes `value` as JSON to `file` in the directory, atomically (a
    /// temporary file renamed over it), so a crash leaves the old contents or
    /// the new, never half of them. For the stores of other clocks a board
    /// holds under the same lock (an NVML GPU's lock, say).
    pub fn write_json<T: Serialize>(&self, file: &str, value: &T) -> Result<()> {
        let tmp = self.dir.join(format!("{file}.tmp"));
        let text = serde_json::to_string_pretty(value).map_err(io::Error::other);
        text.and_then(|text| {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join(file))
        })
        .map_err(|e| self.io(file, e))
    }

    /// What `file` holds, if it is there.
    pub fn read_json<T: DeserializeOwned>(&self, file: &str) -> Result<Option<T>> {
        let text = match std::fs::read_to_string(self.dir.join(file)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(file, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| self.io(file, io::Error::new(io::ErrorKind::InvalidData, e)))
    }

    /// Removes `file`; none there is fine.
    pub fn remove(&self, file: &str) -> Result<()> {
        match std::fs::remove_file(self.dir.join(file)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(self.io(file, e)),
            _ => Ok(()),
        }
    }
}

/// Creates `dir` (and its parents) readable by its owner only: the lock and
/// store are root's business.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::Limits;

    fn stored() -> Stored {
        Stored {
            pid: 7,
            clocks: vec![SavedClock {
                governor_file: "/sys/cpu/governor".into(),
                governor: "schedutil".into(),
                limits: Limits {
                    min: "/sys/cpu/min".into(),
                    max: "/sys/cpu/max".into(),
                },
                range: (115_200, 1_907_200),
            }],
            emc: None,
        }
    }

    #[test]
    fn a_store_round_trips_and_goes_away() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("run/ecoedge"));
        let _lock = state.lock().unwrap();
        assert_eq!(state.read_store().unwrap(), None);
        state.write_store(&stored()).unwrap();
        assert_eq!(state.read_store().unwrap(), Some(stored()));
        state.remove_store().unwrap();
        assert_eq!(state.read_store().unwrap(), None);
        state.remove_store().unwrap();
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        let held = state.lock().unwrap();
        match state.lock() {
            Err(Error::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(held);
        state.lock().unwrap();
    }

    #[test]
    fn a_corrupt_store_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        std::fs::write(tmp.path().join(STORE_FILE), "{").unwrap();
        let e = state.read_store().unwrap_err().to_string();
        assert!(e.contains("store.json"), "{e}");
    }
}
