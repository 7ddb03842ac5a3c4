//! Saving the board's clock settings and putting them back, whatever happens.
//!
//! Like `jetson_clocks --store` / `--restore`: [`RestoreGuard::save`] reads the
//! governor and limits of every cpufreq policy and of the GPU, and the memory
//! (EMC) clock's lock and rate, before anything is written; they come back when
//! the guard is dropped (normal exit, or unwinding
//! after a panic), and on Ctrl-C or SIGTERM once [`RestoreGuard::watch_signals`]
//! runs a handler thread, which restores and then exits with 130 or 143 (the
//! shell's 128 + signal number).
//!
//! Limits: with `panic = "abort"` nothing unwinds, so nothing is restored on a
//! panic; and after the guard is dropped, signal-hook leaves its (now idle)
//! handler installed, so Ctrl-C no longer ends the process by itself. The guard is
//! meant to live as long as the process.

use crate::cpufreq::discover_policies;
use crate::devfreq::{find_gpu, gpu_limits};
use crate::emc::{EmcFiles, find_emc};
use crate::sysfs::{Error, Limits, Result, Sysfs};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// One clock's saved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedClock {
    /// Its governor file.
    pub governor_file: PathBuf,
    /// The governor it had.
    pub governor: String,
    /// Its limit files.
    pub limits: Limits,
    /// The `(min, max)` it had.
    pub range: (u32, u32),
}

impl SavedClock {
    fn read(sysfs: &Sysfs, governor_file: PathBuf, limits: Limits) -> Result<Self> {
        Ok(SavedClock {
            governor: sysfs.read_string(&governor_file)?,
            range: limits.read(sysfs)?,
            governor_file,
            limits,
        })
    }

    /// Limits first (ordered so `min <= max` holds throughout), then the governor.
    /// Best effort: when one limit file is broken (refuses writes, or is not
    /// a file any more), the other limit and the governor are still put back,
    /// and the first error is returned.
    fn restore(&self, sysfs: &Sysfs) -> Result<()> {
        let limits = self.limits.set(sysfs, self.range.0, self.range.1);
        if limits.is_err() {
            for (file, value) in [
                (&self.limits.min, self.range.0),
                (&self.limits.max, self.range.1),
            ] {
                let _ = sysfs.write(file, &value.to_string());
            }
        }
        let governor = match sysfs.read_string(&self.governor_file) {
            Ok(g) if g == self.governor => Ok(()),
            _ => sysfs.write_verified(&self.governor_file, &self.governor),
        };
        limits.and(governor)
    }
}

/// The memory (EMC) clock's saved settings: whether its rate was pinned
/// (`mrq_rate_locked`) and the rate (`rate`), the two files [`crate::EmcFreq`]
/// writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedEmc {
    /// Its files.
    pub files: EmcFiles,
    /// Whether the rate was pinned.
    pub locked: bool,
    /// The rate it had, Hz.
    pub rate: u32,
}

impl SavedEmc {
    fn read(sysfs: &Sysfs, files: EmcFiles) -> Result<Self> {
        Ok(SavedEmc {
            locked: files.locked(sysfs)?,
            rate: files.current(sysfs)?,
            files,
        })
    }

