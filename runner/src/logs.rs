//! The CSV logs of a run, `requests.csv` and `windows.csv` (CLI.md), written
//! row by row as requests complete and windows close, so a service that runs
//! for months keeps nothing in memory for them and a crash loses at most the
//! last second.
//!
//! A failed write (disk full) does not stop the service: the first error is
//! kept, logging stops, and [`LogWriter::finish`] reports it.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use ecoedge_core::space::Space;
use ecoedge_core::window::WindowReport;
use serde::Serialize;

use crate::knobs::ConfigJson;
use crate::served::Served;

/// Longest a written row waits in a buffer before it reaches the file.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// One row of `requests.csv`.
#[derive(Debug, Serialize)]
struct RequestRow {
    arrival_s: f64,
    done_s: f64,
    latency_s: f64,
    energy_j: f64,
    window: u32,
}

/// One row of `windows.csv`.
#[derive(Debug, Serialize)]
struct WindowRow {
    window: u32,
    end_s: f64,
    cpu_khz: Option<u32>,
    gpu_hz: Option<u32>,
    /// Only in runs that tune the memory clock (every row alike).
    #[serde(skip_serializing_if = "Option::is_none")]
    emc_hz: Option<u32>,
    batch: u32,
    requests: u32,
    discarded: u32,
    /// Requests refused by the full queue while the window was open.
    refused: u64,
    energy_j: f64,
    latency_s: f64,
    latency_p95_s: f32,
    latency_p99_s: f32,
    cost_mean: f64,
    cost_p95: Option<f32>,
    cost_p99: Option<f32>,
    arrival_rate_hz: f64,
    abandoned: bool,
    /// The config's service, as the window measured it (what replay prices).
    batch_fixed_s: Option<f64>,
    batch_per_request_s: Option<f64>,
    active_w: Option<f64>,
    idle_w: Option<f64>,
}

type Csv = csv::Writer<BufWriter<File>>;

/// Where a run's logs go, and whether files already there may be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDir {
    /// The directory.
    pub dir: PathBuf,
    /// Replace existing files (`--force`).
    pub force: bool,
}

/// The summary's file name, next to the logs.
const SUMMARY: &str = "summary.json";

/// Creates `path`, which must not exist (a link in its place included:
/// `O_EXCL` follows none); with `force`, whatever is there is removed first
/// (the link itself, not what it points to).
fn create_new(path: &Path, force: bool) -> Result<File> {
    if force {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e)
                    .with_context(|| format!("--force: cannot remove {}", path.display()));
            }
            _ => {}
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow!(
                "{} already exists; pass --force to overwrite it, or choose another --log-dir",
                path.display()
            ),
            _ => anyhow!("cannot write {}: {e}", path.display()),
        })
}

/// Writes the summary into `dir`'s `summary.json`, which [`LogWriter::create`]
/// made: replaced in place, never through a link put there since.
pub fn write_summary(dir: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(SUMMARY);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes the two logs of one run into a directory.
#[derive(Debug)]
pub struct LogWriter {
    dir: PathBuf,
    space: Space,
    requests: Csv,
    windows: Csv,
    flushed: Instant,
    failed: Option<anyhow::Error>,
}

impl LogWriter {
    /// Creates `dir` and the run's files in it (both logs, and an empty
    /// `summary.json` for [`write_summary`]), before the run, so an
    /// unwritable directory is known before anything is measured. Files
    /// already there are an error unless `force` (then they are replaced);
    /// a symbolic link in their place is never followed. `space` names the
    /// knobs of the windows' configs.
    pub fn create(logs: &LogDir, space: &Space) -> Result<Self> {
        let (dir, force) = (logs.dir.as_path(), logs.force);
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create log directory {}", dir.display()))?;
        let open = |name: &str| -> Result<Csv> {
            Ok(csv::Writer::from_writer(BufWriter::new(create_new(
                &dir.join(name),
                force,
            )?)))
        };
        create_new(&dir.join(SUMMARY), force)?;
        Ok(LogWriter {
            dir: dir.to_path_buf(),
            space: space.clone(),
            requests: open("requests.csv")?,
            windows: open("windows.csv")?,
            flushed: Instant::now(),
            failed: None,
        })
    }

    /// Appends a served request.
    pub fn request(&mut self, s: &Served) {
        let row = RequestRow {
            arrival_s: s.arrival.as_secs_f64(),
            done_s: s.done.as_secs_f64(),
            latency_s: s.latency_s(),
            energy_j: s.energy_j,
            window: s.window,
        };
        self.write(|w| w.requests.serialize(row), "requests.csv");
    }

    /// Appends a closed window and the refusals seen while it was open.
    pub fn window(&mut self, r: &WindowReport, refused: u64) {
        let c = ConfigJson::new(&self.space, &r.config);
        let row = WindowRow {
            window: r.index,
            end_s: r.end.as_secs_f64(),
            cpu_khz: c.cpu_khz,
            gpu_hz: c.gpu_hz,
            emc_hz: c.emc_hz,
            batch: c.batch,
            requests: r.requests,
            discarded: r.discarded,
            refused,
            energy_j: r.energy_j,
            latency_s: r.latency_s,
            latency_p95_s: r.latency_p95_s,
            latency_p99_s: r.latency_p99_s,
            cost_mean: r.cost.mean,
            cost_p95: r.cost.p95,
            cost_p99: r.cost.p99,
            arrival_rate_hz: r.arrival_rate_hz,
            abandoned: r.abandoned,
            batch_fixed_s: r.service.map(|s| s.fixed_s),
            batch_per_request_s: r.service.map(|s| s.per_request_s),
            active_w: r.service.map(|s| s.active_w),
            idle_w: r.service.and_then(|s| s.idle_w),
        };
        self.write(|w| w.windows.serialize(row), "windows.csv");
    }

    /// Flushes both logs if a second has passed since the last flush.
    pub fn tick(&mut self) {
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.flushed = Instant::now();
        self.write(
            |w| w.requests.flush().map_err(csv::Error::from),
            "requests.csv",
        );
        self.write(
            |w| w.windows.flush().map_err(csv::Error::from),
            "windows.csv",
        );
    }

    /// Runs one write unless an earlier one failed; keeps the first error.
    fn write(&mut self, f: impl FnOnce(&mut Self) -> csv::Result<()>, file: &str) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = f(self) {
            let e = anyhow!("writing {}: {e}", self.dir.join(file).display());
            eprintln!("warning: {e:#}; logging stops, the run goes on");
            self.failed = Some(e);
        }
    }

    /// Flushes both logs; the first write error, if any.
    pub fn finish(mut self) -> Result<()> {
        self.flush();
        match self.failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
