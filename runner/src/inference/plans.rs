//! How an engine covers the batch sizes `1..=max`: one plan with the batch
//! dimension left dynamic, or one plan per batch size (the backend can then
//! pick kernels and pack for the exact shape). [`PlanMode::Auto`] times both
//! at the smallest and the largest batch and takes per-batch plans only when
//! they are clearly faster ([`PER_BATCH_GAIN`]), since they cost memory. The
//! choice is the same for every engine; a "plan" is whatever the engine runs
//! (a tract state, an ONNX Runtime session).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Result, bail};

/// How the plans cover the batch sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanMode {
    /// Time both at the smallest and largest batch; per-batch only when clearly faster.
    Auto,
    /// One plan, batch dimension left symbolic.
    Symbolic,
    /// One plan per batch size.
    PerBatch,
}

/// Per-batch plans must beat the symbolic one by this factor (mean over the
/// batch sizes timed) to be chosen: they hold a packed copy of the weights per
/// batch size (tract, ResNet-50, batches 1..=16: 2.0 GB resident against 0.6 GB).
pub const PER_BATCH_GAIN: f64 = 0.95;

/// One batch size timed on both layouts under [`PlanMode::Auto`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanTiming {
    /// The batch size.
    pub batch: usize,
    /// Seconds on the symbolic plan.
    pub symbolic_s: f64,
    /// Seconds on the plan for this batch size.
    pub per_batch_s: f64,
}

/// Which plan layout was chosen and, under [`PlanMode::Auto`], what decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanReport {
    /// The layout in use (never `Auto`).
    pub mode: PlanMode,
    /// The timings that chose it: the smallest and the largest batch (auto only).
    pub timings: Vec<PlanTiming>,
    /// Seconds spent loading, optimising and timing.
    pub build_s: f64,
}

impl PlanReport {
    /// Seconds one batch of `batch` took on the chosen layout, if auto timed it.
    pub fn timed(&self, batch: usize) -> Option<f64> {
        let t = self.timings.iter().find(|t| t.batch == batch)?;
        Some(if self.mode == PlanMode::PerBatch {
            t.per_batch_s
        } else {
            t.symbolic_s
        })
    }
}

/// The plans of one engine: one for every batch size, or `plans[b - 1]`
/// for batch `b`.
pub struct Plans<P> {
    max: usize,
    plans: Vec<P>,
}

impl<P> Plans<P> {
    /// The plan that runs a batch of `batch`.
    pub fn get(&mut self, batch: usize) -> Result<&mut P> {
        if batch == 0 || batch > self.max {
            bail!("batch of {batch} outside 1..={}", self.max);
        }
        let i = if self.plans.len() == 1 { 0 } else { batch - 1 };
        Ok(&mut self.plans[i])
    }
}

/// Builds the plans `mode` asks for up to batch `max`. `build(None)` makes
/// the symbolic plan, `build(Some(b))` the plan for batch `b`; `run(plan, b)`
/// runs one batch of `b` (its errors should say which batch failed). Every
/// plan is run once before it is used (per-batch plans at the smallest and
/// largest batch), so a model that does not run fails here, not on the first
/// request.
pub fn build<P>(
    mode: PlanMode,
    max: usize,
    mut build: impl FnMut(Option<usize>) -> Result<P>,
    mut run: impl FnMut(&mut P, usize) -> Result<()>,
) -> Result<(Plans<P>, PlanReport)> {
    let started = Instant::now();
    if max == 0 {
        bail!("largest batch must be at least 1");
    }
    let mut time = |plan: &mut P, b: usize| -> Result<f64> {
        let t = Instant::now();
        run(plan, b)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let ends: &[usize] = if max == 1 { &[1] } else { &[1, max] };
    let mut timings = Vec::new();
    // Per-batch plans timed by auto, kept for reuse.
    let mut exact: HashMap<usize, P> = HashMap::new();
    let mut symbolic: Option<P> = None;
    let mode = match mode {
        PlanMode::Auto => {
            let mut sym = build(None)?;
            let mut ratio = 0.0;
            for &b in ends {
                let mut plan = build(Some(b))?;
                // One warm-up run each (allocations, page faults), then one
                // timed run: a ResNet-50 batch of 16 takes seconds on a
                // small CPU, and the layouts differ by more than run-to-run
                // noise when they differ at all.
                time(&mut sym, b)?;
                time(&mut plan, b)?;
                let t = PlanTiming {
                    batch: b,
                    symbolic_s: time(&mut sym, b)?,
                    per_batch_s: time(&mut plan, b)?,
                };
                ratio += t.per_batch_s / t.symbolic_s / ends.len() as f64;
                timings.push(t);
                exact.insert(b, plan);
            }
            symbolic = Some(sym);
            if ratio < PER_BATCH_GAIN {
                PlanMode::PerBatch
            } else {
                PlanMode::Symbolic
            }
        }
        other => other,
    };
    let plans = match mode {
        PlanMode::PerBatch => {
            drop(symbolic);
            let mut plans = Vec::with_capacity(max);
            for b in 1..=max {
                let plan = match exact.remove(&b) {
                    Some(plan) => plan,
                    None => {
                        let mut plan = build(Some(b))?;
                        if ends.contains(&b) {
                            time(&mut plan, b)?;
                        }
                        plan
                    }
                };
                plans.push(plan);
            }
            plans
        }
        _ => {
            let plan = match symbolic {
                Some(plan) => plan,
                None => {
                    let mut plan = build(None)?;
                    time(&mut plan, 1)?;
                    plan
                }
            };
            vec![plan]
        }
    };
    let report = PlanReport {
        mode,
        timings,
        build_s: started.elapsed().as_secs_f64(),
    };
    Ok((Plans { max, plans }, report))
}
