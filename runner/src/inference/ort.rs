//! The ONNX Runtime backend (`--engine ort`): the same models as tract, on
//! the CPU or, through ONNX Runtime's CUDA and TensorRT execution providers,
//! on an NVIDIA GPU (the paper served its models on the Jetson's GPU).
//!
//! The library is loaded at run time ([`super::ort_library`]). A session is
//! what tract calls a plan: one with the batch dimension left dynamic, or one
//! per batch size with the dimension fixed (`AddFreeDimensionOverrideByName`),
//! as [`super::plans`] chooses. Sessions run with `--threads` intra-op
//! threads, one inter-op thread, sequential execution and every graph
//! optimisation, as onnxruntime's Python API does by default.
//!
//! A GPU provider is registered with error-on-failure: when the library has
//! no such provider, or the provider cannot start (no GPU, no CUDA), loading
//! fails and says so, instead of running on the CPU unannounced. Nodes a
//! provider has no kernel for still run on the CPU, as in every ONNX Runtime
//! application.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use ort::ep::{self, ExecutionProvider, ExecutionProviderDispatch};
use ort::memory::Allocator;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::{DynTensor, DynTensorValueType, DynValue, Outlet, TensorElementType, ValueType};

use super::ort_library::{self, Runtime};
use super::plans::{self, PlanMode, PlanReport, Plans};
use super::tensor::{DataType, Tensor, TensorSpec};
use super::{Engine, EngineOptions, InputKinds, InputSpec, Signature, brief, synthetic};

/// ONNX Runtime's execution provider (`--ep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Ep {
    /// The CPU (every ONNX Runtime build has it).
    Cpu,
    /// NVIDIA GPUs through CUDA (onnxruntime-gpu, or a Jetson build).
    Cuda,
    /// NVIDIA TensorRT, with CUDA for what TensorRT does not take.
    #[value(name = "tensorrt")]
    TensorRt,
}

impl fmt::Display for Ep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ep::Cpu => "cpu",
            Ep::Cuda => "cuda",
            Ep::TensorRt => "tensorrt",
        })
    }
}

/// See the module doc.
pub struct OrtEngine {
    inputs: Vec<InputSpec>,
    signature: Signature,
    max_batch: usize,
    plans: Plans<Session>,
    /// One synthetic input per model input, at the largest batch.
    synthetic: Vec<Tensor>,
    report: PlanReport,
}

impl OrtEngine {
    /// Loads ONNX Runtime (once per process), then `path` into sessions for
    /// batches `1..=options.max_batch` on `options.ep`. Errors name what
    /// failed in one line.
    pub fn load(path: &Path, options: &EngineOptions) -> Result<Self> {
        let shown = path.display();
        if options.max_batch == 0 {
            bail!("largest batch must be at least 1");
        }
        std::fs::File::open(path).with_context(|| format!("cannot read model {shown}"))?;
        let kinds = InputKinds::of(path)?;
        let rt = ort_library::runtime().context("--engine ort")?;
        let providers = providers(rt, options.ep)?;
        let session = |fixed: Option<(&str, usize)>| -> Result<Session> {
            let err = |e: ort::Error<SessionBuilder>| anyhow!("{e}");
            let mut builder = Session::builder(&rt.env)
                .map_err(|e| anyhow!("{e}"))?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(err)?
                .with_intra_threads(options.threads)
                .map_err(err)?
                .with_inter_threads(1)
                .map_err(err)?
                .with_parallel_execution(false)
                .map_err(err)?;
            if let Some((name, batch)) = fixed {
                builder = builder
                    .with_dimension_override(name, batch as i64)
                    .map_err(err)?;
            }
            commit(
                with_providers(builder, &providers, options.ep)?,
                path,
                options.ep,
            )
        };
        // The dynamic session tells the signature; auto and symbolic keep it.
        let first = session(None).map_err(|e| anyhow!("{shown}: {}", brief(&e)))?;
        let (inputs, symbol) =
            inspect_inputs(first.inputs(), &kinds).with_context(|| shown.to_string())?;
        let signature = Signature::new(
            &inputs,
            output_specs(first.outputs()).with_context(|| shown.to_string())?,
        );
        let mode = match (options.plans, symbol.is_empty()) {
            (PlanMode::PerBatch, true) => bail!(
                "{shown}: --plans per-batch needs a named batch dimension (ONNX dim_param); use --plans symbolic"
            ),
            // Nothing to fix the batch by: one dynamic session.
            (PlanMode::Auto, true) => PlanMode::Symbolic,
            (mode, _) => mode,
        };
        let max = options.max_batch;
        let synthetic = synthetic::synthesise(&inputs, max, options.seed)?;
        // Per-batch sessions have no use for it.
        let mut first = (mode != PlanMode::PerBatch).then_some(first);
        let (plans, report) = plans::build(
            mode,
            max,
            |b| {
                match b {
                    None => first.take().map_or_else(|| session(None), Ok),
                    Some(b) => session(Some((&symbol, b))),
                }
                .map_err(|e| anyhow!("{shown}: {}", brief(&e)))
            },
            |s, b| {
                run(s, &synthetic, Some(b))
                    .map(drop)
                    .map_err(|e| anyhow!("{shown}: a batch of {b} does not run ({})", brief(&e)))
            },
        )?;
        Ok(OrtEngine {
            inputs,
            signature,
            max_batch: max,
            plans,
            synthetic,
            report,
        })
    }
}

