//! The knob space: which knobs a board offers, their levels, and a point in it.
//!
//! A [`Space`] is a small fixed array of [`Dimension`]s (at most [`MAX_DIMS`]), each
//! an ascending list of levels read from the board (at most [`MAX_LEVELS`]) with a
//! lower search limit below which no optimizer goes. A [`Config`] is one level index
//! per dimension. Nothing here assumes exactly CPU, GPU and batch: a memory clock or
//! an online-core count is just another dimension.

use core::fmt;
use heapless::Vec;

/// Most dimensions a space can have (CPU, GPU, batch and one more, such as EMC).
pub const MAX_DIMS: usize = 4;
/// Most levels one dimension can have (Xavier NX: 25 CPU levels; Orin: 29).
pub const MAX_LEVELS: usize = 64;

/// What a dimension controls, and so the unit of its levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Knob {
    /// CPU clock, levels in kHz (the unit of Linux cpufreq).
    Cpu,
    /// GPU clock, levels in Hz (the unit of Linux devfreq).
    Gpu,
    /// Requests per inference batch.
    Batch,
    /// Memory (EMC) clock, levels in Hz.
    Memory,
    /// Number of online CPU cores.
    Cores,
}

impl Knob {
    /// Lower-case name, as used in logs and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Knob::Cpu => "cpu",
            Knob::Gpu => "gpu",
            Knob::Batch => "batch",
            Knob::Memory => "memory",
            Knob::Cores => "cores",
        }
    }
}

/// Why a dimension or a space could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SpaceError {
    /// A dimension has no levels.
    NoLevels(Knob),
    /// A dimension has more than [`MAX_LEVELS`] levels.
    TooManyLevels(Knob),
    /// Levels must be strictly ascending.
    NotAscending(Knob),
    /// A batch size of zero is meaningless.
    ZeroBatch,
    /// The lower limit is not one of the dimension's level indices.
    LimitOutOfRange(Knob),
    /// The space already has [`MAX_DIMS`] dimensions.
    TooManyDims,
    /// Two dimensions control the same knob.
    DuplicateKnob(Knob),
}

impl fmt::Display for SpaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpaceError::NoLevels(k) => write!(f, "knob {} has no levels", k.name()),
            SpaceError::TooManyLevels(k) => {
                write!(f, "knob {} has more than {MAX_LEVELS} levels", k.name())
            }
            SpaceError::NotAscending(k) => {
                write!(f, "levels of knob {} are not strictly ascending", k.name())
            }
            SpaceError::ZeroBatch => f.write_str("batch size 0 is not allowed"),
            SpaceError::LimitOutOfRange(k) => {
                write!(f, "lower limit of knob {} is past its last level", k.name())
            }
            SpaceError::TooManyDims => write!(f, "a space has at most {MAX_DIMS} dimensions"),
            SpaceError::DuplicateKnob(k) => write!(f, "knob {} appears twice", k.name()),
        }
    }
}

impl core::error::Error for SpaceError {}

/// Why a config does not fit a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// The config gives a different number of indices than the space has dimensions.
    WrongDims {
        /// Indices given.
        given: usize,
        /// Dimensions of the space.
        expected: usize,
    },
    /// An index is past the last level of its dimension.
    OutOfRange {
        /// The knob of that dimension.
        knob: Knob,
        /// The index given.
        index: usize,
        /// How many levels the dimension has.
        levels: usize,
    },
    /// A level value is not one of the dimension's levels.
    UnknownLevel {
        /// The knob of that dimension.
        knob: Knob,
        /// The value given.
        value: u32,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::WrongDims { given, expected } => {
                write!(
                    f,
                    "config has {given} indices, the space has {expected} dimensions"
                )
            }
            ConfigError::OutOfRange {
                knob,
                index,
                levels,
            } => write!(
                f,
                "{} level index {index} is outside 0..{levels}",
                knob.name()
            ),
            ConfigError::UnknownLevel { knob, value } => {
                write!(f, "{value} is not a {} level of this board", knob.name())
            }
        }
    }
}

impl core::error::Error for ConfigError {}

/// One knob: its ascending levels and the lowest index a search may use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dimension {
    knob: Knob,
    levels: Vec<u32, MAX_LEVELS>,
    lower: u8,
}

