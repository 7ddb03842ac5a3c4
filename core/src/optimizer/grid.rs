//! `grid`: the paper's exhaustive baseline on a coarse grid.
//!
//! Measures every other level of every dimension, skipping the minimum (indices
//! `lower+1, lower+3, ...`: 12 x 7 x 8 = 672 configs on the Xavier NX), once each,
//! then keeps the cheapest forever. A dimension with a single level inside its
//! limits uses that level.

use super::Optimizer;
use crate::space::{Config, MAX_DIMS, Space};
use crate::window::WindowReport;

/// The grid-search baseline; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Grid {
    /// Odometer over the grid: the position, per dimension, in its grid levels.
    position: [u8; MAX_DIMS],
    /// True once every grid config was measured.
    done: bool,
    best: Option<(Config, f64)>,
    measured: u32,
}

/// The `n`-th grid level of dimension `dim`, if it exists.
fn grid_level(space: &Space, dim: usize, n: usize) -> Option<usize> {
    let d = space.dims().get(dim)?;
    if d.max_index() == d.lower() {
        return (n == 0).then_some(d.lower());
    }
    let index = d.lower() + 1 + 2 * n;
    (index <= d.max_index()).then_some(index)
}

impl Grid {
    /// A grid search that has measured nothing yet.
    pub fn new() -> Self {
        Grid::default()
    }

    /// The cheapest config measured so far, and its cost.
    pub fn best(&self) -> Option<(Config, f64)> {
        self.best
    }

    /// True once the whole grid was measured: from then on the best config stays.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Grid configs measured so far.
    pub fn measured(&self) -> u32 {
        self.measured
    }

    /// Number of configs the grid holds in `space`.
    pub fn grid_size(space: &Space) -> usize {
        (0..space.len())
            .map(|dim| {
                (0..)
                    .take_while(|&n| grid_level(space, dim, n).is_some())
                    .count()
            })
            .product()
    }

    fn current(&self, space: &Space) -> Option<Config> {
        let mut c = Config::default();
        for dim in 0..space.len() {
            let n = *self.position.get(dim)? as usize;
            c = c.with(dim, grid_level(space, dim, n)?);
        }
        Some(c)
    }

    /// Moves the odometer on; false when the grid is exhausted.
    fn advance(&mut self, space: &Space) -> bool {
        for dim in (0..space.len()).rev() {
            let Some(p) = self.position.get_mut(dim) else {
                continue;
            };
            if grid_level(space, dim, *p as usize + 1).is_some() {
                *p += 1;
                return true;
            }
            *p = 0;
        }
        false
    }

    fn best_or_max(&self, space: &Space) -> Config {
        self.best.map_or_else(|| space.max_config(), |(c, _)| c)
    }
}

impl Optimizer for Grid {
    fn name(&self) -> &'static str {
        "grid"
    }

    fn start(&mut self, space: &Space) -> Config {
        *self = Grid::default();
        match self.current(space) {
            Some(c) => c,
            None => {
                self.done = true;
                space.max_config()
            }
        }
    }

    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        let cost = report.cost.mean;
        if cost.is_finite() && self.best.is_none_or(|(_, b)| cost < b) {
            self.best = Some((report.config, cost));
        }
        if self.done {
            return self.best_or_max(space);
        }
        self.measured = self.measured.saturating_add(1);
        if self.advance(space)
            && let Some(c) = self.current(space)
        {
            return c;
        }
        self.done = true;
        self.best_or_max(space)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Dimension, Knob};

    #[test]
    fn grid_levels_skip_the_minimum_and_every_other_level() {
        let cpu = Dimension::new(Knob::Cpu, &[1, 2, 3, 4, 5, 6])
            .unwrap()
            .with_lower_limit(1)
            .unwrap();
        let gpu = Dimension::new(Knob::Gpu, &[1, 2])
            .unwrap()
            .with_lower_limit(1)
            .unwrap();
        let space = Space::new(&[cpu, gpu, Dimension::batch(16).unwrap()]).unwrap();
        assert_eq!(grid_level(&space, 0, 0), Some(2));
        assert_eq!(grid_level(&space, 0, 1), Some(4));
        assert_eq!(grid_level(&space, 0, 2), None);
        assert_eq!(grid_level(&space, 1, 0), Some(1), "a single level is used");
        assert_eq!(grid_level(&space, 1, 1), None);
        assert_eq!(grid_level(&space, 3, 0), None);
        assert_eq!(Grid::grid_size(&space), 2 * 8);
    }
}
