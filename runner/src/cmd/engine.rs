//! The engine flags of `run`, `serve` and `profile` (which backend runs the
//! model, where, on how many threads, for which batch sizes), loading the
//! engine they describe, and holding the GPU clock where it does not matter.
//!
//! `--model` is not among them: its default and the names it takes differ
//! (`profile` also names the simulator's DNNs), so each command has its own
//! and passes it to [`EngineArgs::load`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use ecoedge_core::space::{Dimension, Knob, Space};
use ecoedge_models::Builtin;
use indicatif::ProgressBar;

use crate::board::LinuxBoard;
use crate::capacity::MAX_BATCH;
use crate::inference::{self, Engine, EngineChoice, EngineOptions, Ep, PlanMode};
use crate::knobs::{KnobSet, LowerLimits};

/// How the model runs: the engine flags.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
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

impl EngineArgs {
    /// Checks the flags before minutes of plan building.
    pub fn check(&self) -> Result<()> {
        if self.max_batch == 0 || self.max_batch as usize > MAX_BATCH {
            bail!("--max-batch must be in 1..={MAX_BATCH}");
        }
        check_threads(self.threads)?;
        inference::check_engine(self.engine, self.ep)
    }

    /// `--engine` as the command line spells it (`tract`, `ort`).
    pub fn engine_name(&self) -> String {
        self.engine
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().into())
    }

    /// Loads `model` (as `--model` names it) into the engine `--engine`
    /// names, its synthetic inputs drawn from `seed`, saying what it built.
    pub fn load(&self, model: &str, seed: u64) -> Result<Box<dyn Engine>> {
        let path = model_path(model)?;
        let what = match self.engine {
            EngineChoice::Tract => "tract plans".to_string(),
            EngineChoice::Ort => format!("ONNX Runtime sessions ({})", self.ep),
        };
        let spinner = ProgressBar::new_spinner().with_message(format!(
            "building {what} for {model} (batch 1..={})",
            self.max_batch
        ));
        spinner.enable_steady_tick(Duration::from_millis(200));
        let options = EngineOptions {
            engine: self.engine,
            ep: self.ep,
            max_batch: self.max_batch as usize,
            plans: self.plans,
            threads: self.threads,
            seed,
        };
        let engine = inference::load(&path, &options);
        spinner.finish_and_clear();
        let engine = engine?;
        let plans = engine.plan_report();
        eprintln!(
            "{model}: {} input(s) [{}], {} {:?} plans built in {:.1} s{}",
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

    /// The knob space of this engine on `board`: the board's clock knobs
    /// that `knobs` selects and batch sizes up to `--max-batch`, each above
    /// its lower limit, with the GPU clock where it matters (below).
    pub fn space(
        &self,
        board: &LinuxBoard,
        knobs: &KnobSet,
        limits: &LowerLimits,
    ) -> Result<Space> {
        let space = board.space(knobs, self.max_batch, limits)?;
        self.gpu_where_it_matters(space, board.name)
    }

    /// `space` with the GPU clock held at its lowest level while inference
    /// runs on the CPU (tract, or ONNX Runtime's CPU provider): there it only
    /// moves idle power, so the optimizer searches (and a profile measures)
    /// only knobs that move the cost. The GPU stays a dimension of one level,
    /// so configs, logs, the summary and profiles show where it is,
    /// `fixed:C,0,B` still names it, and it is pinned (and restored) like
    /// every clock.
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
