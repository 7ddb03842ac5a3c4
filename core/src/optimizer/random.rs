//! `random`: a uniformly random config inside the limits every window.
//!
//! The floor every search must beat at the same budget, and a reference in tests.

use super::{Optimizer, Prng, random_config};
use crate::space::{Config, Space};
use crate::window::WindowReport;

/// Random search; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RandomSearch {
    rng: Prng,
}

impl RandomSearch {
    /// Random search whose choices are fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        RandomSearch {
            rng: Prng::new(seed),
        }
    }
}

impl Optimizer for RandomSearch {
    fn name(&self) -> &'static str {
        "random"
    }

    fn start(&mut self, space: &Space) -> Config {
        random_config(space, &mut self.rng)
    }

    fn step(&mut self, space: &Space, _report: &WindowReport) -> Config {
        random_config(space, &mut self.rng)
    }
}
