//! `linear`: the paper's one-dimension-at-a-time baseline.
//!
//! Sweeps one dimension at a time (batch, then CPU, then GPU, then any other knob
//! in space order) through a *line*: the configs that differ from the current
//! best (the *base*) in the swept dimension only. A line starts by measuring the
//! base, walks down from it level by level to the lower limit, then up from it to
//! the top level; the cheapest config of the line becomes the base of the next.
//!
//! A walk never goes on past a config that cannot keep up with the arrivals
//! ([`overloaded`]): its backlog grows without bound, and every level further in
//! that direction serves even fewer requests per second (lower clocks, smaller
//! batches). Such a config is measured once (it is how the search learns where
//! the edge is) but never becomes the base. So the first sweep from the maximum
//! config costs at most one overloaded window per dimension, not a walk from the
//! lowest level up through every config that builds a backlog.
//!
//! The original code sweeps every dimension once and then keeps its base
//! ([`Repeat::OnePass`], the default, `linear`); sweeping round-robin for ever is
//! [`Repeat::Forever`] (`linear:forever`). The paper's verdict: low overhead but
//! suboptimal (one knob at a time misses what two knobs moved together give).

use super::Optimizer;
use crate::space::{Config, Knob, MAX_DIMS, Space};
use crate::window::WindowReport;

/// Utilisation from which a config counts as unable to keep up: the arrivals
/// need the engine this fraction of the time or more. At 1.0 the queue of a
/// config is stable only by a knife edge, above it the backlog grows by the
/// excess for as long as the config runs. The literal limit; not tuned.
pub const OVERLOAD_UTILISATION: f64 = 1.0;

/// Whether linear search keeps sweeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Repeat {
    /// Stop after one sweep of every dimension (three on CPU-GPU-batch: the
    /// original code) and stay at the best config found (`linear`).
    #[default]
    OnePass,
    /// Sweep the dimensions round-robin for ever (`linear:forever`).
    Forever,
}

/// Where the current line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Phase {
    /// Measuring the base, the line's start.
    Base,
    /// Walking down from the base.
    Down,
    /// Walking up from the base.
    Up,
}

/// True when the window's config cannot keep up with the window's arrivals:
/// a full batch takes at least as long as the arrivals of a batch's worth of
/// requests ([`OVERLOAD_UTILISATION`]). Decided from the config's own service
/// figures ([`WindowReport::service`]), so a config draining a backlog left by
/// its predecessor is not blamed for it. `false` when the window reported no
/// batch or no arrival rate.
pub fn overloaded(space: &Space, report: &WindowReport) -> bool {
    let Some(service) = report.service else {
        return false;
    };
    let batch = space.batch_size(&report.config).max(1);
    let busy_per_request_s = service.batch_s(batch as usize) / f64::from(batch);
    let utilisation = report.arrival_rate_hz * busy_per_request_s;
    utilisation.is_finite() && utilisation >= OVERLOAD_UTILISATION
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
    phase: Phase,
    /// Level index of the swept dimension measured last.
    level: u8,
    line_best: Option<(Config, f64)>,
    /// Overloaded configs measured so far (for reports and tests).
    overloads: u32,
}

impl Linear {
    /// Linear search that repeats as `repeat` says.
    pub fn new(repeat: Repeat) -> Self {
        Linear {
            repeat,
            order: [0; MAX_DIMS],
            dims: 0,
            sweeps: 0,
            base: Config::default(),
            phase: Phase::Base,
            level: 0,
            line_best: None,
            overloads: 0,
        }
    }

    /// Sweeps (lines) completed so far.
    pub fn sweeps(&self) -> u32 {
        self.sweeps
    }

    /// The config the current sweep varies one knob of (the best found so far).
    pub fn base(&self) -> Config {
        self.base
    }

    /// Measured configs that could not keep up with the arrivals.
    pub fn overloads(&self) -> u32 {
        self.overloads
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

    /// Ends the line: its best becomes the base; the next line starts by
    /// measuring it (or the search stays there once done).
    fn end_line(&mut self) -> Config {
        if let Some((best, _)) = self.line_best.take() {
            self.base = best;
        }
        self.sweeps = self.sweeps.saturating_add(1);
        self.phase = Phase::Base;
        self.base
    }

    /// The next config of the line after the one just measured; `blocked`: that
    /// one could not keep up, so its direction ends there.
    fn advance(&mut self, space: &Space, blocked: bool) -> Config {
        let (Some(dim), Some(d)) = (
            self.sweeping(),
            self.sweeping().and_then(|d| space.dims().get(d)),
        ) else {
            return self.end_line();
        };
        let from = self.base.index(dim);
        let mut blocked = blocked;
        if self.phase == Phase::Base {
            self.phase = Phase::Down;
            self.level = from as u8;
        }
        if self.phase == Phase::Down {
            let level = usize::from(self.level);
            if !blocked && level > d.lower() {
                self.level -= 1;
                return self.base.with(dim, level - 1);
            }
            self.phase = Phase::Up;
            self.level = from as u8;
            blocked = false;
        }
        let level = usize::from(self.level);
        if !blocked && level < d.max_index() {
            self.level += 1;
            return self.base.with(dim, level + 1);
        }
        self.end_line()
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
        self.base
    }

    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        if self.done() {
            return self.base;
        }
        let cost = report.cost.mean;
        let over = overloaded(space, report);
        self.overloads = self.overloads.saturating_add(u32::from(over));
        if !over && cost.is_finite() && self.line_best.is_none_or(|(_, b)| cost < b) {
            self.line_best = Some((report.config, cost));
        }
        let next = self.advance(space, over);
        if self.done() {
            return self.base;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Service;
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

    #[test]
    fn overload_is_utilisation_of_the_configs_own_service() {
        let space = Space::new(&[Dimension::batch(8).unwrap()]).unwrap();
        let at = |batch: usize, batch_s: f64, rate: f64| {
            let mut r = WindowReport::measured(1, Config::default().with(0, batch - 1), 1.0, rate);
            r.service = Some(Service {
                fixed_s: batch_s,
                per_request_s: 0.0,
                active_w: 1.0,
                idle_w: None,
            });
            r
        };
        // Batches of 4 in 0.2 s serve 20 a second.
        assert!(!overloaded(&space, &at(4, 0.2, 19.0)));
        assert!(overloaded(&space, &at(4, 0.2, 20.0)));
        assert!(overloaded(&space, &at(4, 0.2, 25.0)));
        assert!(!overloaded(&space, &at(8, 0.2, 25.0)));
        assert!(!overloaded(
            &space,
            &WindowReport::measured(1, Config::default(), 1.0, 1e9)
        ));
    }
}
