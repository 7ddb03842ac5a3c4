//! The tract-onnx backend: any ONNX file with one symbolic batch dimension.
//!
//! At load the graph is checked (every operator known to tract, every input
//! batched on axis 0 with all other dimensions fixed), typed and decluttered once,
//! then turned into optimised plans. Two ways to cover batch sizes `1..=max`:
//! one plan with the batch symbolic, or one plan per batch size (tract can then
//! pick kernels and pack for the exact shape). [`PlanMode::Auto`] times both at
//! the smallest and the largest batch and takes per-batch plans only when they
//! are clearly faster ([`PER_BATCH_GAIN`]), since they cost memory; the choice
//! and the timings are in [`TractEngine::plan_report`].

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::RunOptions;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;
use tract_onnx::tract_hir::internal::InferenceModel;

use super::tensor::{DataType, Tensor as Plain, TensorSpec};
use super::{Engine, InputKind, InputSpec, Signature, brief};

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

/// How to build a [`TractEngine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TractOptions {
    /// Largest batch (the knob space's largest batch size).
    pub max_batch: usize,
    /// Plan layout.
    pub plans: PlanMode,
    /// Threads of tract's executor; 1 runs on the calling thread.
    pub threads: usize,
    /// Seed of the synthetic inputs.
    pub seed: u64,
    /// Most memory the plans may need, bytes, on top of the check against
    /// the memory available now (MemAvailable): a caller's own cap (the fuzz
    /// harness runs under a 2 GB RSS limit). `None`: MemAvailable alone.
    pub memory_limit: Option<u64>,
}

impl Default for TractOptions {
    fn default() -> Self {
        TractOptions {
            max_batch: 16,
            plans: PlanMode::Auto,
            threads: 1,
            seed: 1,
            memory_limit: None,
        }
    }
}

/// Per-batch plans must beat the symbolic one by this factor (mean over the
/// batch sizes timed) to be chosen: they hold a packed copy of the weights per
/// batch size (ResNet-50, batches 1..=16: 2.0 GB resident against 0.6 GB).
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

type State = TypedSimpleState;

enum Plans {
    Symbolic(Box<State>),
    /// `states[b - 1]` runs batch `b`.
    PerBatch(Vec<State>),
}

/// See the module doc.
pub struct TractEngine {
    specs: Vec<InputSpec>,
    max_batch: usize,
    plans: Plans,
    /// One synthetic input per model input, at the largest batch.
    synthetic: Vec<Arc<Tensor>>,
    report: PlanReport,
    signature: Signature,
}

impl TractEngine {
    /// Loads `path` and builds the plans. Errors name the file and say what does
    /// not fit, in one line.
    ///
    /// A panic inside tract on a malformed file (a graph output that names
    /// no value panicked in tract-onnx's parser) is returned as an error too:
    /// a bad model is refused, it does not take the process down.
    pub fn load(path: &Path, options: &TractOptions) -> Result<Self> {
        std::panic::catch_unwind(AssertUnwindSafe(|| Self::load_unguarded(path, options)))
            .unwrap_or_else(|panic| {
                bail!(
                    "{}: not an ONNX model tract can load ({})",
                    path.display(),
                    panic_message(panic.as_ref())
                )
            })
    }

