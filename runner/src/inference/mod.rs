//! Running DNN inference: a small [`Engine`] trait and its tract backend.
//!
//! The service loop needs three things from an inference backend: how many
//! requests fit one batch, what one request's inputs look like (to synthesise
//! them, or to check what a caller feeds), and "run this batch". Keeping that
//! behind a trait lets a GPU backend (tract-cuda, as on the paper's Jetson) slot
//! in later without touching the loop.

pub mod tensor;
pub mod tract;

use std::fmt;

use anyhow::Result;
use tract_onnx::prelude::{DatumType, TValue, TVec};

pub use self::tensor::{DataType, TensorSpec};
pub use self::tract::{PlanMode, PlanReport, TractEngine, TractOptions};

use self::tensor::Tensor;

/// A model's inputs and outputs, per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// Inputs, in the model's order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the model's order.
    pub outputs: Vec<TensorSpec>,
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
    pub datum: DatumType,
    /// Shape of one request's slice of the input.
    pub shape: Vec<usize>,
    /// How synthetic requests fill it.
    pub kind: InputKind,
}

impl fmt::Display for InputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}[N", self.name, self.datum)?;
        for d in &self.shape {
            write!(f, ", {d}")?;
        }
        f.write_str("]")
    }
}

/// An inference backend with plans ready for every batch size up to
/// [`max_batch`](Engine::max_batch). Running never panics: whatever goes
/// wrong in the backend on some input is an error, and the engine stays
/// usable for the next batch.
pub trait Engine {
    /// Backend name for reports (`tract`, ...).
    fn backend(&self) -> &'static str;
    /// The model's inputs.
    fn inputs(&self) -> &[InputSpec];
    /// Largest batch the plans accept.
    fn max_batch(&self) -> usize;
    /// Runs one batch on caller-supplied inputs (batch axis first, one tensor
    /// per input, in order) and returns the outputs.
    fn run(&mut self, inputs: TVec<TValue>) -> Result<TVec<TValue>>;
    /// Runs one batch of `batch` synthetic requests, prepared at start so the
    /// timed path holds nothing but inference.
    fn run_synthetic(&mut self, batch: usize) -> Result<()>;
    /// The model's inputs and outputs as plain tensor specs (per sample).
    fn signature(&self) -> &Signature;
    /// Runs one batch of plain tensors (batch axis first, one per input, in
    /// order) and returns the outputs in the model's order.
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>>;
}

/// An error from tract, condensed to one line: tract's messages can span lines
/// (node dumps), and the command line promises one line per error.
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
