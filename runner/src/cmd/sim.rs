//! `ecoedge sim`: one optimizer, one workload, in virtual time.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ecoedge_core::controller::Settings;
use ecoedge_core::cost::{Alpha, EnergyScope};
use ecoedge_core::optimizer::{AnyOptimizer, Fixed, NameError, by_name};
use ecoedge_core::space::Space;
use ecoedge_core::window::WindowSettings;

use crate::device;
use crate::report::{self, Meta, Summary};
use crate::sim::model::DeviceModel;
use crate::sim::{Outcome, SimSetup, Stop, oracle, simulate, space_of};
use crate::units::parse_duration_us;
use crate::workload::Workload;

/// Which lower search limits to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Limits {
    /// The full space the slides describe (default).
    Full,
    /// The original code's limits: CPU and GPU level index 4, batch 4.
    Original,
}

/// How windows are measured and costs weighed; shared by `sim` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct MeasureArgs {
    /// Weight of energy in the cost (0 = latency only, 1 = energy only).
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f64,
    /// Requests per measurement window.
    #[arg(long, default_value_t = 416)]
    pub window: u32,
    /// Requests discarded after a config change.
    #[arg(long, default_value_t = 100)]
    pub warmup: u32,
    /// Energy charged to requests: everything the meter saw, or only batch time.
    #[arg(long, value_enum, default_value_t = Scope::Total)]
    pub scope: Scope,
    /// Release a partial batch once its oldest request waited this long (e.g. 100ms); off by default.
    #[arg(long, value_parser = parse_duration_us)]
    pub max_wait: Option<u64>,
    /// Lower search limits.
    #[arg(long, value_enum, default_value_t = Limits::Full)]
    pub limits: Limits,
}

/// Energy scope on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    /// Idle energy between batches included.
    Total,
    /// Only energy while batches run (the original's measurement).
    Active,
}

impl MeasureArgs {
    /// Controller settings and lower limits from the flags.
    pub fn settings(&self) -> Result<(Settings, [usize; 3])> {
        let window = WindowSettings {
            requests: self.window,
            warmup: self.warmup,
            alpha: Alpha::new(self.alpha).map_err(|e| anyhow::anyhow!("--alpha: {e}"))?,
            scope: match self.scope {
                Scope::Total => EnergyScope::Total,
                Scope::Active => EnergyScope::Active,
            },
        };
        window.validate().map_err(|e| {
            anyhow::anyhow!("--window {} --warmup {}: {e}", self.window, self.warmup)
        })?;
        let settings = Settings {
            window,
            max_wait: self.max_wait.map(ecoedge_core::time::Duration::from_micros),
            ..Settings::default()
        };
        let limits = match self.limits {
            Limits::Full => [0; 3],
            Limits::Original => [4, 4, 3],
        };
        Ok((settings, limits))
    }
}

/// Arguments of `ecoedge sim`.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Device model: `xavier-nx` or a profile CSV file.
    #[arg(long, default_value = "xavier-nx")]
    pub device: String,
    /// DNN: resnet50 or bert-tiny.
    #[arg(long, default_value = "resnet50")]
    pub model: String,
    /// Workload, e.g. fixed:50ms, bursty:10@500ms, poisson:20, trace:twitter, file:PATH.
    #[arg(long, default_value = "fixed:50ms")]
    pub workload: String,
    /// Optimizer: ecogd, ecogd:paper (the original algorithm), grid, linear, dvfs, mab, mab-joint, bayes, random, oracle, fixed:CPU,GPU,BATCH or fixed:max.
    #[arg(long, default_value = "ecogd")]
    pub optimizer: String,
    /// Stop after this many windows (default 1000 for synthetic workloads).
    #[arg(long, conflicts_with = "duration")]
    pub windows: Option<u32>,
    /// Stop after this much virtual time, e.g. 3h (default for traces).
    #[arg(long, value_parser = parse_duration_us)]
    pub duration: Option<u64>,
    /// Seed of every random stream.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Write requests.csv, windows.csv and summary.json here.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Print the summary as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// The setup the flags describe.
pub fn setup(
    workload: &Workload,
    seed: u64,
    windows: Option<u32>,
    duration: Option<u64>,
    measure: &MeasureArgs,
) -> Result<SimSetup> {
    let mut setup = SimSetup::new(workload.clone(), seed);
    let (settings, limits) = measure.settings()?;
    setup.settings = settings;
    setup.lower_limits = limits;
    if let Some(n) = windows {
        if n == 0 {
            bail!("--windows must be at least 1");
        }
        setup.stop = Stop::Windows(n);
    }
    if let Some(d) = duration {
        if d == 0 {
            bail!("--duration must be positive");
        }
        setup.stop = Stop::Duration(d);
    }
    Ok(setup)
}

/// The core's optimizer called `name`; an unknown name's error also lists the
/// simulator's `oracle`, which the core does not know.
pub fn optimizer_named(name: &str, space: &Space, seed: u64) -> Result<AnyOptimizer> {
    by_name(name, space, seed).map_err(|e| match e {
        NameError::Unknown(_) => anyhow::anyhow!("{e}, or oracle in simulation"),
        e => anyhow::anyhow!("{e}"),
    })
}

/// Runs optimizer `name` (or the oracle) on `model` under `setup`.
pub fn simulate_named(model: &dyn DeviceModel, name: &str, setup: &SimSetup) -> Result<Outcome> {
    let space = space_of(model, setup.lower_limits)?;
    let optimizer: AnyOptimizer = if name == "oracle" {
        let baseline = oracle::reference_baseline(model, setup)?;
        AnyOptimizer::Fixed(Fixed::new(
            oracle::best_static(model, setup, &baseline)?.config,
        ))
    } else {
        optimizer_named(name, &space, setup.seed).context("--optimizer")?
    };
    simulate(model, optimizer, setup)
}

/// `ecoedge sim`.
pub fn run(args: &SimArgs) -> Result<()> {
    let dnn = device::dnn(&args.model)?;
    let model = device::model(&args.device, dnn)?;
    let workload = Workload::parse(&args.workload)?;
    let setup = setup(
        &workload,
        args.seed,
        args.windows,
        args.duration,
        &args.measure,
    )?;
    let out = simulate_named(model.as_ref(), &args.optimizer, &setup)?;
    let meta = Meta {
        board: "sim".into(),
        device: Some(args.device.clone()),
        model: args.model.clone(),
        workload: workload.to_string(),
        optimizer: args.optimizer.clone(),
        seed: args.seed,
    };
    let summary = Summary::of(meta, &out, &setup.settings.window, "estimated");
    report::emit(
        &out,
        &summary,
        args.log_dir.as_deref(),
        args.json,
        &format!("{:.0} s of virtual time", out.end_us as f64 * 1e-6),
    )?;
    Ok(())
}
