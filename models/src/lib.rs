//! Deterministic generators for the ONNX models EcoEdge ships with.
//!
//! | model | module | inputs | parameters |
//! |---|---|---|---|
//! | `resnet50` | [`resnet`] | `input: f32[N, 3, 224, 224]` | 25 557 032 |
//! | `bert-tiny` | [`bert`] | `input_ids, attention_mask: i64[N, 128]` | 4 385 920 |
//! | `mlp` | [`mlp`] | `input: f32[N, 64]` | 19 210 |
//!
//! Every model is opset [`graph::OPSET`] with a symbolic batch dimension `N`, and
//! weights drawn from a seeded generator: the same seed gives byte-identical
//! files, so every figure measured on them can be reproduced. The weights are
//! random (the topology and the arithmetic are what energy and latency depend
//! on); nothing here is a trained network.
//!
//! The files are not committed (ResNet-50 is 100 MB): [`Builtin::path`] generates
//! one on first use into [`cache_dir`] and reuses it afterwards. The protobuf is
//! written with tract-onnx's prost-generated types.
//!
//! ```no_run
//! let path = ecoedge_models::Builtin::Mlp.path()?;
//! # Ok::<(), ecoedge_models::Error>(())
//! ```
#![deny(missing_docs)]

pub mod bert;
pub mod graph;
pub mod mlp;
pub mod resnet;

use std::fmt;
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb::ModelProto;

/// Seed of the cached files.
pub const SEED: u64 = 0xEC0_ED6E;

/// Bumped whenever a generator's output changes, so stale cache files are not
/// picked up.
pub const GENERATOR_VERSION: u32 = 1;

/// Environment variable that overrides [`cache_dir`].
pub const CACHE_ENV: &str = "ECOEDGE_CACHE";

/// A model the project generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// ResNet-50, torchvision topology.
    ResNet50,
    /// BERT-tiny (2 layers, hidden 128).
    BertTiny,
    /// A tiny MLP for fast tests.
    Mlp,
}

/// A generated model and its trainable parameter count.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The ONNX model.
    pub model: ModelProto,
    /// Trainable parameters (weights and biases).
    pub parameters: u64,
}

/// A cache file could not be written or read.
#[derive(Debug)]
pub struct Error {
    path: PathBuf,
    source: std::io::Error,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.as_os_str().is_empty() {
            write!(f, "model cache: {}", self.source)
        } else {
            write!(f, "model cache {}: {}", self.path.display(), self.source)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl Builtin {
    /// Every built-in model.
    pub const ALL: [Builtin; 3] = [Builtin::ResNet50, Builtin::BertTiny, Builtin::Mlp];

    /// The name on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Builtin::ResNet50 => "resnet50",
            Builtin::BertTiny => "bert-tiny",
            Builtin::Mlp => "mlp",
        }
    }

    /// The model called `name`, if it is built in.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Trainable parameters the reference implementation has.
    pub const fn parameters(self) -> u64 {
        match self {
            Builtin::ResNet50 => resnet::PARAMETERS,
            Builtin::BertTiny => bert::PARAMETERS,
            Builtin::Mlp => mlp::PARAMETERS,
        }
    }

    /// Builds the model in memory with weights drawn from `seed`.
    pub fn generate(self, seed: u64) -> Generated {
        let (model, parameters) = match self {
            Builtin::ResNet50 => resnet::generate(seed),
            Builtin::BertTiny => bert::generate(seed),
            Builtin::Mlp => mlp::generate(seed),
        };
        Generated { model, parameters }
    }

    /// The cached file for [`SEED`], generated first if missing.
    pub fn path(self) -> Result<PathBuf, Error> {
        self.path_in(&cache_dir()?)
    }

    /// The cached file for [`SEED`] under `dir`, generated first if missing
    /// or unreadable as a model (empty, cut short, overwritten). Safe when
    /// several processes ask at once: each writes a private temporary file
    /// and renames it into place, so a reader never sees half a file.
    pub fn path_in(self, dir: &Path) -> Result<PathBuf, Error> {
        let path = dir.join(format!(
            "{}-g{GENERATOR_VERSION}-{SEED:x}.onnx",
            self.name()
        ));
        if is_model(&path) {
            return Ok(path);
        }
        let err = |source| Error {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let bytes = self.generate(SEED).model.encode_to_vec();
        let tmp = dir.join(format!(
            ".{}.{}.{:?}.tmp",
            self.name(),
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&tmp, bytes).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        Ok(path)
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `path` holds an ONNX model with a graph (a cache file left
/// empty or cut short by a crash or a full disk does not).
fn is_model(path: &Path) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| ModelProto::decode(bytes.as_slice()).ok())
        .and_then(|m| m.graph)
        .is_some_and(|g| !g.node.is_empty())
}

/// Where generated models are kept: `$ECOEDGE_CACHE`, else
/// `$XDG_CACHE_HOME/ecoedge`, else `~/.cache/ecoedge`. Never a shared
/// directory such as /tmp, where another user could plant the file.
pub fn cache_dir() -> Result<PathBuf, Error> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(CACHE_ENV) {
        Ok(PathBuf::from(dir))
    } else if let Some(dir) = var("XDG_CACHE_HOME") {
        Ok(PathBuf::from(dir).join("ecoedge"))
    } else if let Some(home) = var("HOME") {
        Ok(PathBuf::from(home).join(".cache").join("ecoedge"))
    } else {
        Err(Error {
            path: PathBuf::new(),
            source: std::io::Error::other(
                "no cache directory: set HOME, XDG_CACHE_HOME or ECOEDGE_CACHE",
            ),
        })
    }
}
