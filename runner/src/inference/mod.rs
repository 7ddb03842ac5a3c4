//! Running DNN inference: a small [`Engine`] trait over plain tensors, and its
//! backends: tract (the default, pure Rust, CPU) and ONNX Runtime (loaded at
//! run time; its CUDA and TensorRT providers run on a GPU).
//!
//! The service loop needs three things from an inference backend: how many
//! requests fit one batch, what one request's inputs look like (to synthesise
//! them, or to check what a caller feeds), and "run this batch". The trait
//! speaks only [`Tensor`]s (datatype, shape, bytes), so `run`, `serve` and the
//! library API drive any backend the same way. What engines share lives here
//! and in [`plans`] and [`synthetic`]: the signature check, the input kinds
//! read from the ONNX graph, the synthetic inputs and the plan-layout choice.

pub mod ort;
pub mod ort_library;
pub mod plans;
pub mod synthetic;
pub mod tensor;
pub mod tract;

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::Framework;

pub use self::ort::{Ep, OrtEngine};
pub use self::plans::{PlanMode, PlanReport, PlanTiming};
pub use self::tensor::{DataType, Tensor, TensorSpec};
pub use self::tract::{TractEngine, TractOptions};

/// A model's inputs and outputs, per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// Inputs, in the model's order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the model's order.
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    /// The signature of a model with these inputs and outputs.
    pub fn new(inputs: &[InputSpec], outputs: Vec<TensorSpec>) -> Self {
        Signature {
            inputs: inputs
                .iter()
                .map(|s| TensorSpec {
                    name: s.name.clone(),
                    datatype: s.datatype,
                    shape: s.shape.clone(),
                })
                .collect(),
            outputs,
        }
    }

    /// The batch size of `inputs` (one tensor per model input, in order,
    /// batch axis first) when they fit the model and hold 1..=`max_batch`
    /// rows; else why not, in one line. Every engine checks with this before
    /// it copies a byte, so all refuse the same inputs with the same words.
    pub fn batch_of(&self, inputs: &[Tensor], max_batch: usize) -> Result<usize> {
        if inputs.len() != self.inputs.len() {
            bail!(
                "{} inputs given, the model takes {}",
                inputs.len(),
                self.inputs.len()
            );
        }
        let batch = inputs[0].shape.first().copied().unwrap_or(0);
        for (t, spec) in inputs.iter().zip(&self.inputs) {
            let bytes = tensor::elements(&t.shape).and_then(|n| n.checked_mul(t.datatype.size()));
            if t.datatype != spec.datatype
                || t.shape.first() != Some(&batch)
                || t.shape[1..] != spec.shape[..]
                || bytes != Some(t.data.len())
            {
                bail!(
                    "input {}{:?} ({} bytes) does not fit {spec} with a batch of {batch}",
                    t.datatype,
                    t.shape,
                    t.data.len()
                );
            }
        }
        if batch == 0 || batch > max_batch {
            bail!("batch of {batch} outside 1..={max_batch}");
        }
        Ok(batch)
    }
}

/// What one request feeds into one model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Real-valued features (an image, a feature vector): uniform in `[0, 1)`.
    Features,
    /// Token ids below `vocab` (the rows of the embedding the ids index).
    TokenIds {
        /// Ids are drawn from `0..vocab`.
        vocab: i64,
    },
    /// An attention mask: all ones (every token attended).
    Mask,
    /// Token type / segment ids: all zeros.
    Zeros,
}

/// One model input, per request (the batch axis left out).
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// The input's name in the graph.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Shape of one request's slice of the input.
    pub shape: Vec<usize>,
    /// How synthetic requests fill it.
    pub kind: InputKind,
}

/// How synthetic requests fill each input of an ONNX graph, by input name.
/// Float inputs are features; integer inputs are masks or token types by
/// name, else token ids bounded by the rows of the embedding table that a
/// `Gather` indexes with them (read from the graph, so every engine draws the
/// same ids).
pub struct InputKinds {
    /// Rows of the constant table each input indexes, by input name.
    vocab: HashMap<String, i64>,
}

impl InputKinds {
    /// Reads the ONNX file at `path` (its protobuf only, not the weights'
    /// meaning): which inputs index which embedding tables.
    pub fn of(path: &Path) -> Result<Self> {
        let proto = tract_onnx::onnx()
            .proto_model_for_path(path)
            .map_err(|e| anyhow!("{}: not an ONNX model ({})", path.display(), brief(&e)))?;
        Ok(Self::of_proto(&proto))
    }

