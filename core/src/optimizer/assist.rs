//! EcoGD's load replay and early abandonment, for any optimizer.
//!
//! EcoGD has two additions that are not about its search: it prices costs
//! under the recent load ([`crate::load`]) rather than as measured, and it cuts
//! short a probe whose cost runs far above the best it knows
//! ([`Optimizer::ceiling`]). A fair comparison offers both to every optimizer
//! (`grid+replay`, `bayes+replay+abandon` on the command line). [`Assisted`]
//! wraps any optimizer with them:
//! - *abandon* (`+abandon`): a config without a fresh cost runs under a ceiling
//!   of [`ABANDON_ABOVE`] times the lowest fresh cost seen (the incumbent); a
//!   window cut there is reported to the optimizer at the ceiling at least, as
//!   EcoGD remembers its abandoned probes;
//! - *replay* (`+replay`): the cost the optimizer sees for a window is its
//!   config replayed under the latest load, from the service figures the window
//!   measured, instead of the window's own cost; and the incumbent is priced
//!   under that same load.
//!
//! What the wrapper cannot do: re-price the costs an optimizer keeps inside
//! (grid's best, the Bayesian model's observations). Each is priced under the
//! load of its time, a sample of the last [`crate::load::LOAD_SAMPLE`]
//! arrivals that moves slowly, not under one common load; only EcoGD re-prices
//! every remembered cost before each decision.

use super::Optimizer;
use super::history::History;
use crate::load::Load;
use crate::space::{Config, Knob, Space};
use crate::window::WindowReport;

/// The ceiling over the incumbent's cost: EcoGD's default (`abandon_above`).
pub const ABANDON_ABOVE: f64 = 1.5;

/// Windows a cost stays fresh, as EcoGD's default `memory_limit`.
const MEMORY: u32 = 20;

/// Costs kept: a fresh one per window at most.
const CAPACITY: usize = MEMORY as usize;

/// Which of EcoGD's additions an optimizer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Assist {
    /// Early abandonment of probes.
    pub abandon: bool,
    /// Costs priced under the latest load.
    pub replay: bool,
}

impl Assist {
    /// True when neither addition is taken.
    pub fn is_none(&self) -> bool {
        !self.abandon && !self.replay
    }
}

/// `O` with the additions of [`Assist`]; see the module doc. Without any, every
/// call goes straight to `O`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Assisted<O> {
    inner: O,
    assist: Assist,
    history: History<CAPACITY>,
    /// Ceiling of the config proposed last.
    ceiling: Option<f64>,
}

impl<O: Optimizer> Assisted<O> {
    /// `inner` with the additions of `assist`.
    pub fn new(inner: O, assist: Assist) -> Self {
        Assisted {
            inner,
            assist,
            history: History::new(),
            ceiling: None,
        }
    }

    /// The optimizer inside.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// The additions taken.
    pub fn assist(&self) -> Assist {
        self.assist
    }

    /// The report as the optimizer inside sees it, after remembering its cost.
    fn observe(
        &mut self,
        space: &Space,
        report: &WindowReport,
        load: Option<&Load<'_>>,
    ) -> WindowReport {
        let mut seen = *report;
        let now = report.index;
        if self.assist.replay
            && let (Some(load), Some(service)) = (load, report.service)
            && let Some(replayed) = load.replay(space.batch_size(&report.config), &service)
        {
            seen.cost.mean = replayed.cost;
        }
        if report.abandoned
            && let Some(ceiling) = self.ceiling
        {
            seen.cost.mean = seen.cost.mean.max(ceiling);
        }
        if seen.cost.mean.is_finite() && space.check(&report.config).is_ok() {
            self.history
                .record(report.config, seen.cost.mean, report.service, now);
        }
        self.history.trim(now, MEMORY);
        if self.assist.replay
            && let Some(load) = load
        {
            self.history
                .reprice(|config, service| load.replay(space.batch_size(config), service));
        }
        seen
    }

    /// The ceiling for `next`: none for a config with a fresh cost.
    fn ceiling_for(&self, next: &Config, now: u32) -> Option<f64> {
        if !self.assist.abandon || self.history.fresh(next, now, MEMORY).is_some() {
            return None;
        }
        self.history
            .entries()
            .iter()
            .filter(|e| now.saturating_sub(e.window) < MEMORY)
            .map(|e| e.cost())
            .min_by(f64::total_cmp)
            .map(|best| ABANDON_ABOVE * best)
    }

    fn step_with(
        &mut self,
        space: &Space,
        report: &WindowReport,
        load: Option<&Load<'_>>,
    ) -> Config {
        let seen = self.observe(space, report, load);
        let next = match load {
            Some(load) => self.inner.step_under(space, &seen, load),
            None => self.inner.step(space, &seen),
        };
        self.ceiling = self.ceiling_for(&next, report.index);
        next
    }
}

impl<O: Optimizer> Optimizer for Assisted<O> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn start(&mut self, space: &Space) -> Config {
        self.history.clear();
        self.ceiling = None;
        self.inner.start(space)
    }

    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        if self.assist.is_none() {
            return self.inner.step(space, report);
        }
        self.step_with(space, report, None)
    }

    fn step_under(&mut self, space: &Space, report: &WindowReport, load: &Load<'_>) -> Config {
        if self.assist.is_none() {
            return self.inner.step_under(space, report, load);
        }
        self.step_with(space, report, Some(load))
    }

    fn governed(&self, knob: Knob) -> bool {
        self.inner.governed(knob)
    }

    fn ceiling(&self) -> Option<f64> {
        if self.assist.abandon {
            self.ceiling
        } else {
            self.inner.ceiling()
        }
    }
}
