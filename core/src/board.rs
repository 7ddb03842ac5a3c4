//! What a board provides: an energy meter and frequency knobs.
//!
//! A port to a new board implements these traits and nothing else from EcoEdge;
//! they need only `ecoedge-core` (and, for a sensor on a bus, embedded-hal). The
//! Jetson support, the host board and the simulator implement them too. The
//! controller never calls them: the caller reads the meter and applies configs, so
//! the same controller runs on a wall clock or a virtual one.

use crate::space::{Dimension, Knob, SpaceError};
use crate::time::Instant;

/// Whether energy figures come from a sensor or a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EnergySource {
    /// Read from a power or energy sensor.
    #[default]
    Measured,
    /// Computed from a model (CPU time and a per-core power, a device model).
    Estimated,
}

impl EnergySource {
    /// Name used in reports (`"measured"` or `"estimated"`).
    pub const fn name(self) -> &'static str {
        match self {
            EnergySource::Measured => "measured",
            EnergySource::Estimated => "estimated",
        }
    }
}

/// A cumulative energy meter.
pub trait EnergyMeter {
    /// Why a reading failed (sensor gone, bus error, ...).
    type Error;

    /// Energy in joules consumed from an origin the meter chooses up to `now`,
    /// on the caller's clock. Never decreases. Meters that sample power integrate
    /// it and attribute energy up to `now` exactly (interpolating between samples).
    fn energy_j(&mut self, now: Instant) -> Result<f64, Self::Error>;

    /// Whether the figures are measured or estimated.
    fn source(&self) -> EnergySource {
        EnergySource::Measured
    }
}

/// One frequency-like knob of a board (a CPU cluster set, a GPU, a memory clock).
pub trait FrequencyKnob {
    /// Why an operation failed (permission denied, value refused, ...).
    type Error;

    /// What the knob controls, and so the unit of its levels.
    fn knob(&self) -> Knob;

    /// The levels the board offers, ascending, read from the board.
    fn levels(&self) -> &[u32];

    /// Pins the knob at `levels()[index]` (minimum = maximum), taking it away
    /// from any governor. Either the level is set or an error says why not.
    fn set_level(&mut self, index: usize) -> Result<(), Self::Error>;

    /// The frequency the board reports now, to verify a write took effect.
    fn read_back(&mut self) -> Result<u32, Self::Error>;

    /// Hands the knob to the operating system's governor over its full range
    /// (the `dvfs` baseline).
    fn hand_over(&mut self) -> Result<(), Self::Error>;

    /// The knob as a search dimension with no lower limit.
    fn dimension(&self) -> Result<Dimension, SpaceError> {
        Dimension::new(self.knob(), self.levels())
    }
}
