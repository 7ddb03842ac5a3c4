//! EcoGD: hill climbing on the knob grid, "gradient descent, but only the direction".
//!
//! Each step, following `ECOGD.md`:
//! 1. measure the next config of the exploration queue, if any;
//! 2. queue every side neighbour (+-1 in exactly one dimension, within limits)
//!    without a fresh cost, and the center itself when its cost is stale;
//! 3. estimate the up-to-4 corners of the CPU-GPU plane with the additive model
//!    `cost(c+dx+dy) ~ cost(c+dx) + cost(c+dy) - cost(c)` (the original averaged the
//!    two sides, which never ranks a corner below both, so corners were never
//!    chosen: a defect we do not copy); a corner measured before, as a center,
//!    is ranked by that measurement instead;
//! 4. the better center is the cheapest of center, sides and corners;
//! 5. staying put, or going back to one of the last few centers (A-B-A), counts a
//!    loop; more than `max_loops` loops jump to a random config two steps away;
//! 6. move there and measure it in the next window;
//! 7. costs older than `memory_limit` windows are forgotten;
//! 8. optionally, a jump in arrival rate forgets every cost (the center stays);
//! 9. optionally, big improvements in the CPU-GPU plane take bigger steps.
//!
//! Five additions, each a setting whose `None`/`false` is the original:
//! - *abandoned probes* (`abandon_above`): a config without a fresh cost runs
//!   under a ceiling; see [`EcoGdSettings::abandon_above`];
//! - *pattern moves* (`pattern`): after a move, the next config one more step the
//!   same way is measured before the new center's sides (Hooke-Jeeves); while it
//!   keeps winning, the descent takes one window per step instead of one per side;
//! - *replay* (`replay`): before each decision every remembered config is priced
//!   under the same, latest load ([`crate::load`]), so windows measured under
//!   different loads compare the configs, not the loads; and a center that
//!   cannot keep up with that load is left at once (the overload escape);
//! - *batch scan* (`scan`): every batch size at the center's clocks is priced
//!   under that load from estimated service figures, and the cheapest is a
//!   candidate beside the sides and corners; see [`EcoGdSettings::scan`];
//! - *probing jumps* (`probe_jumps`): the loop escape measures its config two
//!   steps away before moving there; see [`EcoGdSettings::probe_jumps`].

use heapless::Vec;
use libm::ceil;

use super::history::History;
use super::{Optimizer, Prng};
use crate::load::{Load, Service};
use crate::space::{Config, Knob, MAX_DIMS, Space};
use crate::window::WindowReport;

/// Most costs EcoGD keeps. Larger than the default `memory_limit` (20), so only a
/// `memory_limit` above it ever evicts a fresh cost (the oldest one).
pub const HISTORY_CAPACITY: usize = 64;

/// How many previous centers count as "recently visited" for loop detection.
const RECENT: usize = 3;

/// Backlog, in baseline latencies `L0`, above which a center counts as
/// overloaded: each request behind it pays at least 2 in cost (at alpha 0.5)
/// on top of the 0.4-0.6 a settled config costs. Measured on the paper suite:
/// 1 and 2 `L0` escaped at every passing burst of `trace:azure`, 8 `L0` too
/// late in the spikes of `trace:twitter`.
const OVERLOAD: f64 = 4.0;

/// Largest step the jump-learn factor may take in the CPU-GPU plane.
const MAX_JUMP_LEARN_STEP: f64 = 5.0;

