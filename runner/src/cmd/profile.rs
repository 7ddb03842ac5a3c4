//! `ecoedge profile`: write a device profile file that `--device PATH` loads.
//!
//! Without `--board`, the simulated device's model is written at every
//! config. With `--board`, the model runs on the board over a sample of
//! configs, each measured ([`crate::profiling`] says which and how): the
//! clocks are saved when the board opens and restored at the end, on an
//! error, and on a signal, with the same machinery as `run`.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args};
use ecoedge_bsp_jetson::MonotonicClock;
use indicatif::{ProgressBar, ProgressStyle};

use super::engine::EngineArgs;
use super::service::{either_error, open_board};
use super::signals::SignalWatch;
use crate::board::{BoardAccess, BoardChoice, BoardOptions, LinuxBoard};
use crate::device;
use crate::inference::Engine;
use crate::knobs::{KnobSet, LowerLimits};
use crate::profiling::{Timing, measure, sample};
use crate::report::config_text;
use crate::service::Stop;
use crate::sim::profile::{Profile, Row, profile_text, write_profile};

/// The simulated device profiled when neither `--board` nor `--device` is given.
const SIMULATED: &str = "xavier-nx";

/// Arguments of `ecoedge profile`. The flags of a measurement (the board's,
/// the engine's, the budget and the timing) require `--board`: without it
/// the simulated model is written at every config, and a flag it would
/// ignore is refused instead.
#[derive(Debug, Clone, Args)]
#[command(group(
    ArgGroup::new("measurement")
        .multiple(true)
        .requires("board")
        .args([
            "sysfs_root", "state_dir", "meter", "gpu_clocks", "max_batch", "engine", "ep",
            "plans", "threads", "configs", "settle", "idle_time", "min_time", "min_runs", "seed",
        ])
))]
pub struct ProfileArgs {
    /// Measure this board (auto, jetson, host or nvml) with the model running on it.
    /// Without it, the simulated --device is written.
    #[arg(long = "board", value_enum)]
    pub board: Option<BoardChoice>,
    #[command(flatten)]
    pub access: BoardAccess,
    /// Simulated device (without --board): `xavier-nx` (the analytic model, the default)
    /// or a profile file.
    #[arg(long)]
    pub device: Option<String>,
    /// DNN: resnet50 or bert-tiny; with --board also mlp or an ONNX file.
    #[arg(long, default_value = "resnet50")]
    pub model: String,
    #[command(flatten)]
    pub inference: EngineArgs,
    /// With --board: most configs measured. Every level of each knob is measured
    /// (one knob at a time around the middle levels); the rest of the budget is a
    /// seeded draw of the other configs. 100 leaves a Xavier NX (25 CPU levels, 16
    /// batch sizes, the GPU pinned under tract: 40 swept) 60 configs for how knobs
    /// interact, in a few minutes for a small model.
    #[arg(long, default_value_t = 100)]
    pub configs: usize,
    #[command(flatten)]
    pub timing: Timing,
    /// Seed of the configs drawn and of the synthetic inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the profile CSV.
    #[arg(long)]
    pub out: PathBuf,
}

/// `ecoedge profile`.
pub fn run(args: &ProfileArgs) -> Result<()> {
    match args.board {
        None => simulated(args),
        Some(choice) => measured(args, choice),
    }
}

/// The simulated device's model at every config.
fn simulated(args: &ProfileArgs) -> Result<()> {
    let device = args.device.as_deref().unwrap_or(SIMULATED);
    let model = device::model(device, device::dnn(&args.model)?)?;
    let out = OutFile::create(&args.out)?;
    let text = write_profile(model.as_ref());
    out.write(&text)?;
    eprintln!(
        "wrote {} configs of {device} running {} to {}",
        text.lines().count() - 1,
        args.model,
        args.out.display()
    );
    Ok(())
}

