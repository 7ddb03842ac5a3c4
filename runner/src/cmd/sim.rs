//! `ecoedge sim`: one optimizer, one workload, in virtual time.

use anyhow::{Result, bail};
use clap::Args;
use ecoedge_core::time::Duration;

use super::measure::{Defaults, MeasureArgs};
use super::output::OutputArgs;
use crate::device;
use crate::report::{self, Meta, Summary};
use crate::sim::named::simulate_named;
use crate::sim::{ClockWarmup, JITTER, SimSetup, Stop};
use crate::units::parse_duration;
use crate::workload::Workload;

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
    /// Optimizer: ecogd, ecogd:paper (the original algorithm), grid, linear, linear:forever, dvfs, dvfs:BATCH, mab, mab-joint, bayes, random, oracle, fixed:CPU,GPU,BATCH or fixed:max.
    #[arg(long, default_value = "ecogd")]
    pub optimizer: String,
    /// Stop after this many windows (default 1000 for synthetic workloads).
    #[arg(long, conflicts_with = "duration")]
    pub windows: Option<u32>,
    /// Stop after this much virtual time, e.g. 3h (default for traces).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Seed of every random stream.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub measure: MeasureArgs,
    #[command(flatten)]
    pub device_model: DeviceModelArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How the simulated board departs from its model: the sensitivity flags of
/// `sim` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct DeviceModelArgs {
    /// Spread of batch service times (log-normal sigma; 0.03 = 3 %, 0 = none).
    #[arg(long, default_value_t = JITTER)]
    pub jitter: f64,
    /// Batches slowed after each clock change, BATCHES@PERCENT (e.g. 3@50:
    /// three batches half as long again). An assumption, off by default.
    #[arg(long)]
    pub clock_warmup: Option<ClockWarmup>,
}

/// The setup the flags describe.
pub fn setup(
    workload: &Workload,
    seed: u64,
    windows: Option<u32>,
    duration: Option<Duration>,
    measure: &MeasureArgs,
    device_model: &DeviceModelArgs,
) -> Result<SimSetup> {
    let mut setup = SimSetup::new(workload.clone(), seed);
    if !(0.0..=1.0).contains(&device_model.jitter) {
        bail!("--jitter must be in 0..=1 (a log-normal sigma)");
    }
    setup.jitter = device_model.jitter;
    setup.clock_warmup = device_model.clock_warmup.unwrap_or_default();
    let (settings, limits) = measure.settings(&Defaults::PAPER)?;
    setup.settings = settings;
    setup.lower_limits = limits;
    setup.knobs = measure.knobs.clone();
    if let Some(n) = windows {
        if n == 0 {
            bail!("--windows must be at least 1");
        }
        setup.stop = Stop::Windows(n);
    }
    if let Some(d) = duration {
        if d == Duration::ZERO {
            bail!("--duration must be positive");
        }
        setup.stop = Stop::Duration(d);
    }
    Ok(setup)
}

/// `ecoedge sim`.
pub fn run(args: &SimArgs) -> Result<()> {
    let dnn = device::dnn(&args.model)?;
    let model = device::model(&args.device, dnn)?;
    let workload = Workload::parse(&args.workload)?;
    let mut setup = setup(
        &workload,
        args.seed,
        args.windows,
        args.duration,
        &args.measure,
        &args.device_model,
    )?;
    setup.logs = args.output.logs();
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
        args.output.log_dir.as_deref(),
        args.output.json,
        &format!("{:.0} s of virtual time", out.end.as_secs_f64()),
    )?;
    Ok(())
}