    /// As [`InputKinds::of`], from a parsed model.
    pub fn of_proto(proto: &ModelProto) -> Self {
        let mut vocab = HashMap::new();
        let Some(graph) = &proto.graph else {
            return InputKinds { vocab };
        };
        // A table is an initializer or the value of a Constant node.
        let mut rows: HashMap<&str, i64> = graph
            .initializer
            .iter()
            .filter_map(|t| Some((t.name.as_str(), *t.dims.first()?)))
            .collect();
        for node in graph.node.iter().filter(|n| n.op_type == "Constant") {
            let value = node.attribute.iter().find(|a| a.name == "value");
            if let (Some(out), Some(Some(t))) = (node.output.first(), value.map(|a| &a.t))
                && let Some(&r) = t.dims.first()
            {
                rows.insert(out.as_str(), r);
            }
        }
        for node in graph.node.iter().filter(|n| n.op_type == "Gather") {
            if let (Some(table), Some(ids)) = (node.input.first(), node.input.get(1))
                && let Some(&r) = rows.get(table.as_str())
            {
                vocab.entry(ids.clone()).or_insert(r);
            }
        }
        InputKinds { vocab }
    }

    /// The kind of input `name` of element type `datatype`.
    pub fn kind(&self, name: &str, datatype: DataType) -> InputKind {
        if matches!(datatype, DataType::F16 | DataType::F32 | DataType::F64) {
            return InputKind::Features;
        }
        let lower = name.to_lowercase();
        if lower.contains("mask") {
            return InputKind::Mask;
        }
        if lower.contains("type") || lower.contains("segment") {
            return InputKind::Zeros;
        }
        // Without a table to bound them, small ids are valid for any vocabulary.
        InputKind::TokenIds {
            vocab: self.vocab.get(name).copied().unwrap_or(100),
        }
    }
}

/// An inference backend with plans ready for every batch size up to
/// [`max_batch`](Engine::max_batch). Running never panics: whatever goes
/// wrong in the backend on some input is an error, and the engine stays
/// usable for the next batch.
pub trait Engine {
    /// Backend name for reports (`tract`, `ort`).
    fn backend(&self) -> &'static str;
    /// The model's inputs, with how synthetic requests fill them.
    fn inputs(&self) -> &[InputSpec];
    /// The model's inputs and outputs as plain tensor specs (per sample).
    fn signature(&self) -> &Signature;
    /// Largest batch the plans accept.
    fn max_batch(&self) -> usize;
    /// The plan layout in use and the timings that chose it.
    fn plan_report(&self) -> &PlanReport;
    /// Runs one batch of `batch` synthetic requests, prepared at start so the
    /// timed path holds nothing but inference.
    fn run_synthetic(&mut self, batch: usize) -> Result<()>;
    /// Runs one batch of plain tensors (batch axis first, one per input, in
    /// order) and returns the outputs in the model's order.
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>>;
}

/// Which backend runs the model (`--engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineChoice {
    /// tract-onnx: pure Rust, on the CPU.
    Tract,
    /// ONNX Runtime, loaded at run time, on the provider `--ep` names.
    Ort,
}

/// How to build an engine, whichever the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// The backend.
    pub engine: EngineChoice,
    /// ONNX Runtime's execution provider (`ort` only; tract runs on the CPU).
    pub ep: Ep,
    /// Largest batch (the knob space's largest batch size).
    pub max_batch: usize,
    /// Plan layout.
    pub plans: PlanMode,
    /// Intra-op threads; 1 runs on the calling thread.
    pub threads: usize,
    /// Seed of the synthetic inputs.
    pub seed: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            engine: EngineChoice::Tract,
            ep: Ep::Cpu,
            max_batch: 16,
            plans: PlanMode::Auto,
            threads: 1,
            seed: 1,
        }
    }
}

/// Refuses an execution provider the engine does not have: tract runs on
/// the CPU only.
pub fn check_engine(engine: EngineChoice, ep: Ep) -> Result<()> {
    if engine == EngineChoice::Tract && ep != Ep::Cpu {
        bail!("--ep {ep}: tract runs on the CPU only; add --engine ort");
    }
    Ok(())
}

/// Loads `path` into the engine `options` choose.
pub fn load(path: &Path, options: &EngineOptions) -> Result<Box<dyn Engine>> {
    check_engine(options.engine, options.ep)?;
    Ok(match options.engine {
        EngineChoice::Tract => Box::new(TractEngine::load(path, &TractOptions::from(options))?),
        EngineChoice::Ort => Box::new(OrtEngine::load(path, options)?),
    })
}

/// An error from a backend, condensed to one line: tract's messages can span
/// lines (node dumps), and the command line promises one line per error.
pub fn brief(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let line = cause.to_string();
        let line = line.lines().next().unwrap_or("").trim().to_string();
        if !line.is_empty() && !parts.contains(&line) {
            parts.push(line);
        }
    }
    let mut s = parts.join(": ");
    if s.len() > 400 {
        let cut = (0..=400)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(cut);
        s.push_str("...");
    }
    s
}