    fn load_unguarded(path: &Path, options: &TractOptions) -> Result<Self> {
        let started = Instant::now();
        let shown = path.display();
        if options.max_batch == 0 {
            bail!("largest batch must be at least 1");
        }
        std::fs::File::open(path).with_context(|| format!("cannot read model {shown}"))?;
        // By path, not from bytes: tensors stored as external data are found
        // next to the file.
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| anyhow!("{shown}: not an ONNX model tract can load ({})", brief(&e)))?;
        check_operators(&model).with_context(|| shown.to_string())?;
        let (specs, batch_symbol) = inspect_inputs(&model).with_context(|| shown.to_string())?;
        let typed = model
            .into_typed()
            .and_then(|m| m.into_decluttered())
            .map_err(|e| {
                anyhow!(
                    "{shown}: the graph does not fit its input shapes ({})",
                    brief(&e)
                )
            })?;
        let signature = Signature {
            inputs: specs
                .iter()
                .map(|s| {
                    Ok(TensorSpec {
                        name: s.name.clone(),
                        datatype: plain_type(s.datum)?,
                        shape: s.shape.clone(),
                    })
                })
                .collect::<Result<_>>()
                .with_context(|| shown.to_string())?,
            outputs: output_specs(&typed).with_context(|| shown.to_string())?,
        };
        let batch = typed.symbols.get(&batch_symbol).ok_or_else(|| {
            anyhow!("{shown}: batch dimension {batch_symbol} vanished in analysis")
        })?;
        check_memory(&typed, &batch, options.max_batch, options.memory_limit)
            .with_context(|| shown.to_string())?;
        let run_options = RunOptions {
            executor: (options.threads > 1)
                .then(|| tract_linalg::multithread::Executor::multithread(options.threads)),
            ..RunOptions::default()
        };
        let build = |b: Option<usize>| -> Result<State> {
            let model = match b {
                Some(b) => {
                    let subs = HashMap::from([(batch.clone(), TDim::Val(b as i64))]);
                    typed.set_symbols(&subs)?
                }
                None => typed.clone(),
            };
            let plan = model
                .into_optimized()?
                .into_runnable_with_options(&run_options)?;
            plan.spawn()
        };
        let synthetic = synthesise(&specs, options.max_batch, options.seed)?;
        let max = options.max_batch;
        let inputs_at = |b: usize| batch_inputs(&synthetic, max, b);
        let optimise_err = |e: anyhow::Error| anyhow!("{shown}: cannot optimise ({})", brief(&e));
        let check = |state: &mut State, b: usize| -> Result<f64> {
            let t = Instant::now();
            state
                .run(inputs_at(b)?)
                .map_err(|e| anyhow!("{shown}: a batch of {b} does not run ({})", brief(&e)))?;
            Ok(t.elapsed().as_secs_f64())
        };
        let mut report = PlanReport {
            mode: options.plans,
            timings: Vec::new(),
            build_s: 0.0,
        };
        // Per-batch plans timed by auto, kept for reuse.
        let mut exact: HashMap<usize, State> = HashMap::new();
        let mut symbolic: Option<State> = None;
        let mode = match options.plans {
            PlanMode::Auto => {
                let mut sym = build(None).map_err(optimise_err)?;
                let mut ratio = 0.0;
                let ends: &[usize] = if max == 1 { &[1] } else { &[1, max] };
                for &b in ends {
                    let mut state = build(Some(b)).map_err(optimise_err)?;
                    // One warm-up run each (allocations, page faults), then one
                    // timed run: a ResNet-50 batch of 16 takes seconds on a
                    // small CPU, and the layouts differ by more than run-to-run
                    // noise when they differ at all.
                    check(&mut sym, b)?;
                    check(&mut state, b)?;
                    let t = PlanTiming {
                        batch: b,
                        symbolic_s: check(&mut sym, b)?,
                        per_batch_s: check(&mut state, b)?,
                    };
                    ratio += t.per_batch_s / t.symbolic_s / ends.len() as f64;
                    report.timings.push(t);
                    exact.insert(b, state);
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
        report.mode = mode;
        let plans = match mode {
            PlanMode::PerBatch => {
                let mut states = Vec::with_capacity(max);
                for b in 1..=max {
                    let state = match exact.remove(&b) {
                        Some(state) => state,
                        None => {
                            let mut state = build(Some(b)).map_err(optimise_err)?;
                            if b == 1 || b == max {
                                check(&mut state, b)?;
                            }
                            state
                        }
                    };
                    states.push(state);
                }
                Plans::PerBatch(states)
            }
            _ => {
                let state = match symbolic {
                    Some(state) => state,
                    None => {
                        let mut state = build(None).map_err(optimise_err)?;
                        check(&mut state, 1)?;
                        state
                    }
                };
                Plans::Symbolic(Box::new(state))
            }
        };
        report.build_s = started.elapsed().as_secs_f64();
        Ok(TractEngine {
            specs,
            max_batch: max,
            plans,
            synthetic,
            report,
            signature,
        })
    }

    /// The plan layout in use and what chose it.
    pub fn plan_report(&self) -> &PlanReport {
        &self.report
    }

    fn state(&mut self, batch: usize) -> Result<&mut State> {
        if batch == 0 || batch > self.max_batch {
            bail!("batch of {batch} outside 1..={}", self.max_batch);
        }
        Ok(match &mut self.plans {
            Plans::Symbolic(s) => s,
            Plans::PerBatch(states) => &mut states[batch - 1],
        })
    }
}

impl Engine for TractEngine {
    fn backend(&self) -> &'static str {
        "tract"
    }

    fn inputs(&self) -> &[InputSpec] {
        &self.specs
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn run(&mut self, inputs: TVec<TValue>) -> Result<TVec<TValue>> {
        if inputs.len() != self.specs.len() {
            bail!(
                "{} inputs given, the model takes {}",
                inputs.len(),
                self.specs.len()
            );
        }
        let batch = inputs[0].shape().first().copied().unwrap_or(0);
        for (t, spec) in inputs.iter().zip(&self.specs) {
            if t.datum_type() != spec.datum
                || t.shape().first() != Some(&batch)
                || t.shape()[1..] != spec.shape[..]
            {
                bail!(
                    "input {:?}{:?} does not fit {spec} with a batch of {batch}",
                    t.datum_type(),
                    t.shape()
                );
            }
        }
        run_state(self.state(batch)?, inputs)
    }

    fn run_synthetic(&mut self, batch: usize) -> Result<()> {
        let inputs = batch_inputs(&self.synthetic, self.max_batch, batch)?;
        run_state(self.state(batch)?, inputs).map(drop)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn infer(&mut self, inputs: &[Plain]) -> Result<Vec<Plain>> {
        let mut values = TVec::new();
        for (t, spec) in inputs.iter().zip(&self.specs) {
            let mut tensor = Tensor::zero_dt(spec.datum, &t.shape)?;
            let bytes = tensor.as_bytes_mut();
            if bytes.len() != t.data.len() {
                bail!(
                    "input {}: {} bytes for shape {:?}",
                    spec.name,
                    t.data.len(),
                    t.shape
                );
            }
            // Both little-endian: the targets EcoEdge runs on (x86_64, aarch64).
            bytes.copy_from_slice(&t.data);
            values.push(tensor.into_tvalue());
        }
        let outputs = self.run(values)?;
        outputs
            .iter()
            .map(|o| {
                Ok(Plain {
                    datatype: plain_type(o.datum_type())?,
                    shape: o.shape().to_vec(),
                    data: o.as_bytes().to_vec(),
                })
            })
            .collect()
    }
}

/// Runs one plan. An error, or a panic inside tract on some input (a token
/// id past the vocabulary panics in `Gather`), is returned as an error, and
/// the plan's state is made afresh: a run cut short leaves values and
/// resolved symbols (the batch size) behind that would fail the next run.
fn run_state(state: &mut State, inputs: TVec<TValue>) -> Result<TVec<TValue>> {
    let why = match std::panic::catch_unwind(AssertUnwindSafe(|| state.run(inputs))) {
        Ok(Ok(outputs)) => return Ok(outputs),
        Ok(Err(e)) => brief(&e),
        Err(panic) => panic_message(panic.as_ref()),
    };
    *state = State::new(state.plan()).map_err(|e| anyhow!("renewing the plan's state: {e}"))?;
    bail!("inference: {why}")
}

/// What a panic caught from tract said: `tract panicked: MESSAGE`.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .map_or_else(
            || "tract panicked".into(),
            |m| format!("tract panicked: {m}"),
        )
}

/// The plain datatype of a tract element type.
fn plain_type(d: DatumType) -> Result<DataType> {
    Ok(match d {
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::U8,
        DatumType::U16 => DataType::U16,
        DatumType::U32 => DataType::U32,
        DatumType::U64 => DataType::U64,
        DatumType::I8 => DataType::I8,
        DatumType::I16 => DataType::I16,
        DatumType::I32 => DataType::I32,
        DatumType::I64 => DataType::I64,
        DatumType::F16 => DataType::F16,
        DatumType::F32 => DataType::F32,
        DatumType::F64 => DataType::F64,
        other => bail!("element type {other:?} cannot be served"),
    })
}

/// Every output's name, element type and per-sample shape (axis 0 is the batch).
fn output_specs(model: &TypedModel) -> Result<Vec<TensorSpec>> {
    model
        .output_outlets()?
        .iter()
        .map(|&o| {
            let name = model
                .outlet_label(o)
                .map_or_else(|| model.node(o.node).name.clone(), str::to_string);
            let fact = model.outlet_fact(o)?;
            let dims: Vec<TDim> = fact.shape.iter().cloned().collect();
            let shape = dims
                .get(1..)
                .unwrap_or_default()
                .iter()
                .map(|d| d.to_usize().ok())
                .collect::<Option<Vec<usize>>>()
                .filter(|_| !dims.is_empty())
                .ok_or_else(|| {
                    anyhow!("output {name:?} has no fixed per-sample shape: {dims:?}")
                })?;
            Ok(TensorSpec {
                name,
                datatype: plain_type(fact.datum_type)?,
                shape,
            })
        })
        .collect()
}

/// The first `batch` rows of each synthetic input; no copy at the largest batch.
fn batch_inputs(synthetic: &[Arc<Tensor>], max: usize, batch: usize) -> Result<TVec<TValue>> {
    synthetic
        .iter()
        .map(|t| {
            Ok(if batch == max {
                TValue::from_const(Arc::clone(t))
            } else {
                t.slice(0, 0, batch)?.into()
            })
        })
        .collect()
}

/// Fails on the first operator tract does not implement, naming it.
fn check_operators(model: &InferenceModel) -> Result<()> {
    for node in model.nodes() {
        let name = node.op.name();
        if let Some(op) = name
            .strip_prefix("Unimplemented(")
            .and_then(|s| s.strip_suffix(')'))
        {
            bail!("unsupported operator {op} (node {:?})", node.name);
        }
    }
    Ok(())
}

/// Every input's per-request shape and kind, and the batch symbol they share.
fn inspect_inputs(model: &InferenceModel) -> Result<(Vec<InputSpec>, String)> {
    let outlets = model.input_outlets()?.to_vec();
    if outlets.is_empty() {
        bail!("the model has no inputs");
    }
    let mut specs = Vec::new();
    let mut symbol: Option<String> = None;
    for outlet in outlets {
        let name = model.node(outlet.node).name.clone();
        let fact = model.outlet_fact(outlet)?;
        let datum = fact
            .datum_type
            .concretize()
            .ok_or_else(|| anyhow!("input {name:?} has no element type"))?;
        let dims: Vec<TDim> = fact
            .shape
            .dims()
            .map(|d| d.concretize())
            .collect::<Option<_>>()
            .filter(|_| !fact.shape.is_open())
            .ok_or_else(|| anyhow!("input {name:?} has no fixed rank; give its shape"))?;
        let Some((first, rest)) = dims.split_first() else {
            bail!("input {name:?} is a scalar: no batch dimension");
        };
        let first = match first {
            TDim::Sym(s) => format!("{s}"),
            other => bail!(
                "input {name:?} has no batch dimension (axis 0 is {other}); export it with a dynamic batch axis"
            ),
        };
        if let Some(s) = symbol.as_ref().filter(|s| **s != first) {
            bail!("inputs are batched by different dimensions ({s} and {first})");
        }
        symbol = Some(first);
        let shape = rest
            .iter()
            .map(|d| d.to_usize().ok())
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                anyhow!("input {name:?} has a symbolic dimension besides the batch: {dims:?}")
            })?;
        let kind = input_kind(model, outlet, &name, datum);
        specs.push(InputSpec {
            name,
            datum,
            shape,
            kind,
        });
    }
    let symbol = symbol.ok_or_else(|| anyhow!("the model has no inputs"))?;
    Ok((specs, symbol))
}

