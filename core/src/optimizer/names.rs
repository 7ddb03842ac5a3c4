//! Optimizers by name: what the command line and the reports call them.
//!
//! [`by_name`] turns a name from [`NAMES`] into an [`AnyOptimizer`], an enum that
//! implements [`Optimizer`] by delegating to the optimizer inside: no `dyn`, no
//! heap, and the controller stays generic over one concrete type.

use core::fmt;

use heapless::String;

use super::{
    Bayes, BayesSettings, Dvfs, EcoGd, EcoGdSettings, Fixed, Grid, Linear, Mab, MabJoint,
    MabSettings, Optimizer, RandomSearch, Repeat,
};
use crate::load::Load;
use crate::space::{Config, ConfigError, Knob, Space};
use crate::window::WindowReport;

/// Every name [`by_name`] accepts. Upper-case parts are placeholders:
/// `fixed:CPU,GPU,BATCH` takes CPU and GPU level *indices* (0 = lowest level) and a
/// batch *size*; `dvfs:BATCH` a batch size (plain `dvfs` uses 8).
pub const NAMES: [&str; 13] = [
    "ecogd",
    "ecogd:paper",
    "grid",
    "linear",
    "linear:forever",
    "dvfs",
    "dvfs:BATCH",
    "mab",
    "mab-joint",
    "bayes",
    "random",
    "fixed:CPU,GPU,BATCH",
    "fixed:max",
];

/// Batch size of plain `dvfs` (the paper ran 8 and 16).
pub const DVFS_DEFAULT_BATCH: u32 = 8;

/// Longest prefix of an unknown name kept in [`NameError::Unknown`].
pub const NAME_LIMIT: usize = 32;

const FIXED_FORM: &str =
    "fixed:CPU,GPU,BATCH (CPU and GPU level indices, BATCH a batch size) or fixed:max";
const DVFS_FORM: &str = "dvfs or dvfs:BATCH (BATCH a batch size)";

/// Why a name does not give an optimizer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NameError {
    /// Not one of [`NAMES`] (the name, cut to [`NAME_LIMIT`] bytes).
    Unknown(String<NAME_LIMIT>),
    /// A known prefix with unusable arguments; holds the expected form.
    Malformed(&'static str),
    /// `fixed:CPU,GPU,BATCH` on a board without this knob.
    MissingKnob(Knob),
    /// A level index or batch size that the board does not have.
    Config(ConfigError),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Unknown(name) => {
                write!(f, "unknown optimizer `{name}` (expected one of: ")?;
                for (i, n) in NAMES.iter().enumerate() {
                    let sep = if i + 1 < NAMES.len() { ", " } else { ")" };
                    write!(f, "{n}{sep}")?;
                }
                Ok(())
            }
            NameError::Malformed(form) => write!(f, "malformed optimizer, expected {form}"),
            NameError::MissingKnob(knob) => write!(
                f,
                "fixed:CPU,GPU,BATCH needs a {} knob, and this board has none",
                knob.name()
            ),
            NameError::Config(e) => write!(f, "fixed config: {e}"),
        }
    }
}

impl core::error::Error for NameError {}

/// Any optimizer of this crate, chosen at run time; delegates every call.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// Without a heap the large variant (the Bayesian model's fixed matrices) cannot be
// boxed; the enum is built once and lives in the controller.
#[allow(clippy::large_enum_variant)]
pub enum AnyOptimizer {
    /// `fixed:...`
    Fixed(Fixed),
    /// `ecogd`, `ecogd:paper`
    EcoGd(EcoGd),
    /// `grid`
    Grid(Grid),
    /// `linear`, `linear:forever`
    Linear(Linear),
    /// `dvfs`, `dvfs:BATCH`
    Dvfs(Dvfs),
    /// `mab`
    Mab(Mab),
    /// `mab-joint`
    MabJoint(MabJoint),
    /// `bayes`
    Bayes(Bayes),
    /// `random`
    Random(RandomSearch),
}

macro_rules! delegate {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            AnyOptimizer::Fixed($o) => $e,
            AnyOptimizer::EcoGd($o) => $e,
            AnyOptimizer::Grid($o) => $e,
            AnyOptimizer::Linear($o) => $e,
            AnyOptimizer::Dvfs($o) => $e,
            AnyOptimizer::Mab($o) => $e,
            AnyOptimizer::MabJoint($o) => $e,
            AnyOptimizer::Bayes($o) => $e,
            AnyOptimizer::Random($o) => $e,
        }
    };
}

impl Optimizer for AnyOptimizer {
    fn name(&self) -> &'static str {
        delegate!(self, o => o.name())
    }

    fn start(&mut self, space: &Space) -> Config {
        delegate!(self, o => o.start(space))
    }

    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        delegate!(self, o => o.step(space, report))
    }

    fn step_under(&mut self, space: &Space, report: &WindowReport, load: &Load<'_>) -> Config {
        delegate!(self, o => o.step_under(space, report, load))
    }

    fn governed(&self, knob: Knob) -> bool {
        delegate!(self, o => o.governed(knob))
    }

    fn ceiling(&self) -> Option<f64> {
        delegate!(self, o => o.ceiling())
    }
}

