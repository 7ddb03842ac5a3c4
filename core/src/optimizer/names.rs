//! Optimizers by name: what the command line and the reports call them.
//!
//! [`by_name`] turns a name from [`NAMES`], with any of the [`ADDITIONS`], into
//! an [`AnyOptimizer`]: a [`BaseOptimizer`] (an enum that implements
//! [`Optimizer`] by delegating to the optimizer inside) in an [`Assisted`]
//! wrapper that gives it EcoGD's replay and abandonment when asked. No `dyn`,
//! no heap, and the controller stays generic over one concrete type.

use core::fmt;

use heapless::String;

use super::assist::{Assist, Assisted};
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

/// What may follow a name, each after a `+`: EcoGD's additions. `replay`
/// and `abandon` suit every optimizer but `fixed` (EcoGD's own versions for
/// `ecogd`, the [`Assisted`] wrapper for the others); `pattern` is EcoGD's
/// alone, and so are `scan` and `probe` (probing jumps). `ecogd` is
/// `ecogd:paper+replay+abandon+pattern+scan+probe`.
pub const ADDITIONS: [&str; 5] = ["replay", "abandon", "pattern", "scan", "probe"];

/// Batch size of plain `dvfs` (the paper ran 8 and 16).
pub const DVFS_DEFAULT_BATCH: u32 = 8;

/// Longest prefix of an unknown name kept in [`NameError::Unknown`].
pub const NAME_LIMIT: usize = 32;

const FIXED_FORM: &str =
    "fixed:CPU,GPU,BATCH (CPU and GPU level indices, BATCH a batch size) or fixed:max";
const DVFS_FORM: &str = "dvfs or dvfs:BATCH (BATCH a batch size)";
const ADDITION_FORM: &str = "NAME+ADDITION..., ADDITION one of replay, abandon (any optimizer but fixed), pattern, scan and probe (ecogd only)";

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
                f.write_str(", each optionally with +replay, +abandon")
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

/// Any optimizer of this crate by name, additions included: what [`by_name`]
/// builds.
pub type AnyOptimizer = Assisted<BaseOptimizer>;

impl From<Fixed> for AnyOptimizer {
    fn from(fixed: Fixed) -> Self {
        Assisted::new(BaseOptimizer::Fixed(fixed), Assist::default())
    }
}

/// Any optimizer of this crate, chosen at run time; delegates every call.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// Without a heap the large variant (the Bayesian model's fixed matrices) cannot be
// boxed; the enum is built once and lives in the controller.
#[allow(clippy::large_enum_variant)]
pub enum BaseOptimizer {
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
            BaseOptimizer::Fixed($o) => $e,
            BaseOptimizer::EcoGd($o) => $e,
            BaseOptimizer::Grid($o) => $e,
            BaseOptimizer::Linear($o) => $e,
            BaseOptimizer::Dvfs($o) => $e,
            BaseOptimizer::Mab($o) => $e,
            BaseOptimizer::MabJoint($o) => $e,
            BaseOptimizer::Bayes($o) => $e,
            BaseOptimizer::Random($o) => $e,
        }
    };
}

impl Optimizer for BaseOptimizer {
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

/// The optimizer called `name` (one of [`NAMES`], with any [`ADDITIONS`]) for
/// `space`, its random choices fixed by `seed`, every parameter at its default.
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
/// let grid = by_name("grid+replay+abandon", &space, 0).unwrap();
/// assert!(grid.assist().replay && grid.assist().abandon);
/// assert!(by_name("grid+pattern", &space, 0).is_err());
/// ```
pub fn by_name(name: &str, space: &Space, seed: u64) -> Result<AnyOptimizer, NameError> {
    let mut parts = name.split('+');
    let base = parts.next().unwrap_or_default();
    let (mut assist, mut own) = (Assist::default(), EcoGdSettings::paper());
    for addition in parts {
        match addition {
            "replay" => assist.replay = true,
            "abandon" => assist.abandon = true,
            "pattern" => own.pattern = true,
            "scan" => own.scan = true,
            "probe" => own.probe_jumps = true,
            _ => return Err(NameError::Malformed(ADDITION_FORM)),
        }
    }
    let optimizer = base_by_name(base, space, seed)?;
    match optimizer {
        BaseOptimizer::EcoGd(gd) => {
            let mut settings = *gd.settings();
            settings.replay |= assist.replay;
            settings.pattern |= own.pattern;
            settings.scan |= own.scan;
            settings.probe_jumps |= own.probe_jumps;
            if assist.abandon && settings.abandon_above.is_none() {
                settings.abandon_above = EcoGdSettings::default().abandon_above;
            }
            let eco = BaseOptimizer::EcoGd(EcoGd::new(settings, seed));
            Ok(Assisted::new(eco, Assist::default()))
        }
        BaseOptimizer::Fixed(_) if !assist.is_none() => Err(NameError::Malformed(ADDITION_FORM)),
        _ if own != EcoGdSettings::paper() => Err(NameError::Malformed(ADDITION_FORM)),
        other => Ok(Assisted::new(other, assist)),
    }
}

/// The optimizer of a name without additions.
fn base_by_name(name: &str, space: &Space, seed: u64) -> Result<BaseOptimizer, NameError> {
    let optimizer = match name {
        "ecogd" => BaseOptimizer::EcoGd(EcoGd::new(EcoGdSettings::default(), seed)),
        "ecogd:paper" => BaseOptimizer::EcoGd(EcoGd::new(EcoGdSettings::paper(), seed)),
        "grid" => BaseOptimizer::Grid(Grid::new()),
        "linear" => BaseOptimizer::Linear(Linear::new(Repeat::OnePass)),
        "linear:forever" => BaseOptimizer::Linear(Linear::new(Repeat::Forever)),
        "dvfs" => BaseOptimizer::Dvfs(Dvfs::new(DVFS_DEFAULT_BATCH)),
        "mab" => BaseOptimizer::Mab(Mab::new(MabSettings::default(), seed)),
        "mab-joint" => BaseOptimizer::MabJoint(MabJoint::new(MabSettings::default(), seed)),
        "bayes" => BaseOptimizer::Bayes(Bayes::new(BayesSettings::default(), seed)),
        "random" => BaseOptimizer::Random(RandomSearch::new(seed)),
        "fixed:max" => BaseOptimizer::Fixed(Fixed::max()),
        _ => {
            if let Some(spec) = name.strip_prefix("fixed:") {
                BaseOptimizer::Fixed(Fixed::new(fixed_config(spec, space)?))
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
                BaseOptimizer::Dvfs(Dvfs::new(batch))
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