impl Engine for OrtEngine {
    fn backend(&self) -> &'static str {
        "ort"
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
        let session = self.plans.get(batch)?;
        run(session, &self.synthetic, Some(batch)).map(drop)
    }

    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let batch = self.signature.batch_of(inputs, self.max_batch)?;
        run(self.plans.get(batch)?, inputs, None)
    }
}

/// The providers to register for `ep` (none for the CPU: ONNX Runtime's
/// default), each failing the session if it cannot be registered. A
/// provider the library was not built with is refused here, naming the
/// library, before any session is made.
fn providers(rt: &Runtime, ep: Ep) -> Result<Vec<ExecutionProviderDispatch>> {
    let available = |name: &str, has: ort::Result<bool>| -> Result<()> {
        match has {
            Ok(true) => Ok(()),
            _ => Err(anyhow!(
                "--ep {ep}: the ONNX Runtime at {} has no {name} execution provider; \
                 install onnxruntime-gpu (pip) or point ORT_DYLIB_PATH at a build with {name}",
                rt.path.display()
            )),
        }
    };
    Ok(match ep {
        Ep::Cpu => Vec::new(),
        Ep::Cuda => {
            available("CUDA", ep::CUDA::is_available())?;
            vec![ep::CUDA::default().build().error_on_failure()]
        }
        Ep::TensorRt => {
            available("TensorRT", ep::TensorRT::is_available())?;
            available("CUDA", ep::CUDA::is_available())?;
            vec![
                ep::TensorRT::default().build().error_on_failure(),
                ep::CUDA::default().build().error_on_failure(),
            ]
        }
    })
}

/// `builder` with `providers` registered; a registration that fails (the
/// provider's libraries, CUDA or cuDNN, missing) is an error naming `ep`.
fn with_providers(
    builder: SessionBuilder,
    providers: &[ExecutionProviderDispatch],
    ep: Ep,
) -> Result<SessionBuilder> {
    if providers.is_empty() {
        return Ok(builder);
    }
    builder
        .with_execution_providers(providers)
        .map_err(|e| anyhow!("--ep {ep}: the provider cannot be used ({e})"))
}

/// The session of `builder` on the model at `path`.
fn commit(mut builder: SessionBuilder, path: &Path, ep: Ep) -> Result<Session> {
    builder.commit_from_file(path).map_err(|e| {
        if ep == Ep::Cpu {
            anyhow!("not a model ONNX Runtime can load ({e})")
        } else {
            anyhow!("--ep {ep}: ONNX Runtime cannot make a session on the provider ({e})")
        }
    })
}

/// Runs `session` on `inputs` (their first `rows` rows, or all of them) and
/// returns the outputs as plain tensors. An error, or a panic in `ort`, is an
/// error: the session stays usable.
fn run(session: &mut Session, inputs: &[Tensor], rows: Option<usize>) -> Result<Vec<Tensor>> {
    let values = inputs
        .iter()
        .map(|t| {
            to_ort(
                t,
                rows.unwrap_or_else(|| t.shape.first().copied().unwrap_or(0)),
            )
        })
        .collect::<Result<Vec<DynValue>>>()?;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<Vec<Tensor>> {
        let inputs: Vec<ort::session::SessionInputValue<'_>> =
            values.iter().map(Into::into).collect();
        let outputs = session.run(inputs.as_slice()).map_err(|e| anyhow!("{e}"))?;
        outputs.values().map(from_ort).collect()
    }));
    match outcome {
        Ok(result) => result.map_err(|e| anyhow!("inference: {}", brief(&e))),
        Err(_) => bail!("inference: ort panicked"),
    }
}

/// The first `rows` rows of `t` as an ONNX Runtime tensor on the CPU.
fn to_ort(t: &Tensor, rows: usize) -> Result<DynValue> {
    let mut shape = t.shape.clone();
    if let Some(first) = shape.first_mut() {
        *first = rows;
    }
    let bytes = &t.data[..rows * t.row_bytes()];
    let mut value = DynTensor::new(&Allocator::default(), ort_type(t.datatype), shape)
        .map_err(|e| anyhow!("{e}"))?;
    if value.size() != Some(bytes.len()) || !value.memory_info().is_cpu_accessible() {
        bail!("ONNX Runtime made a tensor of another size or off the CPU");
    }
    if !bytes.is_empty() {
        // SAFETY: the tensor was just allocated on the CPU with exactly
        // `bytes.len()` bytes (checked above), and nothing else refers to it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                value.data_ptr_mut().cast::<u8>(),
                bytes.len(),
            );
        }
    }
    Ok(value.into_dyn())
}