/// EcoGD's parameters. [`Default`]: the original's values, plus the five
/// additions (measured to help, see the README's results and
/// docs/results/ablation-*.md);
/// [`EcoGdSettings::paper`]: the original's values. Under both, a corner that was
/// measured before (as a center) is ranked by its measurement, not its estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EcoGdSettings {
    /// A cost is trusted for this many windows after it was measured (original 20).
    /// Shorter follows a changing load faster, longer measures less.
    pub memory_limit: u32,
    /// Loops (staying put or A-B-A) tolerated before jumping two steps away to look
    /// for a better basin (original 10).
    pub max_loops: u32,
    /// First center; `None` (the original) starts at the maximum config. A start
    /// outside the search limits falls back to the maximum.
    pub start: Option<Config>,
    /// Forget every cost when the arrival rate changes by more than this fraction
    /// between two windows (e.g. `0.3`); `None` (default) never does.
    pub rate_change: Option<f64>,
    /// Jump-learn factor: in the CPU-GPU plane, step
    /// `clamp(ceil(factor * relative_improvement), 1, 5)` levels instead of one;
    /// `None` (default) always steps one level.
    pub jump_learn: Option<f64>,
    /// A config without a fresh cost (a side probe, or a new center reached by a
    /// corner estimate or a jump) whose cost goes above this multiple of the
    /// center's is abandoned early and remembered at that cost at least (under
    /// `replay`, priced like any other from the batches it ran); a new center
    /// abandoned so is left for the previous one (default 1.5; `None`: the
    /// original, every window runs in full). It keeps a config past the capacity
    /// cliff from queueing a window's worth of requests behind it.
    pub abandon_above: Option<f64>,
    /// Pattern moves (default on; `false`: the original): after moving, measure
    /// one more step the same way first, and move there if it beats the center.
    pub pattern: bool,
    /// Price every remembered config under the latest load before comparing, and
    /// leave a center that cannot keep up with it (default on; `false`: the
    /// original compares the costs as measured, each under the load of its own
    /// window). Needs the load: [`Optimizer::step_under`]; [`Optimizer::step`]
    /// alone compares measured costs.
    pub replay: bool,
    /// Batch scan: price every batch size at the center's clocks under the
    /// latest load and move to the cheapest when it beats center, sides and
    /// corners (default on; `false`: the original). The service of a batch
    /// size not measured lately is estimated: a batch's time and its active
    /// energy are each a fixed part plus a part per request, fitted to the
    /// sizes measured at those clocks (two at least). Batch cost is not
    /// convex: under the full-batch rule a size that divides a burst beats
    /// its neighbours, and one step at a time stops at the first that does.
    /// Needs the load, as `replay` does; without `replay` its prices compete
    /// with costs as measured under other loads, which the ablation shows to
    /// hurt on traces (docs/results/ablation-resnet50.md).
    pub scan: bool,
    /// Probing jumps (default on; `false`: the original): the loop escape's
    /// config two steps away is measured as a probe, and becomes the center
    /// only if it beats the center, sides and corners. The original moves
    /// there at once, and climbing back from a worse basin takes a window per
    /// step: on a stationary load, where every escape is in vain, that is
    /// most of what EcoGD pays after converging. The price: a pit whose
    /// rim, two steps out, is higher than the pit is no longer left (the
    /// original descends from the rim into a better basin); the batch scan
    /// covers the batch axis, where such pits are common.
    pub probe_jumps: bool,
}

impl EcoGdSettings {
    /// The original algorithm: every window in full, no pattern moves
    /// (`ecogd:paper` on the command line).
    pub fn paper() -> Self {
        EcoGdSettings {
            abandon_above: None,
            pattern: false,
            replay: false,
            scan: false,
            probe_jumps: false,
            ..EcoGdSettings::default()
        }
    }
}

impl Default for EcoGdSettings {
    fn default() -> Self {
        EcoGdSettings {
            memory_limit: 20,
            max_loops: 10,
            start: None,
            rate_change: None,
            jump_learn: None,
            abandon_above: Some(1.5),
            pattern: true,
            replay: true,
            scan: true,
            probe_jumps: true,
        }
    }
}

/// The EcoGD optimizer; see the module doc. Fixed size, bounded work per step
/// (a few dozen history look-ups).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EcoGd {
    settings: EcoGdSettings,
    center: Config,
    history: History<HISTORY_CAPACITY>,
    queue: Vec<Config, { 2 * MAX_DIMS }>,
    recent: Vec<Config, RECENT>,
    loops: u32,
    jumps: u32,
    last_rate: Option<f64>,
    /// The last loop escape's config, while it is a probe (`probe_jumps`).
    jumped: Option<Config>,
    /// Ceiling of the config proposed last (see `abandon_above`).
    ceiling: Option<f64>,
    /// Index change of the last move, per dimension, while a pattern is followed.
    direction: Option<[i8; MAX_DIMS]>,
    rng: Prng,
}

impl EcoGd {
    /// EcoGD with `settings`; `seed` drives the loop-escape jumps.
    pub fn new(settings: EcoGdSettings, seed: u64) -> Self {
        EcoGd {
            settings,
            center: settings.start.unwrap_or_default(),
            history: History::new(),
            queue: Vec::new(),
            recent: Vec::new(),
            loops: 0,
            jumps: 0,
            last_rate: None,
            jumped: None,
            ceiling: None,
            direction: None,
            rng: Prng::new(seed),
        }
    }

    /// The parameters in force.
    pub fn settings(&self) -> &EcoGdSettings {
        &self.settings
    }

    /// The current center: the best config EcoGD knows of.
    pub fn center(&self) -> Config {
        self.center
    }

    /// Loop-escape jumps taken so far.
    pub fn jumps(&self) -> u32 {
        self.jumps
    }

    /// Loops counted since the last move to a new center or jump.
    pub fn loops(&self) -> u32 {
        self.loops
    }

    /// The measured costs remembered.
    pub fn history(&self) -> &History<HISTORY_CAPACITY> {
        &self.history
    }