impl Dimension {
    /// A dimension with the given strictly ascending levels and no lower limit.
    pub fn new(knob: Knob, levels: &[u32]) -> Result<Self, SpaceError> {
        if levels.is_empty() {
            return Err(SpaceError::NoLevels(knob));
        }
        if knob == Knob::Batch && levels[0] == 0 {
            return Err(SpaceError::ZeroBatch);
        }
        if levels.windows(2).any(|w| w[0] >= w[1]) {
            return Err(SpaceError::NotAscending(knob));
        }
        let levels = Vec::from_slice(levels).map_err(|_| SpaceError::TooManyLevels(knob))?;
        Ok(Dimension {
            knob,
            levels,
            lower: 0,
        })
    }

    /// Batch sizes `1..=max`.
    pub fn batch(max: u32) -> Result<Self, SpaceError> {
        if max == 0 {
            return Err(SpaceError::ZeroBatch);
        }
        if max as usize > MAX_LEVELS {
            return Err(SpaceError::TooManyLevels(Knob::Batch));
        }
        let mut levels = Vec::new();
        for b in 1..=max {
            // Cannot fail: max <= MAX_LEVELS was checked above.
            let _ = levels.push(b);
        }
        Ok(Dimension {
            knob: Knob::Batch,
            levels,
            lower: 0,
        })
    }

    /// The same dimension, searched only from level index `lower` up.
    pub fn with_lower_limit(mut self, lower: usize) -> Result<Self, SpaceError> {
        if lower >= self.levels.len() {
            return Err(SpaceError::LimitOutOfRange(self.knob));
        }
        self.lower = lower as u8;
        Ok(self)
    }

    /// What this dimension controls.
    pub fn knob(&self) -> Knob {
        self.knob
    }

    /// The levels, ascending.
    pub fn levels(&self) -> &[u32] {
        &self.levels
    }

    /// Number of levels.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// Always false: a dimension has at least one level.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Lowest index a search may use.
    pub fn lower(&self) -> usize {
        self.lower as usize
    }

    /// Highest index.
    pub fn max_index(&self) -> usize {
        self.levels.len() - 1
    }

    /// Index of the level equal to `value`.
    pub fn index_of(&self, value: u32) -> Option<usize> {
        self.levels.binary_search(&value).ok()
    }
}

/// One level index per dimension of a [`Space`]. Indices past the space's
/// dimensions are always zero, so equal configs compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    index: [u8; MAX_DIMS],
}

impl Config {
    /// The level index of dimension `dim` (zero past the space's dimensions).
    pub fn index(&self, dim: usize) -> usize {
        self.index.get(dim).copied().unwrap_or(0) as usize
    }

    /// All indices, including the zero padding past the space's dimensions.
    pub fn indices(&self) -> [u8; MAX_DIMS] {
        self.index
    }

    /// The same config with dimension `dim` at `index`. Validity against a space is
    /// the caller's business ([`Space::check`]); `dim` must be below [`MAX_DIMS`].
    #[must_use]
    pub fn with(mut self, dim: usize, index: usize) -> Config {
        self.index[dim] = index as u8;
        self
    }

    /// Sum of absolute index differences: how many single steps apart two configs are.
    pub fn distance(&self, other: &Config) -> usize {
        self.index
            .iter()
            .zip(other.index.iter())
            .map(|(a, b)| a.abs_diff(*b) as usize)
            .sum()
    }
}

/// The knob space of a board: up to [`MAX_DIMS`] dimensions, each knob at most once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Space {
    dims: Vec<Dimension, MAX_DIMS>,
}

impl Space {
    /// A space of the given dimensions, in that order.
    pub fn new(dims: &[Dimension]) -> Result<Self, SpaceError> {
        let mut space = Space { dims: Vec::new() };
        for d in dims {
            space.push(d.clone())?;
        }
        Ok(space)
    }

    /// Adds a dimension after the existing ones.
    pub fn push(&mut self, dim: Dimension) -> Result<(), SpaceError> {
        if self.position(dim.knob).is_some() {
            return Err(SpaceError::DuplicateKnob(dim.knob));
        }
        self.dims.push(dim).map_err(|_| SpaceError::TooManyDims)
    }

    /// The dimensions, in order.
    pub fn dims(&self) -> &[Dimension] {
        &self.dims
    }

    /// Number of dimensions.
    pub fn len(&self) -> usize {
        self.dims.len()
    }

