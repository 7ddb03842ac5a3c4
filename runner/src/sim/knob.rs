//! Simulated frequency knobs and the OS governors the `dvfs` baseline hands them to.
//!
//! A [`SimKnob`] implements the core's [`FrequencyKnob`] with the device model's
//! level table. A new level takes effect `transition_us` after it is set (default
//! 1 ms: PLL relock and regulator ramp), read back on the simulator's virtual clock.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

use ecoedge_core::board::FrequencyKnob;
use ecoedge_core::space::Knob;

/// The simulator's virtual time in microseconds, shared by its parts.
pub type VirtualClock = Rc<Cell<u64>>;

/// A level index the knob does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSuchLevel {
    /// The knob.
    pub knob: Knob,
    /// The index asked for.
    pub index: usize,
    /// Levels it has.
    pub levels: usize,
}

impl fmt::Display for NoSuchLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} level index {} is outside 0..{}",
            self.knob.name(),
            self.index,
            self.levels
        )
    }
}

impl std::error::Error for NoSuchLevel {}

/// One simulated clock domain.
#[derive(Debug, Clone)]
pub struct SimKnob {
    knob: Knob,
    levels: Vec<u32>,
    level: usize,
    pending: Option<(u64, usize)>,
    governed: bool,
    transition_us: u64,
    clock: VirtualClock,
}

impl SimKnob {
    /// A knob at its highest level, pinned.
    pub fn new(knob: Knob, levels: &[u32], transition_us: u64, clock: VirtualClock) -> Self {
        SimKnob {
            knob,
            level: levels.len().saturating_sub(1),
            levels: levels.to_vec(),
            pending: None,
            governed: false,
            transition_us,
            clock,
        }
    }

    /// The level index in effect now.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The frequency in effect now.
    pub fn frequency(&self) -> u32 {
        self.levels[self.level]
    }

    /// True while the governor, not a pinned config, chooses the level.
    pub fn governed(&self) -> bool {
        self.governed
    }

    /// When a pending change takes effect.
    pub fn next_change(&self) -> Option<u64> {
        self.pending.map(|(at, _)| at)
    }

    /// Applies a pending change that is due at `now`; true when the level changed.
    pub fn settle(&mut self, now: u64) -> bool {
        match self.pending {
            Some((at, index)) if at <= now => {
                self.pending = None;
                let changed = index != self.level;
                self.level = index;
                changed
            }
            _ => false,
        }
    }

    /// A governor's choice: takes effect after the transition delay like any
    /// other, without taking the knob from the governor.
    pub fn govern(&mut self, index: usize) {
        let target = self.pending.map_or(self.level, |(_, i)| i);
        if index != target && index < self.levels.len() {
            self.pending = Some((self.clock.get().saturating_add(self.transition_us), index));
        }
    }
}

impl FrequencyKnob for SimKnob {
    type Error = NoSuchLevel;

    fn knob(&self) -> Knob {
        self.knob
    }

    fn levels(&self) -> &[u32] {
        &self.levels
    }

    fn set_level(&mut self, index: usize) -> Result<(), NoSuchLevel> {
        if index >= self.levels.len() {
            return Err(NoSuchLevel {
                knob: self.knob,
                index,
                levels: self.levels.len(),
            });
        }
        self.governed = false;
        self.govern(index);
        Ok(())
    }

    fn read_back(&mut self) -> Result<u32, NoSuchLevel> {
        self.settle(self.clock.get());
        Ok(self.frequency())
    }

    fn hand_over(&mut self) -> Result<(), NoSuchLevel> {
        self.governed = true;
        Ok(())
    }
}

/// Governor sampling periods, microseconds.
pub mod period {
    /// schedutil re-evaluates at most every 10 ms (its rate limit on Tegra kernels).
    pub const CPU_US: u64 = 10_000;
    /// nvhost_podgov samples GPU load every 50 ms.
    pub const GPU_US: u64 = 50_000;
}

