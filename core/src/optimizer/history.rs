//! A bounded history of measured costs, trimmed by age.

use heapless::Vec;

use crate::load::{Replayed, Service};
use crate::space::Config;

/// One measurement: which config, its cost, and the window it was measured in.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Entry {
    /// The config measured.
    pub config: Config,
    /// The normalised cost its window measured.
    pub measured: f64,
    /// Its load-independent figures, when the window had them.
    pub service: Option<Service>,
    /// Its replay under the latest load, as last set by [`History::reprice`].
    pub priced: Option<Replayed>,
    /// Index of the window that measured it.
    pub window: u32,
}

impl Entry {
    /// The cost decisions use: as priced under the latest load, else as
    /// measured.
    pub fn cost(&self) -> f64 {
        self.priced.map_or(self.measured, |p| p.cost)
    }
}

/// The latest cost of at most `N` configs, with the window each was measured in.
///
/// EcoGD trusts a cost only while it is *fresh* (measured within the last
/// `memory` windows): the load moves, so old costs lie. Since every window
/// measures one config, at most `memory` fresh entries can exist, so a capacity of
/// `memory` never evicts a fresh entry; when full anyway, the oldest entry goes.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct History<const N: usize> {
    entries: Vec<Entry, N>,
}

impl<const N: usize> History<N> {
    /// An empty history.
    pub const fn new() -> Self {
        History {
            entries: Vec::new(),
        }
    }

    /// Records `cost` of `config` measured in `window`, replacing an older cost of
    /// the same config; evicts the oldest entry when full. Bounded: O(N).
    pub fn record(&mut self, config: Config, cost: f64, service: Option<Service>, window: u32) {
        let entry = Entry {
            config,
            measured: cost,
            service,
            priced: None,
            window,
        };
        if let Some(e) = self.entries.iter_mut().find(|e| e.config == config) {
            *e = entry;
            return;
        }
        if self.entries.is_full() {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.window)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                self.entries.swap_remove(i);
            }
        }
        // Cannot fail: there is room now (or N is 0 and nothing is kept).
        let _ = self.entries.push(entry);
    }

    /// The cost of `config` if it was measured less than `memory` windows before
    /// window `now`.
    pub fn fresh(&self, config: &Config, now: u32, memory: u32) -> Option<f64> {
        self.fresh_entry(config, now, memory).map(Entry::cost)
    }

    /// The entry of `config` if it was measured less than `memory` windows before
    /// window `now`.
    pub fn fresh_entry(&self, config: &Config, now: u32, memory: u32) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.config == *config && now.saturating_sub(e.window) < memory)
    }

    /// Prices every entry by `replay` of its config and service figures; an
    /// entry without a price goes back to its measured cost.
    pub fn reprice(&mut self, replay: impl Fn(&Config, &Service) -> Option<Replayed>) {
        for e in &mut self.entries {
            e.priced = e.service.and_then(|s| replay(&e.config, &s));
        }
    }

    /// Drops every entry measured `memory` or more windows before window `now`.
    pub fn trim(&mut self, now: u32, memory: u32) {
        self.entries
            .retain(|e| now.saturating_sub(e.window) < memory);
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entries, in no particular order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(i: usize) -> Config {
        Config::default().with(0, i)
    }

    #[test]
    fn freshness_replacement_eviction_and_trim() {
        let mut h: History<2> = History::new();
        h.record(c(1), 1.0, None, 0);
        h.record(c(1), 2.0, None, 3);
        assert_eq!(h.len(), 1);
        assert_eq!(h.fresh(&c(1), 3, 1), Some(2.0));
        assert_eq!(h.fresh(&c(1), 4, 1), None);
        assert_eq!(h.fresh(&c(1), 22, 20), Some(2.0));
        assert_eq!(h.fresh(&c(1), 23, 20), None);
        h.record(c(2), 5.0, None, 4);
        h.record(c(3), 6.0, None, 5);
        assert_eq!(h.fresh(&c(1), 5, 20), None, "the oldest was evicted");
        assert_eq!(h.fresh(&c(2), 5, 20), Some(5.0));
        h.trim(24, 20);
        assert_eq!(h.entries().len(), 1);
        // Repricing replaces costs where there is a price, and goes back to the
        // measured cost where there is none.
        let fast = crate::load::Service {
            fixed_s: 0.1,
            per_request_s: 0.0,
            active_w: 1.0,
            idle_w: None,
        };
        h.record(c(4), 7.0, Some(fast), 24);
        h.reprice(|config, s| {
            (config.index(0) == 4).then_some(Replayed {
                cost: s.fixed_s,
                backlog_s: 0.0,
            })
        });
        assert_eq!(h.fresh(&c(4), 24, 20), Some(0.1));
        assert_eq!(h.fresh(&c(3), 24, 20), Some(6.0));
        h.reprice(|_, _| None);
        assert_eq!(h.fresh(&c(4), 24, 20), Some(7.0));
        h.clear();
        assert!(h.is_empty());
        let mut none: History<0> = History::new();
        none.record(c(1), 1.0, None, 0);
        assert!(none.is_empty());
    }
}