/// Guesses how to fill an input: float inputs are features; integer inputs are
/// masks or token types by name, else token ids bounded by the embedding table
/// that a `Gather` indexes with them.
fn input_kind(model: &InferenceModel, outlet: OutletId, name: &str, datum: DatumType) -> InputKind {
    if datum.is_float() {
        return InputKind::Features;
    }
    let lower = name.to_lowercase();
    if lower.contains("mask") {
        return InputKind::Mask;
    }
    if lower.contains("type") || lower.contains("segment") {
        return InputKind::Zeros;
    }
    let vocab = model
        .nodes()
        .iter()
        .filter(|n| n.op.name() == "Gather" && n.inputs.get(1) == Some(&outlet))
        .find_map(|n| {
            let table = model.outlet_fact(n.inputs[0]).ok()?;
            let value = table.value.concretize()?;
            value.shape().first().map(|&rows| rows as i64)
        });
    // Without a table to bound them, small ids are valid for any vocabulary.
    InputKind::TokenIds {
        vocab: vocab.unwrap_or(100),
    }
}

/// Refuses a model whose largest batch cannot fit in the memory available
/// now, or in `limit` where the caller sets one, before plans or synthetic
/// inputs are made: a 91-byte model with a `[N, 100000, 100000]` input asked
/// for 640 GB and the process aborted. Without /proc/meminfo (not Linux) only
/// `limit` is checked.
fn check_memory(
    typed: &TypedModel,
    batch: &Symbol,
    max_batch: usize,
    limit: Option<u64>,
) -> Result<()> {
    let need = least_bytes(typed, batch, max_batch);
    let (available, what) = match (mem_available(), limit) {
        (Some(a), Some(l)) if l < a => (l, "the memory limit"),
        (Some(a), _) => (a, "available (MemAvailable)"),
        (None, Some(l)) => (l, "the memory limit"),
        (None, None) => return Ok(()),
    };
    if need > u128::from(available) {
        bail!(
            "a batch of {max_batch} needs at least {} of memory, {} is {what}; lower --max-batch or use a smaller model",
            gigabytes(need),
            gigabytes(available.into())
        );
    }
    Ok(())
}

