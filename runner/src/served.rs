//! One served request: the unit that a run's figures, logs and record are
//! made of.

use ecoedge_core::time::{Duration, Instant};

/// One served request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Served {
    /// When it arrived.
    pub arrival: Instant,
    /// When its batch completed.
    pub done: Instant,
    /// Energy charged to it, joules.
    pub energy_j: f64,
    /// Window it completed in (calibration windows included).
    pub window: u32,
}

impl Served {
    /// Arrival to completion.
    pub fn latency(&self) -> Duration {
        self.done.saturating_since(self.arrival)
    }

    /// Arrival to completion, seconds.
    pub fn latency_s(&self) -> f64 {
        self.latency().as_secs_f64()
    }
}