    fn fresh(&self, config: &Config, now: u32) -> Option<f64> {
        self.history.fresh(config, now, self.settings.memory_limit)
    }

    /// Step 8: a large relative change of arrival rate makes every cost stale.
    fn detect_rate_change(&mut self, rate: f64) {
        if !rate.is_finite() || rate < 0.0 {
            return;
        }
        if let (Some(threshold), Some(last)) = (self.settings.rate_change, self.last_rate)
            && last > 0.0
            && (rate - last).abs() / last > threshold
        {
            self.history.clear();
            self.queue.clear();
            self.loops = 0;
        }
        self.last_rate = Some(rate);
    }

    /// The next config, with the ceiling of its window: probes get one, the
    /// center none.
    fn propose(&mut self, space: &Space, now: u32, load: Option<&Load<'_>>) -> Config {
        let reference = self.fresh(&self.center, now);
        let next = self.decide(space, now, load);
        self.ceiling = match (self.settings.abandon_above, reference) {
            (Some(factor), Some(cost)) if self.fresh(&next, now).is_none() => Some(factor * cost),
            _ => None,
        };
        next
    }

    /// Steps 1-6 at window `now`, under `load` when it is known.
    fn decide(&mut self, space: &Space, now: u32, load: Option<&Load<'_>>) -> Config {
        if !space.within_limits(&self.center) {
            self.center = space.max_config();
        }
        // 1. The exploration queue.
        while let Some(c) = self.queue.pop() {
            if self.fresh(&c, now).is_none() {
                return c;
            }
        }
        let Some(center_cost) = self.fresh(&self.center, now) else {
            return self.center;
        };
        if let Some(ahead) = self.follow_pattern(space, now, center_cost) {
            return ahead;
        }
        // 2. Side neighbours without a fresh cost are measured first.
        let mut best = (self.center, center_cost);
        for dim in (0..space.len()).rev() {
            for delta in [1, -1] {
                let Some(side) = space.step(&self.center, dim, delta) else {
                    continue;
                };
                match self.fresh(&side, now) {
                    Some(cost) if cost < best.1 => best = (side, cost),
                    Some(_) => {}
                    // Cannot fail: at most 2 sides per dimension.
                    None => {
                        let _ = self.queue.push(side);
                    }
                }
            }
        }
        if let Some(c) = self.queue.pop() {
            return c;
        }
        // 3-4. Corners of the CPU-GPU plane, estimated additively.
        if let (Some(x), Some(y)) = (space.position(Knob::Cpu), space.position(Knob::Gpu)) {
            for dx in [1, -1] {
                for dy in [1, -1] {
                    let (Some(sx), Some(sy)) = (
                        space.step(&self.center, x, dx),
                        space.step(&self.center, y, dy),
                    ) else {
                        continue;
                    };
                    let (Some(corner), Some(cx), Some(cy)) = (
                        space.step(&sx, y, dy),
                        self.fresh(&sx, now),
                        self.fresh(&sy, now),
                    ) else {
                        continue;
                    };
                    // A corner measured before (as a center) needs no estimate.
                    let estimate = self.fresh(&corner, now).unwrap_or(cx + cy - center_cost);
                    if estimate < best.1 {
                        best = (corner, estimate);
                    }
                }
            }
        }
        if let Some(load) = load.filter(|_| self.settings.scan)
            && let Some(scanned) = self.scan_batches(space, now, load)
            && scanned.1 < best.1
        {
            best = scanned;
        }
        if let Some(jumped) = self.jumped.take()
            && let Some(cost) = self.fresh(&jumped, now)
            && cost < best.1
        {
            best = (jumped, cost);
        }
        let target = self.jump_learn(space, best.0, best.1, center_cost);
        // 5. Loop detection.
        if target == self.center || self.recent.contains(&target) {
            self.loops = self.loops.saturating_add(1);
        } else {
            self.loops = 0;
        }
        let next = if self.loops > self.settings.max_loops {
            self.loops = 0;
            self.jumps = self.jumps.saturating_add(1);
            let jump = self.jump_target(space).unwrap_or(target);
            if self.settings.probe_jumps && jump != self.center {
                self.direction = None;
                self.jumped = Some(jump);
                return jump;
            }
            jump
        } else {
            target
        };
        // 6. Move.
        self.direction = (self.settings.pattern && next == target && next != self.center)
            .then(|| direction(&self.center, &next));
        if next != self.center {
            self.move_to(next);
        }
        self.center
    }

    /// Makes `next` the center, remembering the old one for loop detection.
    fn move_to(&mut self, next: Config) {
        if self.recent.is_full() {
            self.recent.remove(0);
        }
        // Cannot fail: room was made above.
        let _ = self.recent.push(self.center);
        self.center = next;
    }

