//! Pricing a config under the recent load: a replay of the last arrivals.
//!
//! A window's cost measures the load as much as the config. On a trace the same
//! config costs several times more in a quiet window than in a busy one: full
//! batches take longer to fill, and idle power is shared by fewer requests. So
//! comparing the costs of two windows compares two loads. What a window measures
//! of its config that does *not* depend on the load is its [`Service`]: how long
//! a batch runs, and the power drawn while it runs and while the board idles at
//! those clocks.
//!
//! [`Load::replay`] serves the arrivals of the last requests through the batch
//! rule with a config's service figures, in one pass (a Lindley recursion). Every
//! config an optimizer compares is then priced under the very same arrivals.
//! Requests still waiting are part of the load too: a surge shows before its
//! requests are served.

use crate::cost::{Alpha, Baseline, EnergyScope};
use crate::time::{Duration, Instant};

/// Arrivals the controller keeps for replay by default (32 KiB). About ten
/// minutes at ten requests a second: long enough that a 90 s traffic-signal
/// cycle or a one-minute spike is a part of the sample, not all of it. Measured
/// on the paper suite (before waiting requests and the overload escape were
/// added): 256, 416, 1024 and 2048 arrivals all did worse on the traces.
pub const LOAD_SAMPLE: usize = 4096;

/// Idle time below which a window's idle power is not trusted, seconds: ten
/// samples of a 1 kHz power sensor. Shorter idle readings are mostly
/// quantisation.
const MIN_IDLE_S: f64 = 0.01;

/// What a window measured of its config that does not depend on the load.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Service {
    /// Time a batch takes whatever its size, seconds.
    pub fixed_s: f64,
    /// Time each request adds to a batch, seconds. Zero when every batch of
    /// the window had the same size (the full-batch rule): then `fixed_s` is
    /// the time of a batch of that size.
    pub per_request_s: f64,
    /// Mean power while a batch runs, watts.
    pub active_w: f64,
    /// Mean power between batches, watts; `None` when the board idled too
    /// little to tell ([`Load::replay`] then charges idle time at `active_w`, an
    /// upper bound).
    pub idle_w: Option<f64>,
}

impl Service {
    /// Time a batch of `size` requests takes, seconds.
    pub fn batch_s(&self, size: usize) -> f64 {
        self.fixed_s + self.per_request_s * size as f64
    }
}

/// Sums over the batches of a window, turned into [`Service`] figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServiceSums {
    batches: u32,
    /// Requests, squared requests, and requests times time, over batches: a
    /// least-squares line of batch time against batch size.
    requests: f64,
    requests_sq: f64,
    requests_busy: f64,
    busy_s: f64,
    active_j: f64,
    idle_s: f64,
    idle_j: f64,
}

impl ServiceSums {
    /// Adds one batch of `size` requests: it ran `busy_s` and drew `active_j`,
    /// after the board idled `idle_s` since the previous batch and drew
    /// `idle_j` then.
    pub fn add(&mut self, size: usize, busy_s: f64, active_j: f64, idle_s: f64, idle_j: f64) {
        let k = size as f64;
        self.batches = self.batches.saturating_add(1);
        self.requests += k;
        self.requests_sq += k * k;
        self.requests_busy += k * busy_s;
        self.busy_s += busy_s;
        self.active_j += active_j;
        self.idle_s += idle_s;
        self.idle_j += idle_j;
    }

    /// The figures, once a batch ran for a measurable time.
    pub fn service(&self) -> Option<Service> {
        if self.busy_s <= 0.0 {
            return None;
        }
        let n = f64::from(self.batches);
        let (size, time) = (self.requests / n, self.busy_s / n);
        let spread = self.requests_sq / n - size * size;
        // Batches of different sizes (released by a maximum wait) give the
        // slope; clamped so that neither it nor the fixed part is negative.
        let per_request_s = if spread > 1e-9 {
            ((self.requests_busy / n - size * time) / spread).clamp(0.0, time / size.max(1.0))
        } else {
            0.0
        };
        Some(Service {
            fixed_s: time - per_request_s * size,
            per_request_s,
            active_w: self.active_j / self.busy_s,
            idle_w: (self.idle_s >= MIN_IDLE_S).then(|| self.idle_j / self.idle_s),
        })
    }
}

/// The arrivals of the last `N` requests served, a ring written once per
/// request. (heapless's `HistoryBuf` does the same but measured 7 ns a write
/// on the controller's path, against about 1 ns for this plain array.)
#[derive(Debug, Clone)]
pub struct Arrivals<const N: usize> {
    ring: [Instant; N],
    next: usize,
    len: usize,
}

impl<const N: usize> Default for Arrivals<N> {
    fn default() -> Self {
        Arrivals {
            ring: [Instant::ZERO; N],
            next: 0,
            len: 0,
        }
    }
}