/// The board measured with the model running on it.
fn measured(args: &ProfileArgs, choice: BoardChoice) -> Result<()> {
    if let Some(device) = &args.device {
        bail!(
            "--device {device}: a simulated device; with --board the board itself is measured (give one or the other)"
        );
    }
    if args.configs == 0 {
        bail!("--configs must be at least 1");
    }
    args.timing.check()?;
    args.inference.check()?;
    let options = BoardOptions {
        choice,
        access: args.access.clone(),
    };
    options.check()?;
    // Before minutes of measuring: an unwritable --out fails now.
    let out = OutFile::create(&args.out)?;
    let signals = SignalWatch::start(
        "finishing the batch in flight, restoring the board, writing nothing",
        None,
    )?;
    let mut engine = args.inference.load(&args.model, args.seed)?;
    let started = Instant::now();
    let mut board = open_board(&options, MonotonicClock::new())?;
    signals.guard(board.restorer());
    let measured = sample_and_measure(args, &mut board, engine.as_mut(), &signals.stop);
    let rows = either_error(measured, board.restore())?;
    let text = profile_text(rows);
    // What was measured loads as a profile (positive powers and latencies
    // in range), checked before it replaces anything at --out.
    Profile::parse(&text).context("the measured profile does not load")?;
    out.write(&text)?;
    eprintln!(
        "profiled {} running {} on {} ({}): {} configs in {:.1} s, energy {}; board restored; wrote {}",
        board.name,
        args.model,
        args.inference.engine_name(),
        args.inference.ep,
        text.lines().count() - 1,
        started.elapsed().as_secs_f64(),
        board.source().name(),
        args.out.display()
    );
    Ok(())
}

/// Samples the board's configs and measures them, saying each on stderr.
fn sample_and_measure(
    args: &ProfileArgs,
    board: &mut LinuxBoard,
    engine: &mut dyn Engine,
    stop: &Stop,
) -> Result<Vec<Row>> {
    // The profile format's knobs, over their full range: a profile is the
    // board's, whatever a later run searches. The memory clock, which the
    // format has no column for, is left as it is.
    let space = args
        .inference
        .space(board, &KnobSet::paper(), &LowerLimits::NONE)?;
    let sample = sample(&space, args.configs, args.seed)?;
    let total = sample.configs.len();
    eprintln!(
        "{}: measuring {total} configs: {} sweep every level one knob at a time around {}, {} drawn with seed {}",
        board.name,
        sample.swept,
        config_text(&space, &sample.centre),
        total - sample.swept,
        args.seed
    );
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} configs {elapsed}/{duration}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let rows = measure(
        board,
        engine,
        &space,
        &sample.configs,
        &args.timing,
        stop,
        |done, config, row| {
            // `suspend`, not `println`: a hidden bar (stderr not a terminal)
            // would swallow the line.
            bar.suspend(|| {
                eprintln!(
                    "config {done}/{total}: {}: {:.3} ms per batch, busy {:.2} W, idle {:.2} W",
                    config_text(&space, config),
                    row.latency_s * 1e3,
                    row.busy_power_w,
                    row.idle_power_w
                );
            });
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    rows
}

/// Where the profile goes: a temporary file beside `--out`, made before any
/// work (an unwritable place fails at once) and renamed to `--out` once
/// written, so a profile that fails or is interrupted leaves no partial
/// file and replaces no older one.
struct OutFile {
    path: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl OutFile {
    fn create(path: &Path) -> Result<Self> {
        let name = || format!("--out {}", path.display());
        if path.is_dir() {
            bail!("{}: is a directory", name());
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // Made as `std::fs::write` makes files (0666 less the umask), not
        // tempfile's owner-only default: a profile is for others to load.
        let temp = tempfile::Builder::new()
            .prefix(".ecoedge-profile-")
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(|e| anyhow::anyhow!("{}: cannot write there: {e}", name()))?;
        Ok(OutFile {
            path: path.to_path_buf(),
            temp,
        })
    }

    fn write(mut self, text: &str) -> Result<()> {
        let name = || format!("--out {}", self.path.display());
        self.temp.write_all(text.as_bytes()).with_context(name)?;
        self.temp
            .persist(&self.path)
            .map_err(|e| anyhow::anyhow!("{}: {}", name(), e.error))?;
        Ok(())
    }
}
