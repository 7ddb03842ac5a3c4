//! `ecoedge compare`: the paper's evaluation, as tables, JSON and plots.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use ecoedge_core::time::Duration;
use indicatif::{ProgressBar, ProgressStyle};

use super::measure::MeasureArgs;
use super::sim::{DeviceModelArgs, setup};
use crate::compare::{Comparison, Penalty, report_text, write_out};
use crate::device;
use crate::units::parse_duration;
use crate::workload::{PAPER_SUITE, UNSEEN_SUITE, Workload};

/// The optimizers compared by default (the paper's set and the oracle).
pub const DEFAULT_OPTIMIZERS: &str = "ecogd,grid,linear,dvfs,mab,bayes,oracle";

/// The optimizers of `--ablation`: EcoGD as published, each of its additions
/// alone, all of them; every baseline that learns from costs without and with
/// the additions that any optimizer can take (`dvfs` leaves the clocks to
/// governors and never reads a cost, so it has nothing to gain); the oracle.
pub const ABLATION: &str = "ecogd:paper,ecogd:paper+abandon,ecogd:paper+pattern,ecogd:paper+replay,\
ecogd:paper+scan,ecogd:paper+replay+scan,ecogd:paper+probe,ecogd,\
grid,grid+replay+abandon,linear,linear+replay+abandon,dvfs,dvfs:16,mab,mab+replay+abandon,\
bayes,bayes+replay+abandon,oracle";

/// The names in a comma-separated list. `fixed:CPU,GPU,BATCH` has commas of
/// its own: an item that starts with a digit continues the one before (no
/// optimizer's name starts with one), so `ecogd,fixed:14,5,5` is two names.
fn optimizer_list(list: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for item in list.split(',').map(str::trim) {
        match names.last_mut() {
            Some(last) if item.starts_with(|c: char| c.is_ascii_digit()) => {
                last.push(',');
                last.push_str(item);
            }
            _ => names.push(item.to_string()),
        }
    }
    names
}

/// Arguments of `ecoedge compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Device model: `xavier-nx` or a profile CSV file.
    #[arg(long, default_value = "xavier-nx")]
    pub device: String,
    /// DNN: resnet50 or bert-tiny.
    #[arg(long, default_value = "resnet50")]
    pub model: String,
    /// A named suite of workloads: `paper`, the paper's seven; `unseen`, three
    /// time-varying traces never used while tuning EcoGD (diurnal, step, ramp).
    #[arg(long, required_unless_present = "workload")]
    pub suite: Option<String>,
    /// A workload (repeatable), instead of or besides a suite.
    #[arg(long)]
    pub workload: Vec<String>,
    /// Comma-separated optimizers (`oracle` included by default); a name may
    /// take EcoGD's additions, e.g. `grid+replay+abandon`; fixed configs
    /// too, e.g. `ecogd,fixed:14,5,5,oracle`.
    #[arg(long, default_value = DEFAULT_OPTIMIZERS)]
    pub optimizers: String,
    /// Compare EcoGD's additions one by one, and every baseline without and
    /// with them (instead of --optimizers).
    #[arg(long, conflicts_with = "optimizers")]
    pub ablation: bool,
    /// Seed of repeat 0; repeat r uses seed + r for noise, optimizers and
    /// random arrivals. Seeds below 1000 are for development (docs/evaluation.md).
    #[arg(long, default_value_t = 1000)]
    pub seed: u64,
    /// Reruns per optimizer and workload (the paper ran 3; reported results use 10).
    #[arg(long, default_value_t = 3)]
    pub repeats: u32,
    /// Latency charged to each refused or unserved request (with the
    /// baseline's energy), e.g. 30s.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub penalty_latency: Duration,
    /// Windows per synthetic run (default 1000).
    #[arg(long, conflicts_with = "duration")]
    pub windows: Option<u32>,
    /// Virtual time per run, e.g. 3h (default for traces).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    #[command(flatten)]
    pub measure: MeasureArgs,
    #[command(flatten)]
    pub device_model: DeviceModelArgs,
    /// Write tables, results.json and plots (SVG and PNG) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the results as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// `ecoedge compare`.
pub fn run(args: &CompareArgs) -> Result<()> {
    let model = device::model(&args.device, device::dnn(&args.model)?)?;
    let mut specs: Vec<String> = match args.suite.as_deref() {
        Some("paper") => PAPER_SUITE.iter().map(|s| s.to_string()).collect(),
        Some("unseen") => UNSEEN_SUITE.iter().map(|s| s.to_string()).collect(),
        Some(other) => bail!("unknown suite `{other}` (expected paper or unseen)"),
        None => Vec::new(),
    };
    specs.extend(args.workload.iter().cloned());
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    if args.penalty_latency == Duration::ZERO {
        bail!("--penalty-latency must be positive");
    }
    let setups = specs
        .iter()
        .map(|s| {
            let w = Workload::parse(s)?;
            setup(
                &w,
                args.seed,
                args.windows,
                args.duration,
                &args.measure,
                &args.device_model,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let comparison = Comparison {
        device: args.device.clone(),
        model: args.model.clone(),
        device_model: model.as_ref(),
        setups,
        optimizers: optimizer_list(if args.ablation {
            ABLATION
        } else {
            &args.optimizers
        }),
        repeats: args.repeats,
        penalty: Penalty {
            latency: args.penalty_latency,
        },
    };
    comparison.check()?;

    let bar = ProgressBar::new(comparison.steps()).with_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}")
            .expect("valid template"),
    );
    let doc = comparison.run(&|done, stage| {
        bar.set_message(stage);
        bar.inc(done);
    })?;
    bar.finish_and_clear();

    let text = report_text(&doc);
    if let Some(dir) = &args.out {
        write_out(dir, &doc, &text)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&doc)?);
    } else {
        print!("{text}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_configs_keep_their_commas_in_a_list() {
        assert_eq!(
            optimizer_list("ecogd, fixed:14,5,5,grid+replay,fixed:max,fixed:0,1,16"),
            [
                "ecogd",
                "fixed:14,5,5",
                "grid+replay",
                "fixed:max",
                "fixed:0,1,16"
            ]
        );
        assert_eq!(optimizer_list(DEFAULT_OPTIMIZERS).len(), 7);
        // A stray number with nothing before it stays a (bad) name of its own.
        assert_eq!(optimizer_list("5,ecogd"), ["5", "ecogd"]);
    }
}