    /// Pattern move: the config one more step along the last move, when it is
    /// still to be measured; a measured one that beats the center becomes the
    /// center (and the pattern goes on from there); otherwise the pattern ends.
    fn follow_pattern(&mut self, space: &Space, now: u32, center_cost: f64) -> Option<Config> {
        let d = self.direction?;
        let mut center_cost = center_cost;
        // Bounded: each turn moves to a config with a fresh cost, and at most
        // `memory_limit` of those exist.
        loop {
            let mut ahead = Some(self.center);
            for (dim, &delta) in d.iter().enumerate().take(space.len()) {
                if delta != 0 {
                    ahead = ahead.and_then(|c| space.step(&c, dim, isize::from(delta)));
                }
            }
            let Some(ahead) = ahead else {
                self.direction = None;
                return None;
            };
            match self.fresh(&ahead, now) {
                None => return Some(ahead),
                Some(cost) if cost < center_cost => {
                    self.move_to(ahead);
                    self.loops = 0;
                    center_cost = cost;
                }
                Some(_) => {
                    self.direction = None;
                    return None;
                }
            }
        }
    }

    /// The batch scan (see [`EcoGdSettings::scan`]): the cheapest batch size at
    /// the center's clocks, two or more steps away and without a fresh cost,
    /// priced under `load` with its estimated service figures; `None` before
    /// two sizes were measured at these clocks.
    fn scan_batches(&self, space: &Space, now: u32, load: &Load<'_>) -> Option<(Config, f64)> {
        let b = space.position(Knob::Batch)?;
        let center = self.center;
        let same_clocks =
            |c: &Config| (0..space.len()).all(|d| d == b || c.index(d) == center.index(d));
        let (mut time, mut energy, mut idle_w) = (LineFit::default(), LineFit::default(), None);
        for e in self.history.entries() {
            let Some(s) = e.service.filter(|_| {
                now.saturating_sub(e.window) < self.settings.memory_limit && same_clocks(&e.config)
            }) else {
                continue;
            };
            let size = space.batch_size(&e.config).max(1);
            let (k, t) = (f64::from(size), s.batch_s(size as usize));
            time.add(k, t);
            energy.add(k, t * s.active_w);
            if e.config == center || idle_w.is_none() {
                idle_w = s.idle_w.or(idle_w);
            }
        }
        let ((t0, t1), (e0, e1)) = (time.line()?, energy.line()?);
        let dim = space.dims().get(b)?;
        let mut best: Option<(Config, f64)> = None;
        for i in dim.lower()..=dim.max_index() {
            let c = center.with(b, i);
            if i.abs_diff(center.index(b)) < 2 || self.fresh(&c, now).is_some() {
                continue;
            }
            let size = f64::from(space.batch_size(&c).max(1));
            let (t, e) = (t0 + t1 * size, e0 + e1 * size);
            if !(t > 0.0 && e > 0.0) {
                continue;
            }
            // Partial batches (a maximum wait) follow the same line.
            let per_request_s = t1.clamp(0.0, t / size);
            let service = Service {
                fixed_s: t - per_request_s * size,
                per_request_s,
                active_w: e / t,
                idle_w,
            };
            if let Some(r) = load.replay(space.batch_size(&c), &service)
                && best.is_none_or(|(_, cost)| r.cost < cost)
            {
                best = Some((c, r.cost));
            }
        }
        best
    }

    /// Step 9: scales a move in the CPU-GPU plane by the relative improvement.
    fn jump_learn(&self, space: &Space, best: Config, best_cost: f64, center_cost: f64) -> Config {
        let Some(factor) = self.settings.jump_learn else {
            return best;
        };
        if best == self.center || center_cost.abs() < f64::MIN_POSITIVE {
            return best;
        }
        let improvement = (center_cost - best_cost) / center_cost.abs();
        // A NaN factor casts to 0: still one level.
        let size = (ceil(factor * improvement).clamp(1.0, MAX_JUMP_LEARN_STEP) as usize).max(1);
        let mut target = best;
        for knob in [Knob::Cpu, Knob::Gpu] {
            let Some(dim) = space.position(knob) else {
                continue;
            };
            let Some(d) = space.dims().get(dim) else {
                continue;
            };
            let from = self.center.index(dim);
            let to = best.index(dim);
            let scaled = if to > from {
                from.saturating_add(size).min(d.max_index())
            } else if to < from {
                from.saturating_sub(size).max(d.lower())
            } else {
                from
            };
            target = target.with(dim, scaled);
        }
        target
    }