impl<const N: usize> Arrivals<N> {
    /// Records an arrival, forgetting the oldest when full; nothing when `N`
    /// is 0.
    pub fn push(&mut self, arrival: Instant) {
        if let Some(slot) = self.ring.get_mut(self.next) {
            *slot = arrival;
            self.next = if self.next + 1 == N { 0 } else { self.next + 1 };
            self.len = (self.len + 1).min(N);
        }
    }

    /// The arrivals kept, oldest first, as two slices.
    pub fn as_slices(&self) -> (&[Instant], &[Instant]) {
        if self.len < N {
            (&self.ring[..self.len], &[])
        } else {
            (&self.ring[self.next..], &self.ring[..self.next])
        }
    }
}

/// The arrivals replayed: those of the last requests served, oldest first (they
/// are served in arrival order), then the requests still waiting, which arrived
/// after the newest of them and are placed evenly until they were counted.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    older: &'a [Instant],
    newer: &'a [Instant],
    origin: Instant,
    newest_s: f64,
    spread_s: f64,
    waiting: usize,
    /// Sum of the kept arrivals, microseconds after the oldest.
    kept_us: u64,
}

impl<'a> Sample<'a> {
    /// The `arrivals` served, and `waiting` requests counted at `seen_at`.
    pub fn new<const N: usize>(
        arrivals: &'a Arrivals<N>,
        waiting: usize,
        seen_at: Instant,
    ) -> Self {
        let (older, newer) = arrivals.as_slices();
        let origin = older.first().copied().unwrap_or(Instant::ZERO);
        let micros = |t: &Instant| t.saturating_since(origin).as_micros();
        let newest_s = newer.last().or(older.last()).map_or(0, micros) as f64 * 1e-6;
        let seen_s = seen_at.saturating_since(origin).as_secs_f64();
        Sample {
            older,
            newer,
            origin,
            newest_s,
            spread_s: (seen_s - newest_s).max(0.0) / waiting.max(1) as f64,
            waiting,
            kept_us: older.iter().chain(newer).map(micros).sum(),
        }
    }

    /// A whole run's `arrivals` (in order), none waiting: for pricing a
    /// config over more arrivals than a ring holds (the oracle's).
    pub fn of_run(arrivals: &'a [Instant]) -> Self {
        let origin = arrivals.first().copied().unwrap_or(Instant::ZERO);
        let micros = |t: &Instant| t.saturating_since(origin).as_micros();
        Sample {
            older: arrivals,
            newer: &[],
            origin,
            newest_s: arrivals.last().map_or(0, micros) as f64 * 1e-6,
            spread_s: 0.0,
            waiting: 0,
            kept_us: arrivals.iter().map(micros).sum(),
        }
    }

    /// Requests waiting when the sample was taken.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    fn kept(&self) -> usize {
        self.older.len() + self.newer.len()
    }

    fn micros(&self, i: usize) -> u64 {
        let t = match self.older.get(i) {
            Some(t) => t,
            None => &self.newer[i - self.older.len()],
        };
        t.saturating_since(self.origin).as_micros()
    }

    /// Arrival `i`, seconds after the oldest.
    fn at(&self, i: usize) -> f64 {
        let kept = self.kept();
        if i < kept {
            self.micros(i) as f64 * 1e-6
        } else {
            self.newest_s + (i + 1 - kept) as f64 * self.spread_s
        }
    }

    /// Sum of the first `n` arrivals, seconds after the oldest.
    fn sum(&self, n: usize) -> f64 {
        let kept = self.kept();
        let kept_us = self.kept_us - (n.min(kept)..kept).map(|i| self.micros(i)).sum::<u64>();
        let m = n.saturating_sub(kept) as f64;
        kept_us as f64 * 1e-6 + m * self.newest_s + self.spread_s * m * (m + 1.0) / 2.0
    }
}

/// The recent load, and how it is served and priced: what [`Load::replay`] needs.
#[derive(Debug, Clone, Copy)]
pub struct Load<'a> {
    /// The arrivals.
    pub sample: Sample<'a>,
    /// The cost normalisation in force.
    pub baseline: Baseline,
    /// The energy/latency weight.
    pub alpha: Alpha,
    /// Which energy requests are charged.
    pub scope: EnergyScope,
    /// The batch rule's maximum wait, if any.
    pub max_wait: Option<Duration>,
}

/// What a replay found.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Replayed {
    /// Mean cost per request served.
    pub cost: f64,
    /// Work left when the last request arrived, seconds: a config that keeps up
    /// leaves at most a batch running, one that cannot leaves a backlog.
    pub backlog_s: f64,
}

