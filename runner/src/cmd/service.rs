//! What `run` and `serve` share: the board, model, optimizer and measurement
//! flags, opening the board and building the controller, the signal
//! handling, and the summary. (Opening the board and ending a run on it
//! serve `profile` too; the engine flags are [`EngineArgs`].)

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use ecoedge_bsp_jetson::MonotonicClock;
use ecoedge_core::controller::{Controller, Settings};
use ecoedge_core::optimizer::{AnyOptimizer, by_name};
use ecoedge_core::time::Duration as CoreDuration;

use super::engine::EngineArgs;
use super::measure::{Defaults, MeasureArgs};
use super::output::OutputArgs;
use super::signals::SignalWatch;
use crate::board::{BoardOptions, LinuxBoard};
use crate::capacity::MAX_BATCH;
use crate::inference::Engine;
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
    #[command(flatten)]
    pub inference: EngineArgs,
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

/// The signal watch of a service run with these flags (see [`SignalWatch`]).
pub fn watch_signals(args: &ServiceArgs) -> Result<SignalWatch> {
    SignalWatch::start(
        "draining what was accepted",
        Some(Duration::from_micros(args.drain_timeout.as_micros())),
    )
}

/// Opens the board `options` name, saying on stderr what it looked for and
/// did not use.
pub fn open_board(options: &BoardOptions, clock: MonotonicClock) -> Result<LinuxBoard> {
    let board = LinuxBoard::open(options, clock)?;
    for note in &board.notes {
        eprintln!("{}: {note}", board.name);
    }
    Ok(board)
}

/// Both outcomes of the end of a run on a board, the work's and the
/// restore's: the first error returned, the second said on stderr, so
/// neither is lost.
pub fn either_error<T>(first: Result<T>, second: Result<()>) -> Result<T> {
    match (first, second) {
        (Err(a), Err(b)) => {
            eprintln!("error: {b:#}");
            Err(a)
        }
        (a, b) => b.and(a),
    }
}

impl ServiceArgs {
    /// Checks the flags before minutes of plan building.
    pub fn check(&self) -> Result<()> {
        self.inference.check()?;
        self.board.check()?;
        if self.drain_timeout == CoreDuration::ZERO {
            bail!("--drain-timeout must be positive");
        }
        // The maximum wait's default needs the engine: settings are made
        // again once it is loaded.
        self.measure.settings(&BOARD)?;
        Ok(())
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
                self.inference.max_batch,
                wait.as_secs_f64() * 1e3
            );
        }
        let board = open_board(&self.board, clock)?;
        let space = self.inference.space(&board, &self.measure.knobs, &limits)?;
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
        summary.engine = Some(EngineJson::new(
            self.inference.engine_name(),
            self.inference.ep.to_string(),
            &out.space,
        ));
        summary
    }
}
