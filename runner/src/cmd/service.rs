//! What `run` and `serve` share: the board, model, optimizer and measurement
//! flags, loading the engine, opening the board and building the controller,
//! the signal handling, and the summary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use ecoedge_bsp_jetson::MonotonicClock;
use ecoedge_core::controller::{Controller, Settings};
use ecoedge_core::optimizer::{AnyOptimizer, by_name};
use ecoedge_core::space::{Dimension, Knob, Space};
use ecoedge_core::time::Duration as CoreDuration;
use ecoedge_models::Builtin;
use indicatif::ProgressBar;

use super::measure::{Defaults, MeasureArgs};
use super::output::OutputArgs;
use super::signals::SignalWatch;
use crate::board::{BoardOptions, LinuxBoard};
use crate::capacity::MAX_BATCH;
use crate::inference::{self, Engine, EngineChoice, EngineOptions, Ep, PlanMode};
use crate::logs::LogWriter;
use crate::record::{Outcome, Recorder};
use crate::report::{EngineJson, Meta, Summary};
use crate::units::parse_duration;

/// Flags of `run` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub board: BoardOptions,
    /// Longest the drain after a stop signal may take; then what still waits
    /// is left unserved (counted as pending). A second signal restores the
    /// board and exits at once.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub drain_timeout: CoreDuration,
    /// DNN: resnet50, bert-tiny, mlp (generated on first use) or an ONNX file.
    /// bert-tiny by default: any CPU serves the default 20 requests/s with it,
    /// while ResNet-50 at that rate needs the Jetson's GPU.
    #[arg(long, default_value = "bert-tiny")]
    pub model: String,
    /// Optimizer: ecogd, ecogd:paper (the original algorithm), grid, linear, linear:forever, dvfs, dvfs:BATCH, mab, mab-joint, bayes, random, fixed:CPU,GPU,BATCH or fixed:max.
    #[arg(long, default_value = "ecogd")]
    pub optimizer: String,
    /// Seed of the arrivals, the optimizer and the synthetic inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Largest batch size (the batch knob runs 1..=this).
    #[arg(long, default_value_t = MAX_BATCH as u32)]
    pub max_batch: u32,
    /// Inference engine: tract (pure Rust, CPU) or ort (ONNX Runtime, loaded at run time from
    /// ORT_DYLIB_PATH or a pip-installed onnxruntime / onnxruntime-gpu).
    #[arg(long, value_enum, default_value_t = EngineChoice::Tract)]
    pub engine: EngineChoice,
    /// ONNX Runtime's execution provider (--engine ort): cpu, cuda or tensorrt. A GPU provider
    /// that cannot be used is an error, never a silent fall back to the CPU.
    #[arg(long, value_enum, default_value_t = Ep::Cpu)]
    pub ep: Ep,
    /// Inference plans (ort: sessions): one per batch size, one symbolic, or auto (time both at
    /// the smallest and largest batch; per-batch only when clearly faster, as they cost memory).
    #[arg(long, value_enum, default_value_t = PlanMode::Auto)]
    pub plans: PlanMode,
    /// Intra-op threads of the engine (1: inference on the service thread).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What `run` and `serve` measure by default: windows of 100 requests with 20
/// of warm-up, so the default 60 s of `run` at 20 requests/s closes 11 windows
/// after calibration and the optimizer is seen at work (the paper's 416 would
/// close 2); and a bounded batch wait, so a quiet period cannot strand
/// requests in a partial batch (its length is measured at start, see
/// [`largest_batch_time`]).
const BOARD: Defaults = Defaults {
    window: 100,
    warmup: 20,
    max_wait: None,
};

