//! File access under a configurable root, and the error type of all sysfs work.
//!
//! Every path the crate touches is absolute on a real board (`/sys/...`,
//! `/proc/device-tree/model`); a [`Sysfs`] joins it to a root, `/` on a board and a
//! temporary tree in tests. Writes go through a [`Writer`], so a test can put a
//! fake kernel behind them (one that refuses `min > max`, records the order of
//! writes or denies a file) while reads stay plain file reads.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a sysfs operation failed. Every variant that concerns a file names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel refused access: the process lacks the privilege.
    #[error("{}: permission denied; run as root (sudo)", path.display())]
    PermissionDenied {
        /// The file refused.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// Reading a file failed (missing, not a file, I/O error).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// Writing a file failed for a reason other than permission (a value the
    /// kernel refused comes back as `EINVAL`).
    #[error("cannot write {value:?} to {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The value written.
        value: String,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// A file holds something other than the expected format.
    #[error("{}: cannot parse {content:?} as {expected}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it holds (trimmed).
        content: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A device or directory the operation needs does not exist.
    #[error("no {what} found under {}", searched.display())]
    NotFound {
        /// What was looked for.
        what: &'static str,
        /// Where.
        searched: PathBuf,
    },
    /// A write was accepted but the file reads back something else (a thermal
    /// cap, another process, a driver rounding the value).
    #[error("{}: wrote {wanted}, reads back {got}", path.display())]
    Verify {
        /// The file.
        path: PathBuf,
        /// The value written.
        wanted: String,
        /// The value read back.
        got: String,
    },
    /// A file lists more levels than a knob may have (the core's
    /// [`ecoedge_core::space::MAX_LEVELS`]); none are dropped silently, since
    /// which ones to drop is the caller's choice.
    #[error("{}: {count} levels, more than the {max} a knob may have", path.display())]
    TooManyLevels {
        /// The file listing them.
        path: PathBuf,
        /// How many it lists.
        count: usize,
        /// The most a knob may have.
        max: usize,
    },
    /// A level index past the knob's last level.
    #[error("level index {index} is outside 0..{levels}")]
    LevelOutOfRange {
        /// The index asked for.
        index: usize,
        /// How many levels the knob has.
        levels: usize,
    },
    /// The power sensor has no rail of that name.
    #[error("no power rail named {label:?}; the sensor has {available:?}")]
    NoSuchRail {
        /// The label asked for.
        label: String,
        /// The labels the sensor has.
        available: Vec<String>,
    },
    /// An operation failed and putting back what it had changed failed too: the
    /// board may be half-configured, and both reasons are given.
    #[error("{first}; undoing it failed too: {undo}")]
    Undo {
        /// The first failure.
        first: Box<Error>,
        /// The failure of the undo.
        undo: Box<Error>,
    },
    /// Another process holds the board (its clocks are its to write).
    #[error("the board is in use by {} (lock {}); stop it first", pid.map_or("another process".to_string(), |p| format!("process {p}")), path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, as it wrote it.
        pid: Option<u32>,
    },
    /// The state directory (lock and store file) cannot be used.
    #[error("state directory: {}: {source}", path.display())]
    State {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// A write would leave the board's root through a symbolic link.
    #[error("{}: resolves to {}, outside the board's root {}; not written", path.display(), target.display(), root.display())]
    OutsideRoot {
        /// The file asked for.
        path: PathBuf,
        /// Where it leads.
        target: PathBuf,
        /// The root.
        root: PathBuf,
    },
    /// Registering the Ctrl-C / SIGTERM handler failed.
    #[error("cannot install the signal handler: {0}")]
    Signals(#[source] io::Error),
}

/// Result of sysfs operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How values get written to files: the kernel in production, a fake in tests.
pub trait Writer: Send + Sync {
    /// Writes `value` to the existing file `path` (already joined to the root).
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
}

/// Writes like `echo -n value > path`, without creating a missing file (sysfs
/// cannot create attributes, so a missing file must be an error in tests too).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileWriter;

impl Writer for FileWriter {
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
        f.write_all(value.as_bytes())
    }
}

/// A filesystem root and the writer to use under it. Cheap to clone.
#[derive(Clone)]
pub struct Sysfs {
    root: PathBuf,
    writer: Arc<dyn Writer>,
}

