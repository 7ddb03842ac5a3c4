//! The tract-onnx backend: any ONNX file with one symbolic batch dimension.
//!
//! At load the graph is checked (every operator known to tract, every input
//! batched on axis 0 with all other dimensions fixed), typed and decluttered once,
//! then turned into optimised plans, one symbolic or one per batch size, as
//! [`super::plans`] chooses.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::RunOptions;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;
use tract_onnx::tract_hir::internal::InferenceModel;

use super::plans::{self, PlanMode, PlanReport, Plans};
use super::tensor::{DataType, Tensor as Plain, TensorSpec};
use super::{Engine, EngineOptions, InputKinds, InputSpec, Signature, brief, synthetic};

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

impl From<&EngineOptions> for TractOptions {
    fn from(o: &EngineOptions) -> Self {
        TractOptions {
            max_batch: o.max_batch,
            plans: o.plans,
            threads: o.threads,
            seed: o.seed,
            memory_limit: None,
        }
    }
}

type State = TypedSimpleState;

/// See the module doc.
pub struct TractEngine {
    inputs: Vec<InputSpec>,
    max_batch: usize,
    plans: Plans<State>,
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
        let shown = path.display();
        if options.max_batch == 0 {
            bail!("largest batch must be at least 1");
        }
        std::fs::File::open(path).with_context(|| format!("cannot read model {shown}"))?;
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_path(path)
            .map_err(|e| anyhow!("{shown}: not an ONNX model tract can load ({})", brief(&e)))?;
        // With the file's folder: tensors stored as external data are found
        // next to the file.
        let parsed = onnx
            .parse(&proto, path.parent().and_then(Path::to_str))
            .map_err(|e| anyhow!("{shown}: not an ONNX model tract can load ({})", brief(&e)))?;
        if !parsed.unresolved_inputs.is_empty() {
            bail!(
                "{shown}: not an ONNX model tract can load (inputs {:?} are never defined)",
                parsed.unresolved_inputs
            );
        }
        let model = parsed.model;
        check_operators(&model).with_context(|| shown.to_string())?;
        let (inputs, batch_symbol) = inspect_inputs(&model, &InputKinds::of_proto(&proto))
            .with_context(|| shown.to_string())?;
        drop(proto);
        let typed = model
            .into_typed()
            .and_then(|m| m.into_decluttered())
            .map_err(|e| {
                anyhow!(
                    "{shown}: the graph does not fit its input shapes ({})",
                    brief(&e)
                )
            })?;
        let signature = Signature::new(
            &inputs,
            output_specs(&typed).with_context(|| shown.to_string())?,
        );
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
        let max = options.max_batch;
        let synthetic: Vec<Arc<Tensor>> = synthetic::synthesise(&inputs, max, options.seed)?
            .iter()
            .map(|t| to_tract(t).map(Arc::new))
            .collect::<Result<_>>()?;
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
        let (plans, report) = plans::build(
            options.plans,
            max,
            |b| build(b).map_err(|e| anyhow!("{shown}: cannot optimise ({})", brief(&e))),
            |state, b| {
                state
                    .run(batch_inputs(&synthetic, max, b)?)
                    .map(drop)
                    .map_err(|e| anyhow!("{shown}: a batch of {b} does not run ({})", brief(&e)))
            },
        )?;
        Ok(TractEngine {
            inputs,
            max_batch: max,
            plans,
            synthetic,
            report,
            signature,
        })
    }
}

impl Engine for TractEngine {
    fn backend(&self) -> &'static str {
        "tract"
    }

    fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn plan_report(&self) -> &PlanReport {
        &self.report
    }

    fn run_synthetic(&mut self, batch: usize) -> Result<()> {
        let state = self.plans.get(batch)?;
        let inputs = batch_inputs(&self.synthetic, self.max_batch, batch)?;
        run_state(state, inputs).map(drop)
    }

    fn infer(&mut self, inputs: &[Plain]) -> Result<Vec<Plain>> {
        let batch = self.signature.batch_of(inputs, self.max_batch)?;
        let values = inputs
            .iter()
            .map(|t| to_tract(t).map(IntoTValue::into_tvalue))
            .collect::<Result<TVec<TValue>>>()?;
        let outputs = run_state(self.plans.get(batch)?, values)?;
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

/// A plain tensor as tract's (both little-endian: the targets EcoEdge runs
/// on, x86_64 and aarch64).
fn to_tract(t: &Plain) -> Result<Tensor> {
    let mut tensor = Tensor::zero_dt(tract_type(t.datatype), &t.shape)?;
    let bytes = tensor.as_bytes_mut();
    if bytes.len() != t.data.len() {
        bail!(
            "{} bytes for a {} tensor of shape {:?}",
            t.data.len(),
            t.datatype,
            t.shape
        );
    }
    bytes.copy_from_slice(&t.data);
    Ok(tensor)
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

/// tract's element type of a plain datatype.
fn tract_type(d: DataType) -> DatumType {
    match d {
        DataType::Bool => DatumType::Bool,
        DataType::U8 => DatumType::U8,
        DataType::U16 => DatumType::U16,
        DataType::U32 => DatumType::U32,
        DataType::U64 => DatumType::U64,
        DataType::I8 => DatumType::I8,
        DataType::I16 => DatumType::I16,
        DataType::I32 => DatumType::I32,
        DataType::I64 => DatumType::I64,
        DataType::F16 => DatumType::F16,
        DataType::F32 => DatumType::F32,
        DataType::F64 => DatumType::F64,
    }
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
fn inspect_inputs(model: &InferenceModel, kinds: &InputKinds) -> Result<(Vec<InputSpec>, String)> {
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
        let datatype = plain_type(datum).with_context(|| format!("input {name:?}"))?;
        specs.push(InputSpec {
            kind: kinds.kind(&name, datatype),
            name,
            datatype,
            shape,
        });
    }
    let symbol = symbol.ok_or_else(|| anyhow!("the model has no inputs"))?;
    Ok((specs, symbol))
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