/// The default maximum wait: the time one batch of the largest size takes on
/// this engine (1 ms to 1 s). Waiting that long for a batch to fill at most
/// doubles a request's latency against running the largest batch at once;
/// waiting longer buys little, since by then running what waits would already
/// have been done. The automatic plan choice already timed that batch on the
/// layout it chose; other layouts time it once here (a ResNet-50 batch of 16
/// takes seconds on a CPU: not worth running twice).
fn largest_batch_time(engine: &mut dyn Engine) -> Result<CoreDuration> {
    let max = engine.max_batch();
    let seconds = match engine.plan_report().timed(max) {
        Some(s) => s,
        None => {
            let t = std::time::Instant::now();
            engine
                .run_synthetic(max)
                .context("timing the largest batch")?;
            t.elapsed().as_secs_f64()
        }
    };
    let us = (seconds * 1e6).clamp(1_000.0, 1_000_000.0) as u64;
    Ok(CoreDuration::from_micros(us))
}

/// The ONNX file `--model` names: a built-in model (generated into the cache on
/// first use) or a path.
pub fn model_path(model: &str) -> Result<PathBuf> {
    if let Some(builtin) = Builtin::from_name(model) {
        return builtin
            .path()
            .with_context(|| format!("--model {model}: generating the model"));
    }
    let path = PathBuf::from(model);
    if !path.is_file() {
        bail!(
            "--model {model}: neither a built-in model (resnet50, bert-tiny, mlp) nor an existing file"
        );
    }
    Ok(path)
}

/// The signal watch of a service run with these flags (see [`SignalWatch`]).
pub fn watch_signals(args: &ServiceArgs) -> Result<SignalWatch> {
    SignalWatch::start(Duration::from_micros(args.drain_timeout.as_micros()))
}

/// `--threads`: 1 up to twice the cores this process may use. More threads
/// than that only contend for the cores, and tract's executor panics when it
/// cannot spawn them all (100000 did).
fn check_threads(threads: usize) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let most = 2 * cores;
    if !(1..=most).contains(&threads) {
        bail!("--threads {threads}: must be in 1..={most} (twice the {cores} available cores)");
    }
    Ok(())
}

impl ServiceArgs {
    /// Checks the flags before minutes of plan building.
    pub fn check(&self) -> Result<()> {
        if self.max_batch == 0 || self.max_batch as usize > MAX_BATCH {
            bail!("--max-batch must be in 1..={MAX_BATCH}");
        }
        check_threads(self.threads)?;
        inference::check_engine(self.engine, self.ep)?;
        if self.drain_timeout == CoreDuration::ZERO {
            bail!("--drain-timeout must be positive");
        }
        // The maximum wait's default needs the engine: settings are made
        // again once it is loaded.
        self.measure.settings(&BOARD)?;
        Ok(())
    }

    /// Loads the model into the engine `--engine` names, saying what it built.
    pub fn load_engine(&self) -> Result<Box<dyn Engine>> {
        let path = model_path(&self.model)?;
        let what = match self.engine {
            EngineChoice::Tract => "tract plans".to_string(),
            EngineChoice::Ort => format!("ONNX Runtime sessions ({})", self.ep),
        };
        let spinner = ProgressBar::new_spinner().with_message(format!(
            "building {what} for {} (batch 1..={})",
            self.model, self.max_batch
        ));
        spinner.enable_steady_tick(Duration::from_millis(200));
        let options = EngineOptions {
            engine: self.engine,
            ep: self.ep,
            max_batch: self.max_batch as usize,
            plans: self.plans,
            threads: self.threads,
            seed: self.seed,
        };
        let engine = inference::load(&path, &options);
        spinner.finish_and_clear();
        let engine = engine?;
        let plans = engine.plan_report();
        eprintln!(
            "{}: {} input(s) [{}], {} {:?} plans built in {:.1} s{}",
            self.model,
            engine.inputs().len(),
            engine
                .signature()
                .inputs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            match self.engine {
                EngineChoice::Tract => engine.backend().to_string(),
                EngineChoice::Ort => format!("{} ({} provider)", engine.backend(), self.ep),
            },
            plans.mode,
            plans.build_s,
            plans
                .timings
                .iter()
                .map(|t| format!(
                    "; batch {}: symbolic {:.2} ms, per-batch {:.2} ms",
                    t.batch,
                    t.symbolic_s * 1e3,
                    t.per_batch_s * 1e3
                ))
                .collect::<String>()
        );
        Ok(engine)
    }