impl Load<'_> {
    /// Serves the sample in batches of `batch` with `service`, the queue empty
    /// at the oldest arrival. Requests left in a partial batch at the end under
    /// the full-batch rule are not priced: their wait depends on arrivals not
    /// yet seen. `None` when no batch forms. Work: one step per batch, and one
    /// per request of a batch released by the maximum wait.
    pub fn replay(&self, batch: u32, service: &Service) -> Option<Replayed> {
        let sample = &self.sample;
        if sample.kept() == 0 {
            return None;
        }
        let n = sample.kept() + sample.waiting;
        let b = (batch as usize).max(1);
        let wait = self.max_wait.map(Duration::as_secs_f64);
        let (mut i, mut free) = (0, 0.0_f64);
        // Completion times summed over requests, busy and idle time.
        let (mut done_s, mut busy_s, mut idle_s) = (0.0, 0.0, 0.0);
        while i < n {
            let last = (i + b).min(n) - 1;
            let last_at = sample.at(last);
            let ready = match (i + b <= n, wait) {
                (true, Some(w)) => last_at.min(sample.at(i) + w),
                (true, None) => last_at,
                (false, Some(w)) => sample.at(i) + w,
                (false, None) => break,
            };
            let start = ready.max(free);
            // The batch takes what has arrived by its start, up to `b`: all of
            // them for a full batch, at least request `i` (arrived by `ready`)
            // for one released by the maximum wait.
            let mut j = last + 1;
            if last_at > start {
                j = i + 1;
                while j < last && sample.at(j) <= start {
                    j += 1;
                }
            }
            let run_s = service.batch_s(j - i);
            let done = start + run_s;
            done_s += (j - i) as f64 * done;
            busy_s += run_s;
            idle_s += (start - free).max(0.0);
            free = done;
            i = j;
        }
        if i == 0 {
            return None;
        }
        let active_j = busy_s * service.active_w;
        let energy_j = match self.scope {
            EnergyScope::Active => active_j,
            EnergyScope::Total => active_j + idle_s * service.idle_w.unwrap_or(service.active_w),
        };
        // Latency is completion minus arrival, summed over the `i` served.
        let served = i as f64;
        let latency_s = (done_s - sample.sum(i)) / served;
        Some(Replayed {
            cost: self
                .alpha
                .cost(&self.baseline, energy_j / served, latency_s),
            backlog_s: (free - sample.at(n - 1)).max(0.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &[f64]) -> Arrivals<8> {
        let mut a = Arrivals::default();
        for &t in s {
            a.push(Instant::from_micros((t * 1e6) as u64));
        }
        a
    }

    fn load(arrivals: &Arrivals<8>, waiting: usize, seen_at_s: u64) -> Load<'_> {
        let seen_at = Instant::from_micros(seen_at_s * 1_000_000);
        Load {
            sample: Sample::new(arrivals, waiting, seen_at),
            baseline: Baseline::new(1.0, 1.0).unwrap(),
            alpha: Alpha::default(),
            scope: EnergyScope::Total,
            max_wait: None,
        }
    }

    const SERVICE: Service = Service {
        fixed_s: 0.5,
        per_request_s: 0.0,
        active_w: 2.0,
        idle_w: Some(1.0),
    };

    #[test]
    fn service_figures_from_sums() {
        let mut s = ServiceSums::default();
        assert_eq!(s.service(), None);
        s.add(4, 0.5, 1.0, 0.0, 0.0);
        s.add(4, 1.5, 3.0, 0.005, 0.5);
        // One batch size: its mean time, nothing per request.
        let f = s.service().unwrap();
        assert_eq!((f.fixed_s, f.per_request_s), (1.0, 0.0));
        assert_eq!((f.batch_s(4), f.active_w, f.idle_w), (1.0, 2.0, None));
        s.add(4, 1.0, 2.0, 0.495, 0.5);
        assert_eq!(s.service().unwrap().idle_w, Some(2.0));
        // Batches of 1, 2 and 3 taking 0.3, 0.5 and 0.7 s: 0.1 s + 0.2 s each.
        let mut s = ServiceSums::default();
        for k in 1..=3 {
            s.add(k, 0.1 + 0.2 * k as f64, 0.0, 0.0, 0.0);
        }
        let f = s.service().unwrap();
        assert!(
            (f.fixed_s - 0.1).abs() < 1e-12 && (f.per_request_s - 0.2).abs() < 1e-12,
            "{f:?}"
        );
    }

    #[test]
    fn replays_full_batches_by_hand() {
        // Arrivals at 0, 1, 2, 3 s in batches of 2 taking 0.5 s: the batches run
        // 1-1.5 s and 3-3.5 s, latencies 1.5, 0.5, 1.5, 0.5; idle 1 s + 1.5 s.
        let a = secs(&[0.0, 1.0, 2.0, 3.0]);
        let r = load(&a, 0, 3).replay(2, &SERVICE).unwrap();
        let energy = (2.0 * 0.5 * 2.0 + 2.5 * 1.0) / 4.0;
        assert!((r.cost - 0.5 * energy - 0.5 * 1.0).abs() < 1e-9, "{r:?}");
        assert!((r.backlog_s - 0.5).abs() < 1e-9);
        // The active scope leaves idle energy out.
        let active = Load {
            scope: EnergyScope::Active,
            ..load(&a, 0, 3)
        };
        let r = active.replay(2, &SERVICE).unwrap();
        assert!((r.cost - 0.5 * 0.5 - 0.5).abs() < 1e-9);
        // A partial batch at the end is not priced; no full batch, no price.
        assert_eq!(
            load(&a, 0, 3).replay(3, &SERVICE).map(|r| r.cost > 0.0),
            Some(true)
        );
        assert_eq!(load(&a, 0, 3).replay(5, &SERVICE), None);
        assert_eq!(load(&secs(&[]), 0, 3).replay(1, &SERVICE), None);
    }

    #[test]
    fn maximum_wait_releases_partial_batches() {
        let a = secs(&[0.0, 1.0, 2.0, 3.0]);
        let l = Load {
            max_wait: Some(Duration::from_millis(100)),
            ..load(&a, 0, 3)
        };
        // Batches of up to 4 leave after 0.1 s with one request each.
        let r = l.replay(4, &SERVICE).unwrap();
        let energy = (4.0 * 0.5 * 2.0 + (0.1 + 3.0 * 0.5) * 1.0) / 4.0;
        assert!((r.cost - 0.5 * energy - 0.5 * 0.6).abs() < 1e-9, "{r:?}");
        // A batch of one that takes 0.2 s less than one of four.
        let sized = Service {
            fixed_s: 0.3,
            per_request_s: 0.2 / 3.0,
            ..SERVICE
        };
        let r = l.replay(4, &sized).unwrap();
        let run = sized.batch_s(1);
        let energy = (4.0 * run * 2.0 + (0.1 + 3.0 * (1.0 - run)) * 1.0) / 4.0;
        assert!(
            (r.cost - 0.5 * energy - 0.5 * (0.1 + run)).abs() < 1e-9,
            "{r:?}"
        );
    }

    #[test]
    fn waiting_requests_count_as_a_backlog() {
        // One request served at 0 s, 10 more waiting by 1 s: a config that
        // serves one per 0.5 s is 4.5 s behind when the last one arrived.
        let a = secs(&[0.0]);
        let r = load(&a, 10, 1).replay(1, &SERVICE).unwrap();
        assert!((r.backlog_s - 4.5).abs() < 1e-9, "{r:?}");
        let calm = load(&a, 0, 1).replay(1, &SERVICE).unwrap();
        assert!(r.cost > 2.0 * calm.cost, "{r:?} {calm:?}");
    }

    #[test]
    fn a_run_replays_as_a_ring_of_the_same_arrivals() {
        let times = [0.0, 0.3, 1.0, 1.1, 2.5, 2.6, 2.7, 4.0];
        let ring = secs(&times);
        let run: Vec<Instant> = times
            .iter()
            .map(|&t| Instant::from_micros((t * 1e6) as u64))
            .collect();
        let whole = Load {
            sample: Sample::of_run(&run),
            ..load(&ring, 0, 4)
        };
        for b in 1..=4 {
            assert_eq!(
                whole.replay(b, &SERVICE),
                load(&ring, 0, 4).replay(b, &SERVICE),
                "batch {b}"
            );
        }
        assert_eq!(
            Load {
                sample: Sample::of_run(&[]),
                ..whole
            }
            .replay(1, &SERVICE),
            None
        );
    }

    #[test]
    fn a_full_ring_replays_oldest_first() {
        let mut a: Arrivals<8> = Arrivals::default();
        for i in 0..12 {
            a.push(Instant::from_micros(i * 1_000_000));
        }
        let (older, newer) = a.as_slices();
        assert_eq!((older.len(), newer.len()), (4, 4));
        assert_eq!(older[0], Instant::from_micros(4_000_000));
        let mut none: Arrivals<0> = Arrivals::default();
        none.push(Instant::ZERO);
        assert_eq!(none.as_slices(), (&[][..], &[][..]));
        // The last 8 arrivals, one a second, each served at once in 0.5 s.
        let r = load(&a, 0, 11).replay(1, &SERVICE).unwrap();
        let energy = 0.5 * 2.0 + 0.5 * 1.0 * 7.0 / 8.0;
        assert!((r.cost - 0.5 * energy - 0.5 * 0.5).abs() < 1e-9, "{r:?}");
    }
}