impl fmt::Debug for Sysfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sysfs")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Sysfs {
    /// Files under `root` (a board: `/`), written with [`FileWriter`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs {
            root: root.into(),
            writer: Arc::new(FileWriter),
        }
    }

    /// The same root with another writer.
    #[must_use]
    pub fn with_writer(mut self, writer: Arc<dyn Writer>) -> Self {
        self.writer = writer;
        self
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute board path `abs` (e.g. `/sys/class/devfreq`) under the root.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        self.root.join(abs.strip_prefix("/").unwrap_or(abs))
    }

    /// The board path of a path under the root (the inverse of [`Sysfs::path`]),
    /// for reports; symlinks resolved when possible.
    pub fn board_path(&self, path: &Path) -> PathBuf {
        let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let root = fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        match real.strip_prefix(&root) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => real,
        }
    }

    /// The trimmed contents of `path`, trailing NULs removed (device-tree strings).
    pub fn read_string(&self, path: &Path) -> Result<String> {
        let bytes = fs::read(path).map_err(|e| read_error(path, e))?;
        let text = String::from_utf8_lossy(&bytes);
        Ok(text
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_string())
    }

    /// `path` parsed as one integer.
    pub fn read_num<T: std::str::FromStr>(&self, path: &Path) -> Result<T> {
        let s = self.read_string(path)?;
        s.parse().map_err(|_| Error::Parse {
            path: path.to_path_buf(),
            content: s,
            expected: "an integer",
        })
    }

    /// `path` parsed as whitespace-separated frequencies, returned ascending and
    /// without duplicates (kernels list them ascending, but nothing promises it).
    pub fn read_levels(&self, path: &Path) -> Result<Vec<u32>> {
        let s = self.read_string(path)?;
        let mut levels = s
            .split_whitespace()
            .map(str::parse)
            .collect::<std::result::Result<Vec<u32>, _>>()
            .map_err(|_| Error::Parse {
                path: path.to_path_buf(),
                content: s.clone(),
                expected: "space-separated frequencies",
            })?;
        if levels.is_empty() {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                content: s,
                expected: "at least one frequency",
            });
        }
        levels.sort_unstable();
        levels.dedup();
        Ok(levels)
    }

    /// Writes `value` to `path` through the writer, if `path` resolves
    /// inside the root: a link out of a fake tree or a container mount
    /// (which a root process would follow anywhere) is refused.
    pub fn write(&self, path: &Path, value: &str) -> Result<()> {
        self.check_inside(path)?;
        self.writer.write(path, value).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                path: path.to_path_buf(),
                source: e,
            },
            _ => Error::Write {
                path: path.to_path_buf(),
                value: value.to_string(),
                source: e,
            },
        })
    }

    /// [`Error::OutsideRoot`] when `path` resolves (links followed) outside
    /// the root. A path that does not resolve is left to the write to report.
    fn check_inside(&self, path: &Path) -> Result<()> {
        let (Ok(target), Ok(root)) = (path.canonicalize(), self.root.canonicalize()) else {
            return Ok(());
        };
        if target.starts_with(&root) {
            return Ok(());
        }
        Err(Error::OutsideRoot {
            path: path.to_path_buf(),
            target,
            root,
        })
    }

    /// Writes `value` and checks the file reads it back.
    pub fn write_verified(&self, path: &Path, value: &str) -> Result<()> {
        self.write(path, value)?;
        let got = self.read_string(path)?;
        if got != value {
            return Err(Error::Verify {
                path: path.to_path_buf(),
                wanted: value.to_string(),
                got,
            });
        }
        Ok(())
    }

    /// Checks that `path` may be written, without writing: opens it for writing
    /// (which on sysfs calls no driver code) and closes it. Lets a caller fail
    /// before its first change instead of half way.
    pub fn check_writable(&self, path: &Path) -> Result<()> {
        match OpenOptions::new().write(true).open(path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(Error::PermissionDenied {
                path: path.to_path_buf(),
                source: e,
            }),
            Err(e) => Err(Error::Write {
                path: path.to_path_buf(),
                value: String::new(),
                source: e,
            }),
        }
    }

    /// Entries of directory `dir`, sorted by name.
    pub fn entries(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let rd = fs::read_dir(dir).map_err(|e| read_error(dir, e))?;
        let mut out = rd
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| read_error(dir, e))?;
        out.sort();
        Ok(out)
    }
}

fn read_error(path: &Path, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::PermissionDenied {
        Error::PermissionDenied {
            path: path.to_path_buf(),
            source,
        }
    } else {
        Error::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A `min`/`max` pair of frequency limit files (cpufreq `scaling_min_freq` /
/// `scaling_max_freq`, devfreq `min_freq` / `max_freq`).
///
/// Kernels refuse a minimum above the maximum (older ones with `EINVAL`, newer
/// ones clamp silently), so every change is ordered to keep `min <= max` at each
/// step, and a failure of the second write undoes the first: never half-applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// The minimum file.
    pub min: PathBuf,
    /// The maximum file.
    pub max: PathBuf,
}

impl Limits {
    /// The current `(min, max)`.
    pub fn read(&self, sysfs: &Sysfs) -> Result<(u32, u32)> {
        Ok((sysfs.read_num(&self.min)?, sysfs.read_num(&self.max)?))
    }

    /// Sets the limits to `lo..=hi` (`lo <= hi`), verified by reading back.
    ///
    /// Order: when `lo` is above the current maximum (raising), the maximum first;
    /// otherwise (lowering, or inside the current range) the minimum first. Each
    /// write then keeps `min <= max`. If a write or its read-back fails, the files
    /// already changed get their old values back, newest first (which keeps
    /// `min <= max` too), and the error says whether that worked.
    pub fn set(&self, sysfs: &Sysfs, lo: u32, hi: u32) -> Result<()> {
        let (old_lo, old_hi) = self.read(sysfs)?;
        // (file, new value, old value), in write order.
        let steps = if lo > old_hi {
            [(&self.max, hi, old_hi), (&self.min, lo, old_lo)]
        } else {
            [(&self.min, lo, old_lo), (&self.max, hi, old_hi)]
        };
        for (i, (path, new, _)) in steps.iter().enumerate() {
            if let Err(first) = sysfs.write_verified(path, &new.to_string()) {
                // A write that reads back wrong did change the file.
                let changed = i + usize::from(matches!(first, Error::Verify { .. }));
                for (path, _, old) in steps[..changed].iter().rev() {
                    if let Err(undo) = sysfs.write_verified(path, &old.to_string()) {
                        return Err(Error::Undo {
                            first: Box::new(first),
                            undo: Box::new(undo),
                        });
                    }
                }
                return Err(first);
            }
        }
        Ok(())
    }
}