    /// A random config at distance exactly 2 from the center, within limits: two
    /// steps along one dimension, or one step along each of two.
    fn jump_target(&mut self, space: &Space) -> Option<Config> {
        let mut candidates: Vec<Config, { 2 * MAX_DIMS + 2 * MAX_DIMS * (MAX_DIMS - 1) }> =
            Vec::new();
        let center = self.center;
        for i in 0..space.len() {
            for delta in [2, -2] {
                if let Some(c) = space.step(&center, i, delta) {
                    let _ = candidates.push(c);
                }
            }
            for j in (i + 1)..space.len() {
                for di in [1, -1] {
                    for dj in [1, -1] {
                        if let Some(c) = space
                            .step(&center, i, di)
                            .and_then(|c| space.step(&c, j, dj))
                        {
                            let _ = candidates.push(c);
                        }
                    }
                }
            }
        }
        let pick = self.rng.below(candidates.len());
        candidates.get(pick).copied()
    }

    /// Overload escape: a center that cannot keep up with the recent load, its
    /// replay ending more than [`OVERLOAD`] baseline latencies behind, is left
    /// for the previous center if that one keeps up, else for the maximum
    /// config, which drains a backlog fastest; the descent then starts over,
    /// priced under a load that now holds the surge. Climbing out one step a
    /// window would take tens of windows while the backlog grows.
    fn escape_overload(&mut self, space: &Space, now: u32, load: &Load<'_>) {
        // Uses the replays `reprice` just made.
        let behind = |gd: &Self, config: &Config| {
            gd.history
                .fresh_entry(config, now, gd.settings.memory_limit)
                .and_then(|e| e.priced)
                .map(|r| r.backlog_s > OVERLOAD * load.baseline.latency_s())
        };
        if behind(self, &self.center) != Some(true) {
            return;
        }
        let previous = self.recent.last().copied();
        let target = match previous {
            Some(p) if behind(self, &p) == Some(false) => p,
            _ => space.max_config(),
        };
        if target != self.center {
            self.queue.clear();
            self.direction = None;
            self.loops = 0;
            self.move_to(target);
        }
    }

    /// Remembers the window's cost, forgets stale ones, and leaves a new center
    /// that was abandoned.
    fn observe(&mut self, space: &Space, report: &WindowReport) {
        let now = report.index;
        self.detect_rate_change(report.arrival_rate_hz);
        if report.cost.mean.is_finite() && space.check(&report.config).is_ok() {
            // An abandoned probe costs at least what it was abandoned at (as
            // measured: under `replay` it is priced from its service instead).
            let cost = match self.ceiling {
                Some(ceiling) if report.abandoned => report.cost.mean.max(ceiling),
                _ => report.cost.mean,
            };
            self.history
                .record(report.config, cost, report.service, now);
        }
        // 7. Forget what is too old to trust (also bounds the history).
        self.history.trim(now, self.settings.memory_limit);
        if report.abandoned
            && report.config == self.center
            && let Some(previous) = self.recent.pop()
        {
            self.center = previous;
        }
    }
}

/// A least-squares line `y = a + b x` through points added one by one.
#[derive(Debug, Clone, Copy, Default)]
struct LineFit {
    n: f64,
    x: f64,
    y: f64,
    xx: f64,
    xy: f64,
}

impl LineFit {
    fn add(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.xy += x * y;
    }

    /// `(a, b)`, once two distinct `x` were added.
    fn line(&self) -> Option<(f64, f64)> {
        let spread = self.n * self.xx - self.x * self.x;
        if self.n < 2.0 || spread <= 1e-9 {
            return None;
        }
        let b = (self.n * self.xy - self.x * self.y) / spread;
        Some(((self.y - b * self.x) / self.n, b))
    }
}

/// The index change from `from` to `to`, per dimension, each clamped to one step.
fn direction(from: &Config, to: &Config) -> [i8; MAX_DIMS] {
    // `Ordering` is -1, 0 or 1 as an integer.
    core::array::from_fn(|dim| to.index(dim).cmp(&from.index(dim)) as i8)
}

