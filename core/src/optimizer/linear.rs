//! `linear`: the paper's one-dimension-at-a-time baseline.
//!
//! Sweeps one dimension at a time (batch, then CPU, then GPU, then any other knob
//! in space order), measuring every level inside the limits from the lowest up with
//! the other knobs at the current base; at the end of a sweep the cheapest config
//! of that line becomes the base. The paper keeps sweeping forever
//! ([`Repeat::Forever`], the default); the original code stops after one sweep of
//! every dimension ([`Repeat::OnePass`]) and keeps the base.

use super::Optimizer;
use crate::space::{Config, Knob, MAX_DIMS, Space};
use crate::window::WindowReport;

/// Whether linear search keeps sweeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Repeat {
    /// Sweep the dimensions round-robin forever (the paper's baseline).
    #[default]
    Forever,
    /// Stop after one sweep of every dimension (three on CPU-GPU-batch: the
    /// original code) and stay at the best config found.
    OnePass,
}

/// The linear-search baseline; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Linear {
    repeat: Repeat,
    /// Dimension indices in sweep order; the first `dims` are used.
    order: [u8; MAX_DIMS],
    dims: u8,
    sweeps: u32,
    base: Config,
    level: u8,
    line_best: Option<(Config, f64)>,
}

impl Linear {
    /// The first config of the line being swept: the base with the swept
    /// dimension at its lower limit (the base itself once every sweep is done).
    fn start_line(&mut self, space: &Space) -> Config {
        match (
            self.sweeping(),
            self.sweeping().and_then(|d| space.dims().get(d)),
        ) {
            (Some(dim), Some(d)) => {
                self.level = d.lower() as u8;
                self.base.with(dim, d.lower())
            }
            _ => self.base,
        }
    }

    /// Linear search that repeats as `repeat` says.
    pub fn new(repeat: Repeat) -> Self {
        Linear {
            repeat,
            order: [0; MAX_DIMS],
            dims: 0,
            sweeps: 0,
            base: Config::default(),
            level: 0,
            line_best: None,
        }
    }

    /// Sweeps completed so far.
    pub fn sweeps(&self) -> u32 {
        self.sweeps
    }

    /// The config the current sweep varies one knob of (the best found so far).
    pub fn base(&self) -> Config {
        self.base
    }

    /// True when a [`Repeat::OnePass`] search has finished and stays put.
    pub fn done(&self) -> bool {
        self.repeat == Repeat::OnePass && self.sweeps >= u32::from(self.dims)
    }

    /// The dimension swept now.
    pub fn sweeping(&self) -> Option<usize> {
        if self.dims == 0 {
            return None;
        }
        let i = (self.sweeps % u32::from(self.dims)) as usize;
        self.order.get(i).map(|&d| d as usize)
    }
}

impl Default for Linear {
    fn default() -> Self {
        Linear::new(Repeat::default())
    }
}

impl Optimizer for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn start(&mut self, space: &Space) -> Config {
        *self = Linear::new(self.repeat);
        let mut n = 0;
        for knob in [Knob::Batch, Knob::Cpu, Knob::Gpu] {
            if let Some(dim) = space.position(knob) {
                self.order[n] = dim as u8;
                n += 1;
            }
        }
        for dim in 0..space.len() {
            if !self.order[..n].contains(&(dim as u8)) && n < MAX_DIMS {
                self.order[n] = dim as u8;
                n += 1;
            }
        }
        self.dims = n as u8;
        self.base = space.max_config();
        self.start_line(space)
    }

    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        let cost = report.cost.mean;
        if self.done() {
            return self.base;
        }
        if cost.is_finite() && self.line_best.is_none_or(|(_, b)| cost < b) {
            self.line_best = Some((report.config, cost));
        }
        let (Some(dim), Some(d)) = (
            self.sweeping(),
            self.sweeping().and_then(|d| space.dims().get(d)),
        ) else {
            return self.base;
        };
        if (self.level as usize) < d.max_index() {
            self.level += 1;
            return self.base.with(dim, self.level as usize);
        }
        // The line is done: its best becomes the base, the next sweep starts.
        if let Some((best, _)) = self.line_best.take() {
            self.base = best;
        }
        self.sweeps = self.sweeps.saturating_add(1);
        if self.done() {
            return self.base;
        }
        self.start_line(space)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Dimension;

    #[test]
    fn sweep_order_is_batch_cpu_gpu_then_the_rest() {
        let mem = Dimension::new(Knob::Memory, &[1, 2]).unwrap();
        let gpu = Dimension::new(Knob::Gpu, &[1, 2]).unwrap();
        let cpu = Dimension::new(Knob::Cpu, &[1, 2]).unwrap();
        let space = Space::new(&[mem, gpu, cpu, Dimension::batch(2).unwrap()]).unwrap();
        let mut linear = Linear::new(Repeat::OnePass);
        let _ = linear.start(&space);
        assert_eq!(&linear.order[..usize::from(linear.dims)], &[3, 2, 1, 0]);
        assert_eq!(linear.sweeping(), Some(3));
        let empty = Space::default();
        assert_eq!(linear.start(&empty), Config::default());
        assert_eq!(linear.sweeping(), None);
    }
}