    /// True when the space has no dimension (a board with no knob at all).
    pub fn is_empty(&self) -> bool {
        self.dims.is_empty()
    }

    /// Index of the dimension controlling `knob`.
    pub fn position(&self, knob: Knob) -> Option<usize> {
        self.dims.iter().position(|d| d.knob == knob)
    }

    /// Every knob at its highest level: the calibration config and the paper's start.
    pub fn max_config(&self) -> Config {
        let mut c = Config::default();
        for (i, d) in self.dims.iter().enumerate() {
            c.index[i] = d.max_index() as u8;
        }
        c
    }

    /// Every knob at its lower search limit.
    pub fn min_config(&self) -> Config {
        let mut c = Config::default();
        for (i, d) in self.dims.iter().enumerate() {
            c.index[i] = d.lower;
        }
        c
    }

    /// A config from one index per dimension, checked against the levels (not
    /// against the search limits: a fixed config may go below them).
    pub fn config(&self, indices: &[usize]) -> Result<Config, ConfigError> {
        if indices.len() != self.dims.len() {
            return Err(ConfigError::WrongDims {
                given: indices.len(),
                expected: self.dims.len(),
            });
        }
        let mut c = Config::default();
        for (i, (&index, d)) in indices.iter().zip(self.dims.iter()).enumerate() {
            if index >= d.len() {
                return Err(ConfigError::OutOfRange {
                    knob: d.knob,
                    index,
                    levels: d.len(),
                });
            }
            c.index[i] = index as u8;
        }
        Ok(c)
    }