/// schedutil-like CPU governor: the next level from the *current* one and the
/// utilisation of the last period, as the kernel's `get_next_freq` does for
/// utilisation that is not frequency-invariant: `f = 1.25 * f_cur * util`, the
/// lowest level at or above it (1.25: the tipping point at 80 % busy).
///
/// The simulator's utilisation is the busy share of the period at the clock
/// that ran it (raw, not scaled to the maximum clock), so the kernel's other
/// form, `1.25 * f_max * util` for frequency-invariant utilisation, would ask
/// for too high a clock whenever the CPU runs below its maximum: 50 % busy at
/// the lowest clock is not 50 % of the top clock's capacity.
pub fn schedutil(levels: &[u32], current: usize, util: f64) -> usize {
    let Some(&f_cur) = levels.get(current).or(levels.last()) else {
        return 0;
    };
    let target = 1.25 * f64::from(f_cur) * util.clamp(0.0, 1.0);
    levels
        .iter()
        .position(|&f| f64::from(f) >= target)
        .unwrap_or(levels.len().saturating_sub(1))
}

/// nvhost_podgov-like GPU governor: scales the clock so that load would sit at
/// the 70 % target; goes up at once, down only after two low samples in a row
/// (the driver's hysteresis against flapping).
#[derive(Debug, Clone, Default)]
pub struct PodGov {
    low_samples: u32,
}

impl PodGov {
    /// Load the governor aims for.
    pub const TARGET: f64 = 0.7;

    /// The next level index given the current one and the load of the last sample.
    pub fn next(&mut self, levels: &[u32], current: usize, load: f64) -> usize {
        let f = levels[current] as f64 * load.clamp(0.0, 1.0) / Self::TARGET;
        let want = levels
            .iter()
            .position(|&l| l as f64 >= f)
            .unwrap_or(levels.len() - 1);
        if want >= current {
            self.low_samples = 0;
            want
        } else {
            self.low_samples += 1;
            if self.low_samples >= 2 {
                self.low_samples = 0;
                want
            } else {
                current
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_changes_take_the_transition_delay() {
        let clock = VirtualClock::default();
        let mut k = SimKnob::new(Knob::Cpu, &[100, 200, 300], 1_000, clock.clone());
        assert_eq!(k.read_back(), Ok(300));
        k.set_level(0).unwrap();
        assert_eq!(k.next_change(), Some(1_000));
        clock.set(999);
        assert_eq!(k.read_back(), Ok(300));
        clock.set(1_000);
        assert_eq!(k.read_back(), Ok(100));
        assert_eq!(
            k.set_level(3),
            Err(NoSuchLevel {
                knob: Knob::Cpu,
                index: 3,
                levels: 3
            })
        );
        k.hand_over().unwrap();
        assert!(k.governed());
        k.set_level(1).unwrap();
        assert!(
            !k.governed(),
            "pinning takes the knob back from the governor"
        );
    }

    #[test]
    fn schedutil_scales_the_current_frequency() {
        let levels = [100, 200, 300, 400];
        assert_eq!(schedutil(&levels, 3, 0.0), 0);
        assert_eq!(schedutil(&levels, 3, 0.5), 2); // 1.25 * 400 * 0.5 = 250 -> 300
        assert_eq!(schedutil(&levels, 3, 1.0), 3);
        // Half busy at 200 is 125 worth of work: the lowest level above it.
        assert_eq!(schedutil(&levels, 1, 0.5), 1); // 1.25 * 200 * 0.5 = 125 -> 200
        assert_eq!(schedutil(&levels, 1, 0.3), 0); // 75 -> 100
        // Fully busy: one step of 25 % at a time, as the kernel ramps.
        assert_eq!(schedutil(&levels, 0, 1.0), 1); // 125 -> 200
        assert_eq!(schedutil(&levels, 2, 1.0), 3); // 375 -> 400
        assert_eq!(schedutil(&[], 0, 1.0), 0);
    }

    #[test]
    fn podgov_rises_at_once_and_falls_after_two_low_samples() {
        let levels = [100, 200, 300, 400];
        let mut g = PodGov::default();
        assert_eq!(g.next(&levels, 1, 1.0), 2); // 200 / 0.7 = 286 -> 300
        assert_eq!(g.next(&levels, 2, 0.1), 2);
        assert_eq!(g.next(&levels, 2, 0.1), 0);
    }
}