/// A floor on the memory the plans need at `max_batch`: the synthetic inputs
/// together, or the largest value the graph computes from them if larger. Tract reuses
/// buffers and may run some operators in place, so the true peak is higher,
/// but a model refused on this floor certainly does not fit.
fn least_bytes(typed: &TypedModel, batch: &Symbol, max_batch: usize) -> u128 {
    let at = SymbolValues::default().with(batch, max_batch as i64);
    let bytes = |fact: &TypedFact| -> u128 {
        fact.shape
            .dims()
            .iter()
            // A dimension that does not evaluate (another symbol) counts as 0:
            // the floor stays a floor.
            .map(|d| d.eval_to_i64(&at).map_or(0, |v| v.max(0) as u128))
            .fold(fact.datum_type.size_of() as u128, u128::saturating_mul)
    };
    let inputs: u128 = typed
        .input_outlets()
        .unwrap_or_default()
        .iter()
        .filter_map(|&o| typed.outlet_fact(o).ok())
        .map(bytes)
        .fold(0, u128::saturating_add);
    // Constants (the weights) are left out: they are in memory already.
    let largest = typed
        .nodes()
        .iter()
        .flat_map(|n| &n.outputs)
        .filter(|o| o.fact.konst.is_none())
        .map(|o| bytes(&o.fact))
        .max()
        .unwrap_or(0);
    inputs.max(largest)
}

/// MemAvailable from /proc/meminfo, bytes.
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Bytes as gigabytes with one decimal, for errors.
fn gigabytes(bytes: u128) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Synthetic inputs at the largest batch, drawn from `seed`.
fn synthesise(specs: &[InputSpec], max: usize, seed: u64) -> Result<Vec<Arc<Tensor>>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    specs
        .iter()
        .map(|spec| {
            let mut shape = vec![max];
            shape.extend(&spec.shape);
            let n: usize = shape.iter().product();
            let t = match spec.kind {
                InputKind::Features => {
                    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
                    Tensor::from_shape(&shape, &v)?
                }
                InputKind::TokenIds { vocab } => {
                    let v: Vec<i64> = (0..n).map(|_| rng.random_range(0..vocab.max(1))).collect();
                    Tensor::from_shape(&shape, &v)?
                }
                InputKind::Mask => Tensor::from_shape(&shape, &vec![1i64; n])?,
                InputKind::Zeros => Tensor::from_shape(&shape, &vec![0i64; n])?,
            };
            // Integer inputs of another width (i32 ids) are cast from i64.
            let t = t.cast_to_dt(spec.datum)?.into_owned();
            Ok(Arc::new(t))
        })
        .collect()
}