/// The optimizer called `name` (one of [`NAMES`]) for `space`, its random choices
/// fixed by `seed`, every parameter at its default.
///
/// ```
/// use ecoedge_core::optimizer::{by_name, NameError, Optimizer};
/// use ecoedge_core::space::{Dimension, Knob, Space};
///
/// let cpu = Dimension::new(Knob::Cpu, &[115_200, 1_907_200]).unwrap();
/// let gpu = Dimension::new(Knob::Gpu, &[114_750_000, 1_109_250_000]).unwrap();
/// let space = Space::new(&[cpu, gpu, Dimension::batch(16).unwrap()]).unwrap();
/// let mut ecogd = by_name("ecogd", &space, 7).unwrap();
/// assert_eq!(ecogd.start(&space), space.max_config());
/// let mut fixed = by_name("fixed:0,1,8", &space, 0).unwrap();
/// assert_eq!(fixed.start(&space).indices(), [0, 1, 7, 0]);
/// assert!(matches!(by_name("sgd", &space, 0), Err(NameError::Unknown(_))));
/// ```
pub fn by_name(name: &str, space: &Space, seed: u64) -> Result<AnyOptimizer, NameError> {
    let optimizer = match name {
        "ecogd" => AnyOptimizer::EcoGd(EcoGd::new(EcoGdSettings::default(), seed)),
        "ecogd:paper" => AnyOptimizer::EcoGd(EcoGd::new(EcoGdSettings::paper(), seed)),
        "grid" => AnyOptimizer::Grid(Grid::new()),
        "linear" => AnyOptimizer::Linear(Linear::new(Repeat::OnePass)),
        "linear:forever" => AnyOptimizer::Linear(Linear::new(Repeat::Forever)),
        "dvfs" => AnyOptimizer::Dvfs(Dvfs::new(DVFS_DEFAULT_BATCH)),
        "mab" => AnyOptimizer::Mab(Mab::new(MabSettings::default(), seed)),
        "mab-joint" => AnyOptimizer::MabJoint(MabJoint::new(MabSettings::default(), seed)),
        "bayes" => AnyOptimizer::Bayes(Bayes::new(BayesSettings::default(), seed)),
        "random" => AnyOptimizer::Random(RandomSearch::new(seed)),
        "fixed:max" => AnyOptimizer::Fixed(Fixed::max()),
        _ => {
            if let Some(spec) = name.strip_prefix("fixed:") {
                AnyOptimizer::Fixed(Fixed::new(fixed_config(spec, space)?))
            } else if let Some(batch) = name.strip_prefix("dvfs:") {
                let batch: u32 = batch.parse().map_err(|_| NameError::Malformed(DVFS_FORM))?;
                if let Some(dim) = space.position(Knob::Batch) {
                    let known = space.dims().get(dim).and_then(|d| d.index_of(batch));
                    if known.is_none() {
                        return Err(NameError::Config(ConfigError::UnknownLevel {
                            knob: Knob::Batch,
                            value: batch,
                        }));
                    }
                }
                AnyOptimizer::Dvfs(Dvfs::new(batch))
            } else {
                let mut cut = String::new();
                for ch in name.chars() {
                    if cut.push(ch).is_err() {
                        break;
                    }
                }
                return Err(NameError::Unknown(cut));
            }
        }
    };
    Ok(optimizer)
}

/// Parses `CPU,GPU,BATCH` against the board's levels (not the search limits).
/// Dimensions other than CPU, GPU and batch stay at their maximum.
fn fixed_config(spec: &str, space: &Space) -> Result<Config, NameError> {
    let mut parts = spec.split(',').map(str::trim);
    let mut number = || -> Result<usize, NameError> {
        parts
            .next()
            .and_then(|p| p.parse::<usize>().ok())
            .ok_or(NameError::Malformed(FIXED_FORM))
    };
    let (cpu, gpu, batch) = (number()?, number()?, number()?);
    if parts.next().is_some() {
        return Err(NameError::Malformed(FIXED_FORM));
    }
    let mut config = space.max_config();
    for (knob, index) in [(Knob::Cpu, cpu), (Knob::Gpu, gpu)] {
        let dim = space.position(knob).ok_or(NameError::MissingKnob(knob))?;
        let levels = space.dims().get(dim).map_or(0, |d| d.len());
        if index >= levels {
            return Err(NameError::Config(ConfigError::OutOfRange {
                knob,
                index,
                levels,
            }));
        }
        config = config.with(dim, index);
    }
    let dim = space
        .position(Knob::Batch)
        .ok_or(NameError::MissingKnob(Knob::Batch))?;
    let value = u32::try_from(batch).unwrap_or(u32::MAX);
    let index = space
        .dims()
        .get(dim)
        .and_then(|d| d.index_of(value))
        .ok_or(NameError::Config(ConfigError::UnknownLevel {
            knob: Knob::Batch,
            value,
        }))?;
    Ok(config.with(dim, index))
}