    /// Reads first and writes only what differs, each write verified. The rate
    /// can only be set while locked, so: lock, rate, then unlock if it was
    /// unlocked. Unlocked then and now, the rate is the bandwidth manager's and
    /// is left to it.
    fn restore(&self, sysfs: &Sysfs) -> Result<()> {
        let locked_now = self.files.locked(sysfs)?;
        if !locked_now && !self.locked {
            return Ok(());
        }
        if !locked_now {
            sysfs.write_verified(&self.files.lock, "1")?;
        }
        if self.files.current(sysfs)? != self.rate {
            self.files.set_rate(sysfs, self.rate)?;
        }
        if !self.locked {
            sysfs.write_verified(&self.files.lock, "0")?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Snapshot {
    sysfs: Sysfs,
    clocks: Vec<SavedClock>,
    emc: Option<SavedEmc>,
}

type Shared = Arc<Mutex<Option<Snapshot>>>;

/// Restores the snapshot once; later calls find nothing left to do. Tries every
/// clock even after a failure and reports the first failure.
fn restore_shared(shared: &Shared) -> Result<()> {
    // A panic elsewhere must not keep the board from being restored.
    let snapshot = shared.lock().unwrap_or_else(PoisonError::into_inner).take();
    let Some(snapshot) = snapshot else {
        return Ok(());
    };
    let mut first = None;
    for clock in &snapshot.clocks {
        if let Err(e) = clock.restore(&snapshot.sysfs) {
            first.get_or_insert(e);
        }
    }
    if let Some(Err(e)) = snapshot
        .emc
        .as_ref()
        .map(|emc| emc.restore(&snapshot.sysfs))
    {
        first.get_or_insert(e);
    }
    first.map_or(Ok(()), Err)
}

/// Holds the board's saved clock settings and puts them back on drop, Ctrl-C,
/// SIGTERM and panic (see the module doc).
#[derive(Debug)]
pub struct RestoreGuard {
    shared: Shared,
    clocks: Vec<SavedClock>,
    emc: Option<SavedEmc>,
    signals: Option<(Handle, JoinHandle<()>)>,
}

impl RestoreGuard {
    /// Saves governor, min and max of every cpufreq policy and of the GPU (when
    /// the board has one), and the EMC clock's lock and rate (when the board
    /// has the interface, see [`crate::emc`]). Call it before the first write
    /// to any of them.
    pub fn save(sysfs: &Sysfs) -> Result<Self> {
        let mut clocks = Vec::new();
        for p in discover_policies(sysfs)? {
            clocks.push(SavedClock::read(sysfs, p.governor_file(), p.limits())?);
        }
        match find_gpu(sysfs) {
            Ok(dir) => clocks.push(SavedClock::read(
                sysfs,
                dir.join("governor"),
                gpu_limits(&dir),
            )?),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let emc = match find_emc(sysfs) {
            Ok(files) => Some(SavedEmc::read(sysfs, files)?),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let snapshot = Snapshot {
            sysfs: sysfs.clone(),
            clocks: clocks.clone(),
            emc: emc.clone(),
        };
        Ok(RestoreGuard {
            shared: Arc::new(Mutex::new(Some(snapshot))),
            clocks,
            emc,
            signals: None,
        })
    }

    /// What was saved, CPU policies first, then the GPU.
    pub fn saved(&self) -> &[SavedClock] {
        &self.clocks
    }

    /// The EMC clock's saved settings, if the board has the interface.
    pub fn saved_emc(&self) -> Option<&SavedEmc> {
        self.emc.as_ref()
    }

    /// Fails early, naming the file, if any saved file cannot be written (not
    /// root): nothing has been changed yet at that point.
    pub fn check_writable(&self) -> Result<()> {
        let sysfs = match &*self.shared.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(snapshot) => snapshot.sysfs.clone(),
            None => return Ok(()),
        };
        for c in &self.clocks {
            for path in [&c.governor_file, &c.limits.min, &c.limits.max] {
                sysfs.check_writable(path)?;
            }
        }
        if let Some(emc) = &self.emc {
            for path in [&emc.files.lock, &emc.files.rate] {
                sysfs.check_writable(path)?;
            }
        }
        Ok(())
    }

    /// Starts a thread that, on SIGINT or SIGTERM, restores the settings and
    /// exits the process with 128 + the signal number (130, 143).
    pub fn watch_signals(mut self) -> Result<Self> {
        let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(Error::Signals)?;
        let handle = signals.handle();
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name("ecoedge-restore".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    if let Err(e) = restore_shared(&shared) {
                        eprintln!("ecoedge: restoring clocks after signal {signal}: {e}");
                    }
                    std::process::exit(128 + signal);
                }
            })
            .map_err(Error::Signals)?;
        self.signals = Some((handle, thread));
        Ok(self)
    }

    /// Restores the saved settings now. Only the first call (or drop, or signal)
    /// writes anything.
    pub fn restore(&self) -> Result<()> {
        restore_shared(&self.shared)
    }
}

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        if let Err(e) = restore_shared(&self.shared) {
            // Drop cannot return an error; say it where the operator sees it.
            eprintln!("ecoedge: restoring clocks: {e}");
        }
        if let Some((handle, thread)) = self.signals.take() {
            handle.close();
            let _ = thread.join();
        }
    }
}