/// An output of a run as a plain tensor.
fn from_ort(value: ort::value::DynValueRef<'_>) -> Result<Tensor> {
    let tensor = value
        .downcast::<DynTensorValueType>()
        .map_err(|e| anyhow!("an output is not a tensor ({e})"))?;
    let datatype = plain_type(*tensor.data_type())?;
    let shape: Vec<usize> = tensor.shape().iter().map(|&d| d.max(0) as usize).collect();
    let size = tensor
        .size()
        .ok_or_else(|| anyhow!("output of {datatype} has no size"))?;
    if !tensor.memory_info().is_cpu_accessible() {
        bail!("an output is not in CPU memory");
    }
    let mut data = vec![0u8; size];
    if size > 0 {
        // SAFETY: the output lives in CPU memory (checked above) and holds
        // `size` bytes, as ONNX Runtime reports for its type and shape; it
        // is borrowed for the copy.
        unsafe {
            std::ptr::copy_nonoverlapping(tensor.data_ptr().cast::<u8>(), data.as_mut_ptr(), size);
        }
    }
    Tensor::new(datatype, shape, data)
}

/// ONNX Runtime's element type of a plain datatype.
fn ort_type(d: DataType) -> TensorElementType {
    match d {
        DataType::Bool => TensorElementType::Bool,
        DataType::U8 => TensorElementType::Uint8,
        DataType::U16 => TensorElementType::Uint16,
        DataType::U32 => TensorElementType::Uint32,
        DataType::U64 => TensorElementType::Uint64,
        DataType::I8 => TensorElementType::Int8,
        DataType::I16 => TensorElementType::Int16,
        DataType::I32 => TensorElementType::Int32,
        DataType::I64 => TensorElementType::Int64,
        DataType::F16 => TensorElementType::Float16,
        DataType::F32 => TensorElementType::Float32,
        DataType::F64 => TensorElementType::Float64,
    }
}

/// The plain datatype of an ONNX Runtime element type.
fn plain_type(t: TensorElementType) -> Result<DataType> {
    Ok(match t {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::U8,
        TensorElementType::Uint16 => DataType::U16,
        TensorElementType::Uint32 => DataType::U32,
        TensorElementType::Uint64 => DataType::U64,
        TensorElementType::Int8 => DataType::I8,
        TensorElementType::Int16 => DataType::I16,
        TensorElementType::Int32 => DataType::I32,
        TensorElementType::Int64 => DataType::I64,
        TensorElementType::Float16 => DataType::F16,
        TensorElementType::Float32 => DataType::F32,
        TensorElementType::Float64 => DataType::F64,
        other => bail!("element type {other} cannot be served"),
    })
}

/// A tensor outlet's element type and dimensions (-1: dynamic) and the
/// name of its first dimension.
fn tensor_outlet(o: &Outlet) -> Result<(DataType, Vec<i64>, String)> {
    match o.dtype() {
        ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } => Ok((
            plain_type(*ty).with_context(|| format!("{:?}", o.name()))?,
            shape.iter().copied().collect(),
            dimension_symbols.first().cloned().unwrap_or_default(),
        )),
        other => bail!("{:?} is not a tensor but a {other}", o.name()),
    }
}

/// Every input's per-request shape and kind, and the name of the batch
/// dimension they share (empty when unnamed).
fn inspect_inputs(outlets: &[Outlet], kinds: &InputKinds) -> Result<(Vec<InputSpec>, String)> {
    if outlets.is_empty() {
        bail!("the model has no inputs");
    }
    let mut specs = Vec::new();
    let mut symbol: Option<String> = None;
    for o in outlets {
        let name = o.name().to_string();
        let (datatype, dims, first) = tensor_outlet(o).context("input")?;
        let Some((&batch, rest)) = dims.split_first() else {
            bail!("input {name:?} is a scalar: no batch dimension");
        };
        if batch >= 0 {
            bail!(
                "input {name:?} has no batch dimension (axis 0 is {batch}); export it with a dynamic batch axis"
            );
        }
        if let Some(s) = symbol.as_ref().filter(|s| **s != first) {
            bail!("inputs are batched by different dimensions ({s} and {first})");
        }
        symbol = Some(first);
        let shape = per_sample(&name, rest)?;
        specs.push(InputSpec {
            kind: kinds.kind(&name, datatype),
            name,
            datatype,
            shape,
        });
    }
    Ok((specs, symbol.unwrap_or_default()))
}

/// Every output's name, element type and per-sample shape (axis 0 is the batch).
fn output_specs(outlets: &[Outlet]) -> Result<Vec<TensorSpec>> {
    outlets
        .iter()
        .map(|o| {
            let name = o.name().to_string();
            let (datatype, dims, _) = tensor_outlet(o).context("output")?;
            let shape = match dims.split_first() {
                Some((_, rest)) => per_sample(&name, rest)?,
                None => bail!("output {name:?} is a scalar: no batch dimension"),
            };
            Ok(TensorSpec {
                name,
                datatype,
                shape,
            })
        })
        .collect()
}

/// The fixed dimensions after the batch, or why they are not fixed.
fn per_sample(name: &str, rest: &[i64]) -> Result<Vec<usize>> {
    rest.iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| anyhow!("{name:?} has a dynamic dimension besides the batch: {rest:?}"))
}