    /// Checks that `config` names a level of every dimension and nothing beyond.
    pub fn check(&self, config: &Config) -> Result<(), ConfigError> {
        for (i, &index) in config.index.iter().enumerate() {
            match self.dims.get(i) {
                Some(d) if index as usize >= d.len() => {
                    return Err(ConfigError::OutOfRange {
                        knob: d.knob,
                        index: index as usize,
                        levels: d.len(),
                    });
                }
                None if index != 0 => {
                    return Err(ConfigError::WrongDims {
                        given: i + 1,
                        expected: self.dims.len(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// True when `config` is inside the search limits of every dimension.
    pub fn within_limits(&self, config: &Config) -> bool {
        self.check(config).is_ok()
            && self
                .dims
                .iter()
                .enumerate()
                .all(|(i, d)| config.index(i) >= d.lower())
    }

    /// `config` moved by `delta` levels along dimension `dim`, if that stays within
    /// the search limits.
    pub fn step(&self, config: &Config, dim: usize, delta: isize) -> Option<Config> {
        let d = self.dims.get(dim)?;
        let to = config.index(dim).checked_add_signed(delta)?;
        (to >= d.lower() && to <= d.max_index()).then(|| config.with(dim, to))
    }

    /// The level value of dimension `dim` in `config`.
    pub fn value(&self, config: &Config, dim: usize) -> Option<u32> {
        self.dims
            .get(dim)
            .and_then(|d| d.levels.get(config.index(dim)).copied())
    }

    /// The level value of `knob` in `config`, if the space has that knob.
    pub fn knob_value(&self, config: &Config, knob: Knob) -> Option<u32> {
        self.position(knob).and_then(|i| self.value(config, i))
    }

    /// Batch size of `config`: 1 when the space has no batch dimension.
    pub fn batch_size(&self, config: &Config) -> u32 {
        self.knob_value(config, Knob::Batch).unwrap_or(1)
    }

    /// Number of configs inside the search limits.
    pub fn size(&self) -> usize {
        self.dims.iter().map(|d| d.len() - d.lower()).product()
    }

    /// Every config inside the search limits, from [`Space::min_config`] to
    /// [`Space::max_config`], the last dimension varying fastest. No allocation.
    pub fn configs(&self) -> Configs<'_> {
        Configs {
            space: self,
            next: Some(self.min_config()),
        }
    }
}

/// The iterator of [`Space::configs`].
#[derive(Debug, Clone)]
pub struct Configs<'a> {
    space: &'a Space,
    next: Option<Config>,
}

impl Iterator for Configs<'_> {
    type Item = Config;

    fn next(&mut self) -> Option<Config> {
        let current = self.next?;
        self.next = None;
        for (dim, d) in self.space.dims().iter().enumerate().rev() {
            if current.index(dim) < d.max_index() {
                let mut c = current.with(dim, current.index(dim) + 1);
                for (after, a) in self.space.dims().iter().enumerate().skip(dim + 1) {
                    c = c.with(after, a.lower());
                }
                self.next = Some(c);
                break;
            }
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xavier() -> Space {
        let cpu = Dimension::new(Knob::Cpu, &[115_200, 192_000, 268_800]).unwrap();
        let gpu = Dimension::new(Knob::Gpu, &[114_750_000, 204_000_000]).unwrap();
        Space::new(&[cpu, gpu, Dimension::batch(16).unwrap()]).unwrap()
    }

    #[test]
    fn bad_dimensions_are_typed_errors() {
        assert_eq!(
            Dimension::new(Knob::Cpu, &[]),
            Err(SpaceError::NoLevels(Knob::Cpu))
        );
        assert_eq!(
            Dimension::new(Knob::Gpu, &[2, 2]),
            Err(SpaceError::NotAscending(Knob::Gpu))
        );
        assert_eq!(
            Dimension::new(Knob::Batch, &[0, 1]),
            Err(SpaceError::ZeroBatch)
        );
        assert_eq!(Dimension::batch(0), Err(SpaceError::ZeroBatch));
        assert_eq!(
            Dimension::batch(65),
            Err(SpaceError::TooManyLevels(Knob::Batch))
        );
        let many: [u32; 65] = core::array::from_fn(|i| i as u32 + 1);
        assert_eq!(
            Dimension::new(Knob::Cpu, &many),
            Err(SpaceError::TooManyLevels(Knob::Cpu))
        );
        assert_eq!(
            Dimension::batch(4).unwrap().with_lower_limit(4),
            Err(SpaceError::LimitOutOfRange(Knob::Batch))
        );
        let b = Dimension::batch(2).unwrap();
        assert_eq!(
            Space::new(&[b.clone(), b]),
            Err(SpaceError::DuplicateKnob(Knob::Batch))
        );
        let mut s = xavier();
        s.push(Dimension::new(Knob::Memory, &[1]).unwrap()).unwrap();
        assert_eq!(
            s.push(Dimension::new(Knob::Cores, &[1]).unwrap()),
            Err(SpaceError::TooManyDims)
        );
    }

    #[test]
    fn configs_are_checked_against_levels() {
        let s = xavier();
        assert_eq!(s.max_config().indices(), [2, 1, 15, 0]);
        assert_eq!(s.batch_size(&s.max_config()), 16);
        assert_eq!(
            s.config(&[3, 0, 0]),
            Err(ConfigError::OutOfRange {
                knob: Knob::Cpu,
                index: 3,
                levels: 3
            })
        );
        assert_eq!(
            s.config(&[0, 0]),
            Err(ConfigError::WrongDims {
                given: 2,
                expected: 3
            })
        );
        let c = s.config(&[1, 1, 7]).unwrap();
        assert_eq!(s.knob_value(&c, Knob::Gpu), Some(204_000_000));
        assert_eq!(s.batch_size(&c), 8);
        assert!(s.check(&Config::default().with(3, 1)).is_err());
        assert_eq!(s.size(), 3 * 2 * 16);
    }

    #[test]
    fn steps_respect_lower_limits() {
        let cpu = Dimension::new(Knob::Cpu, &[1, 2, 3])
            .unwrap()
            .with_lower_limit(1)
            .unwrap();
        let s = Space::new(&[
            cpu,
            Dimension::batch(4).unwrap().with_lower_limit(3).unwrap(),
        ])
        .unwrap();
        let c = s.config(&[1, 3]).unwrap();
        assert_eq!(s.step(&c, 0, -1), None);
        assert_eq!(s.step(&c, 0, 1), Some(s.config(&[2, 3]).unwrap()));
        assert_eq!(s.step(&c, 1, 1), None);
        assert_eq!(s.step(&c, 5, 1), None);
        assert_eq!(s.min_config(), c);
        assert!(!s.within_limits(&s.config(&[0, 3]).unwrap()));
        assert_eq!(s.size(), 2);
        assert_eq!(c.distance(&s.max_config()), 1);
    }

    #[test]
    fn a_space_without_batch_serves_one_at_a_time() {
        let s = Space::new(&[Dimension::new(Knob::Cpu, &[5]).unwrap()]).unwrap();
        assert_eq!(s.batch_size(&s.max_config()), 1);
    }
}
