//! The cost EcoEdge minimises: `alpha * E/E0 + (1 - alpha) * L/L0`.
//!
//! `E` is mean energy per request and `L` mean latency per request (arrival to
//! completion, queueing included) of a measurement window; `E0` and `L0` are the
//! same figures with every knob at its maximum (the [`Baseline`]). Normalising by the
//! baseline makes the two terms commensurable and the cost of the maximum config 1.

use core::fmt;

/// Why a cost setting is unusable.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CostError {
    /// `alpha` must lie in `[0, 1]`.
    AlphaOutOfRange(f64),
    /// A baseline figure is zero, negative or not finite.
    BadBaseline {
        /// Baseline energy per request, joules.
        energy_j: f64,
        /// Baseline latency per request, seconds.
        latency_s: f64,
    },
}

impl fmt::Display for CostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CostError::AlphaOutOfRange(a) => write!(f, "alpha {a} is outside [0, 1]"),
            CostError::BadBaseline {
                energy_j,
                latency_s,
            } => write!(
                f,
                "baseline E0 = {energy_j} J, L0 = {latency_s} s: both must be positive and finite"
            ),
        }
    }
}

impl core::error::Error for CostError {}

/// Which energy a window charges to its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EnergyScope {
    /// Everything the meter saw, idle time between batches included (default:
    /// idle power at pinned clocks is real energy the config is responsible for).
    #[default]
    Total,
    /// Only energy while batches run, as the original implementation measured.
    Active,
}

impl EnergyScope {
    /// Name used in reports (`"total"` or `"active"`).
    pub const fn name(self) -> &'static str {
        match self {
            EnergyScope::Total => "total",
            EnergyScope::Active => "active",
        }
    }
}

/// Reference energy and latency per request, measured at the maximum config.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Baseline {
    energy_j: f64,
    latency_s: f64,
}

impl Baseline {
    /// A baseline of `energy_j` joules and `latency_s` seconds per request.
    pub fn new(energy_j: f64, latency_s: f64) -> Result<Self, CostError> {
        let ok = |x: f64| x.is_finite() && x > 0.0;
        if ok(energy_j) && ok(latency_s) {
            Ok(Baseline {
                energy_j,
                latency_s,
            })
        } else {
            Err(CostError::BadBaseline {
                energy_j,
                latency_s,
            })
        }
    }

    /// E0, joules per request.
    pub fn energy_j(&self) -> f64 {
        self.energy_j
    }

    /// L0, seconds per request.
    pub fn latency_s(&self) -> f64 {
        self.latency_s
    }
}

/// The energy/latency trade-off weight.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Alpha(f64);

impl Default for Alpha {
    /// 0.5, the paper's setting.
    fn default() -> Self {
        Alpha(0.5)
    }
}

impl Alpha {
    /// A weight in `[0, 1]`: 1 is energy only, 0 latency only.
    pub fn new(alpha: f64) -> Result<Self, CostError> {
        if (0.0..=1.0).contains(&alpha) {
            Ok(Alpha(alpha))
        } else {
            Err(CostError::AlphaOutOfRange(alpha))
        }
    }

    /// The weight.
    pub fn get(self) -> f64 {
        self.0
    }

    /// `alpha * e/E0 + (1 - alpha) * l/L0`.
    pub fn cost(self, baseline: &Baseline, energy_j: f64, latency_s: f64) -> f64 {
        self.0 * energy_j / baseline.energy_j + (1.0 - self.0) * latency_s / baseline.latency_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_arithmetic() {
        let b = Baseline::new(2.0, 0.1).unwrap();
        let half = Alpha::default();
        assert_eq!(half.cost(&b, 2.0, 0.1), 1.0);
        assert!((half.cost(&b, 1.0, 0.2) - 1.25).abs() < 1e-12);
        assert_eq!(Alpha::new(1.0).unwrap().cost(&b, 1.0, 99.0), 0.5);
        assert_eq!(Alpha::new(0.0).unwrap().cost(&b, 99.0, 0.05), 0.5);
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        assert_eq!(Alpha::new(1.5), Err(CostError::AlphaOutOfRange(1.5)));
        assert!(Alpha::new(f64::NAN).is_err());
        assert!(Baseline::new(0.0, 1.0).is_err());
        assert!(Baseline::new(1.0, f64::NAN).is_err());
        assert!(Baseline::new(-1.0, 1.0).is_err());
        assert!(Baseline::new(f64::INFINITY, 1.0).is_err());
    }
}