impl Optimizer for EcoGd {
    fn name(&self) -> &'static str {
        "ecogd"
    }

    fn start(&mut self, space: &Space) -> Config {
        self.center = self
            .settings
            .start
            .filter(|c| space.within_limits(c))
            .unwrap_or_else(|| space.max_config());
        self.history.clear();
        self.queue.clear();
        self.recent.clear();
        self.loops = 0;
        self.last_rate = None;
        self.jumped = None;
        self.ceiling = None;
        self.direction = None;
        self.center
    }

    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        self.observe(space, report);
        self.propose(space, report.index, None)
    }

    fn step_under(&mut self, space: &Space, report: &WindowReport, load: &Load<'_>) -> Config {
        self.observe(space, report);
        if self.settings.replay {
            self.history
                .reprice(|config, service| load.replay(space.batch_size(config), service));
            self.escape_overload(space, report.index, load);
        }
        self.propose(space, report.index, Some(load))
    }

    fn ceiling(&self) -> Option<f64> {
        self.ceiling
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{Alpha, Baseline, EnergyScope};
    use crate::load::{Arrivals, Sample, Service};
    use crate::space::Dimension;
    use crate::time::Instant;

    fn plane() -> Space {
        let cpu = Dimension::new(Knob::Cpu, &[1, 2, 3, 4, 5]).unwrap();
        let gpu = Dimension::new(Knob::Gpu, &[1, 2, 3, 4, 5]).unwrap();
        Space::new(&[cpu, gpu]).unwrap()
    }

    fn at(cpu: usize, gpu: usize) -> Config {
        Config::default().with(0, cpu).with(1, gpu)
    }

    /// Center (2, 2) costs 1.0, its two lower sides 0.9, every other config 1.1.
    fn corner_cost(c: &Config) -> f64 {
        match (c.index(0), c.index(1)) {
            (2, 2) => 1.0,
            (1, 2) | (2, 1) => 0.9,
            _ => 1.1,
        }
    }

    /// EcoGD with `settings`, starting at (2, 2).
    fn from_center(settings: EcoGdSettings) -> EcoGd {
        EcoGd::new(
            EcoGdSettings {
                start: Some(at(2, 2)),
                ..settings
            },
            0,
        )
    }

    #[test]
    fn a_corner_estimated_below_both_sides_is_chosen() {
        let space = plane();
        // Center 1.0, each of the two lower sides 0.1 cheaper: the additive corner
        // estimate (0.8) beats both; the original's average (0.9) never could.
        let mut gd = from_center(EcoGdSettings::default());
        let mut c = gd.start(&space);
        let mut measured = std::vec::Vec::new();
        for w in 1..=5 {
            measured.push(c);
            c = gd.step(&space, &WindowReport::measured(w, c, corner_cost(&c), 1.0));
        }
        assert_eq!(measured[0], at(2, 2));
        assert_eq!(measured.len(), 5, "center, then the four sides");
        assert_eq!(c, at(1, 1));
        assert_eq!(gd.center(), at(1, 1));
    }

    #[test]
    fn unmeasured_configs_get_a_ceiling_and_an_abandoned_new_center_is_left() {
        let space = plane();
        let cost = corner_cost;
        let mut gd = from_center(EcoGdSettings::default());
        let mut c = gd.start(&space);
        assert_eq!(gd.ceiling(), None, "nothing to compare with yet");
        c = gd.step(&space, &WindowReport::measured(1, c, cost(&c), 1.0));
        // A side probe may be cut at 1.5 x the center's 1.0.
        assert_ne!(c, at(2, 2));
        assert_eq!(gd.ceiling(), Some(1.5));
        for w in 2..=5 {
            c = gd.step(&space, &WindowReport::measured(w, c, cost(&c), 1.0));
        }
        // The corner (1, 1) is only estimated: it is measured under a ceiling.
        assert_eq!(c, at(1, 1));
        assert_eq!(gd.ceiling(), Some(1.5));
        // It turns out past a cliff and is abandoned: EcoGD leaves it for the old
        // center, remembers it at no less than the ceiling, and from there takes
        // the best measured side instead.
        let mut cut = WindowReport::measured(6, c, 1.2, 1.0);
        cut.abandoned = true;
        c = gd.step(&space, &cut);
        assert_eq!(gd.history().fresh(&at(1, 1), 6, 20), Some(1.5));
        assert_eq!(cost(&c), 0.9, "{c:?}");
        assert_eq!(gd.center(), c);
        // Without the setting, windows are never cut.
        let mut original = from_center(EcoGdSettings::paper());
        let c = original.start(&space);
        original.step(&space, &WindowReport::measured(1, c, 1.0, 1.0));
        assert_eq!(original.ceiling(), None);
    }

    #[test]
    fn going_back_and_forth_counts_loops() {
        let space = plane();
        // The original's steps alone: a pattern move would walk on past B here.
        let mut gd = EcoGd::new(
            EcoGdSettings {
                start: Some(at(0, 0)),
                pattern: false,
                ..EcoGdSettings::default()
            },
            0,
        );
        let a = gd.start(&space);
        let b = at(1, 0);
        // A costs 1.0; B looks cheaper, then is dearer when measured as center.
        let mut c = gd.step(&space, &WindowReport::measured(1, a, 1.0, 1.0));
        let mut w = 2;
        while c != a || gd.center() != a || w < 4 {
            let cost = match (c == b, gd.center() == b) {
                (true, true) => 2.0,
                (true, false) => 0.5,
                _ => 1.5,
            };
            c = gd.step(&space, &WindowReport::measured(w, c, cost, 1.0));
            w += 1;
            assert!(w < 20, "never went back");
        }
        assert_eq!(gd.loops(), 1, "A-B-A is a loop");
        // Staying put counts too; past max_loops it jumps two steps away.
        for _ in 0..20 {
            c = gd.step(&space, &WindowReport::measured(w, c, 0.1, 1.0));
            w += 1;
        }
        assert!(gd.jumps() >= 1);
    }

    #[test]
    fn a_loop_escape_probes_before_it_moves() {
        let space = plane();
        // The center (2, 2) costs 1.0 and its neighbours 2.0; every config two
        // steps away costs `far`.
        let run = |probe_jumps: bool, far: f64| {
            let cost = |c: &Config| match c.index(0).abs_diff(2) + c.index(1).abs_diff(2) {
                0 => 1.0,
                2 => far,
                _ => 2.0,
            };
            let mut gd = from_center(EcoGdSettings {
                probe_jumps,
                ..EcoGdSettings::default()
            });
            let mut c = gd.start(&space);
            let mut w = 1;
            while gd.jumps() == 0 {
                c = gd.step(&space, &WindowReport::measured(w, c, cost(&c), 1.0));
                w += 1;
                assert!(w < 40, "no loop escape");
            }
            let (jumped, center) = (c, gd.center());
            c = gd.step(&space, &WindowReport::measured(w, c, cost(&c), 1.0));
            (jumped, center, gd.center(), c)
        };
        // A probe that costs more leaves the center where it was.
        let (jumped, during, after, _) = run(true, 3.0);
        assert_ne!(jumped, at(2, 2));
        assert_eq!((during, after), (at(2, 2), at(2, 2)));
        // The original moves at once, and must climb back.
        let (jumped, during, _, _) = run(false, 3.0);
        assert_eq!(during, jumped);
        // A probe that costs less becomes the center.
        let (jumped, during, after, _) = run(true, 0.5);
        assert_eq!((during, after), (at(2, 2), jumped));
    }

    #[test]
    fn a_jump_in_arrival_rate_forgets_costs_but_keeps_the_center() {
        let space = plane();
        let mut gd = EcoGd::new(
            EcoGdSettings {
                rate_change: Some(0.3),
                ..EcoGdSettings::default()
            },
            0,
        );
        let mut c = gd.start(&space);
        for w in 1..=3 {
            c = gd.step(&space, &WindowReport::measured(w, c, 1.0, 10.0));
        }
        assert_eq!(gd.history().len(), 3);
        let center = gd.center();
        let _ = gd.step(&space, &WindowReport::measured(4, c, 1.0, 14.0));
        assert_eq!(gd.history().len(), 1, "only the new measurement");
        assert_eq!(gd.center(), center);
        // Below the threshold nothing is forgotten.
        let mut calm = EcoGd::new(*gd.settings(), 0);
        let mut c = calm.start(&space);
        for w in 1..=3 {
            c = calm.step(
                &space,
                &WindowReport::measured(w, c, 1.0, 10.0 + f64::from(w)),
            );
        }
        assert_eq!(calm.history().len(), 3);
    }

    #[test]
    fn memory_limit_makes_old_costs_stale() {
        let space = plane();
        let mut gd = EcoGd::new(
            EcoGdSettings {
                memory_limit: 3,
                ..EcoGdSettings::default()
            },
            0,
        );
        let mut c = gd.start(&space);
        for w in 1..=10 {
            c = gd.step(&space, &WindowReport::measured(w, c, 1.0, 1.0));
            assert!(gd.history().len() <= 3);
        }
    }

    /// Three CPU levels, no batch knob (batches of one).
    fn line() -> Space {
        Space::new(&[Dimension::new(Knob::Cpu, &[1, 2, 3]).unwrap()]).unwrap()
    }

    fn cpu(i: usize) -> Config {
        Config::default().with(0, i)
    }

    /// 64 arrivals `gap_s` apart, and a load over them with `L0` = 1 s.
    fn arrivals(gap_s: f64) -> Arrivals<64> {
        let mut a = Arrivals::default();
        for i in 0..64 {
            a.push(Instant::from_micros((i as f64 * gap_s * 1e6) as u64));
        }
        a
    }

    fn load(arrivals: &Arrivals<64>) -> Load<'_> {
        let seen_at = arrivals
            .as_slices()
            .0
            .last()
            .copied()
            .unwrap_or(Instant::ZERO);
        Load {
            sample: Sample::new(arrivals, 0, seen_at),
            baseline: Baseline::new(1.0, 1.0).unwrap(),
            alpha: Alpha::default(),
            scope: EnergyScope::Total,
            max_wait: None,
        }
    }

    /// A window of `config` that measured `cost` and `service`.
    fn window(index: u32, config: Config, cost: f64, service: Service) -> WindowReport {
        WindowReport {
            service: Some(service),
            ..WindowReport::measured(index, config, cost, 1.0)
        }
    }

    fn service(batch_s: f64, active_w: f64) -> Service {
        Service {
            fixed_s: batch_s,
            per_request_s: 0.0,
            active_w,
            idle_w: Some(0.5),
        }
    }

    #[test]
    fn replay_compares_configs_not_loads() {
        // The maximum (CPU level 2) was measured in a busy window at 0.5, its
        // side (level 1) in a quiet one at 0.9. The side is as fast at half
        // the power: under one load it is the cheaper.
        let space = line();
        let sample = arrivals(1.0);
        for (replay, center) in [(true, cpu(1)), (false, cpu(2))] {
            let mut gd = EcoGd::new(
                EcoGdSettings {
                    replay,
                    ..EcoGdSettings::default()
                },
                0,
            );
            assert_eq!(gd.start(&space), cpu(2));
            let busy = window(1, cpu(2), 0.5, service(0.1, 4.0));
            assert_eq!(gd.step_under(&space, &busy, &load(&sample)), cpu(1));
            let quiet = window(2, cpu(1), 0.9, service(0.1, 2.0));
            let _ = gd.step_under(&space, &quiet, &load(&sample));
            assert_eq!(gd.center(), center, "replay {replay}");
        }
    }

    #[test]
    fn the_batch_scan_jumps_past_a_local_minimum() {
        // Bursts of 10 requests at once, every 2 s. Batch 2 beats its sides (a
        // batch of 3 leaves a request waiting 2 s for the next burst), yet a
        // batch of 10 serves each burst in one go, sooner on average and with
        // the fixed part of a batch's time and energy paid once.
        let space = Space::new(&[Dimension::batch(16).unwrap()]).unwrap();
        let batch = |size: u32| {
            space
                .configs()
                .find(|c| space.batch_size(c) == size)
                .unwrap()
        };
        let timed = |c: &Config| Service {
            fixed_s: 0.05 + 0.01 * f64::from(space.batch_size(c)),
            per_request_s: 0.0,
            active_w: 5.0,
            idle_w: Some(0.5),
        };
        let mut sample: Arrivals<64> = Arrivals::default();
        for i in 0..60 {
            sample.push(Instant::from_micros(i / 10 * 2_000_000));
        }
        for (scan, center) in [(false, batch(2)), (true, batch(10))] {
            let mut gd = EcoGd::new(
                EcoGdSettings {
                    scan,
                    start: Some(batch(2)),
                    ..EcoGdSettings::default()
                },
                0,
            );
            let mut c = gd.start(&space);
            for w in 1..=4 {
                c = gd.step_under(&space, &window(w, c, 1.0, timed(&c)), &load(&sample));
            }
            assert_eq!(gd.center(), center, "scan {scan}");
        }
        // Without the load (`step`), there is nothing to scan under.
        let mut gd = EcoGd::new(
            EcoGdSettings {
                start: Some(batch(2)),
                ..EcoGdSettings::default()
            },
            0,
        );
        let mut c = gd.start(&space);
        for w in 1..=4 {
            c = gd.step(&space, &window(w, c, 1.0, timed(&c)));
        }
        assert_eq!(gd.center(), batch(2));
    }

    #[test]
    fn a_center_that_cannot_keep_up_is_left() {
        // Level 0 takes 0.5 s a request, level 1 0.25 s, level 2 0.1 s, at
        // rising power: one arrival every 2 s makes level 0 the cheapest.
        let space = line();
        let services = [service(0.5, 1.0), service(0.25, 3.0), service(0.1, 9.0)];
        let report = |w, c: Config| window(w, c, 1.0, services[c.index(0)]);
        let calm = arrivals(2.0);
        let mut gd = EcoGd::new(EcoGdSettings::default(), 0);
        let mut c = gd.start(&space);
        for w in 1..=4 {
            c = gd.step_under(&space, &report(w, c), &load(&calm));
        }
        assert_eq!(gd.center(), cpu(0));
        // A surge of one arrival every 0.3 s: level 0 falls 0.2 s further
        // behind with each, level 1 keeps up. EcoGD goes back to level 1 at once.
        let surge = arrivals(0.3);
        let _ = gd.step_under(&space, &report(5, c), &load(&surge));
        assert_eq!(gd.center(), cpu(1));
        // Where the previous center cannot keep up either, the maximum takes over.
        let mut gd = EcoGd::new(
            EcoGdSettings {
                start: Some(cpu(0)),
                ..EcoGdSettings::default()
            },
            0,
        );
        let c = gd.start(&space);
        let _ = gd.step_under(&space, &report(1, c), &load(&arrivals(0.1)));
        assert_eq!(gd.center(), cpu(2));
    }
}