    /// Opens the board, builds the controller for `engine`, and the
    /// recorder that streams the logs (created now: an unwritable `--log-dir`
    /// stops the run before it starts).
    pub fn open<T>(
        &self,
        engine: &mut dyn Engine,
        clock: MonotonicClock,
    ) -> Result<(LinuxBoard, Controller<T, AnyOptimizer, MAX_BATCH>, Recorder)> {
        let defaults = Defaults {
            max_wait: Some(largest_batch_time(engine)?),
            ..BOARD
        };
        let (settings, limits) = self.measure.settings(&defaults)?;
        if let Some(wait) = settings.max_wait {
            eprintln!(
                "batches: 1..={}, a partial batch waits at most {:.1} ms",
                self.max_batch,
                wait.as_secs_f64() * 1e3
            );
        }
        let board = LinuxBoard::open(&self.board, clock)?;
        for note in &board.notes {
            eprintln!("{}: {note}", board.name);
        }
        let space = board.space(&self.measure.knobs, self.max_batch, &limits)?;
        let space = self.gpu_where_it_matters(space, board.name)?;
        let optimizer: AnyOptimizer = by_name(&self.optimizer, &space, self.seed)
            .map_err(|e| anyhow!("--optimizer {}: {e}", self.optimizer))?;
        let ctl = Controller::new(space, settings, optimizer).map_err(|e| {
            anyhow!(
                "--window {} --warmup {}: {e}",
                settings.window.requests,
                settings.window.warmup
            )
        })?;
        let logs = self
            .output
            .logs()
            .map(|logs| LogWriter::create(&logs, ctl.space()))
            .transpose()?;
        let record = Recorder::streaming(settings.window.alpha, logs);
        Ok((board, ctl, record))
    }

    /// `space` with the GPU clock held at its lowest level while inference
    /// runs on the CPU (tract, or ONNX Runtime's CPU provider): there it only
    /// moves idle power, so the optimizer searches only knobs that move the
    /// cost. The GPU stays a dimension of one level, so configs, logs and the
    /// summary show where it is, `fixed:C,0,B` still names it, and it is
    /// pinned (and restored) like every clock.
    fn gpu_where_it_matters(&self, space: Space, board: &str) -> Result<Space> {
        let Some(gpu) = space.position(Knob::Gpu) else {
            return Ok(space);
        };
        if self.ep != Ep::Cpu {
            return Ok(space);
        }
        let dims: Vec<Dimension> = space
            .dims()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if i == gpu {
                    Dimension::new(Knob::Gpu, &d.levels()[..1])
                } else {
                    Ok(d.clone())
                }
            })
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("{e}"))?;
        let lowest = dims[gpu].levels()[0];
        eprintln!(
            "{board}: inference runs on the CPU: the GPU clock is pinned at its lowest level ({} MHz) and not searched",
            lowest / 1_000_000
        );
        Space::new(&dims).map_err(|e| anyhow!("{e}"))
    }

    /// The summary of a run of `workload` on `board`.
    pub fn summarise(
        &self,
        settings: &Settings,
        workload: String,
        board: &LinuxBoard,
        out: &Outcome,
    ) -> Summary {
        let meta = Meta {
            board: board.name.into(),
            device: None,
            model: self.model.clone(),
            workload,
            optimizer: self.optimizer.clone(),
            seed: self.seed,
        };
        let mut summary = Summary::of(meta, out, &settings.window, board.source().name());
        summary.meter = Some(board.meter_stats());
        let engine = self
            .engine
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().into());
        summary.engine = Some(EngineJson::new(engine, self.ep.to_string(), &out.space));
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_limited_to_twice_the_cores() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        check_threads(1).unwrap();
        check_threads(2 * cores).unwrap();
        for bad in [0, 2 * cores + 1, 100_000] {
            let e = check_threads(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("--threads {bad}: must be in 1..=")),
                "{e}"
            );
        }
    }
}
