//! Energy from power samples: a sampling thread and a trapezoid integrator.
//!
//! A [`Sampler`] reads a [`PowerSource`] at a fixed period (default 1 ms, never
//! faster than the sensor's own update interval), timestamps each sample on a
//! [`Clock`] it shares with the caller, and feeds an [`EnergyIntegrator`]. It
//! implements core's [`EnergyMeter`]: `energy_j(now)` takes `now` on the same
//! clock and attributes energy up to that exact instant, interpolating power
//! linearly between the two samples around it.
//!
//! The integrator is pure (samples in, joules out), so it is tested on virtual
//! time; the thread only adds reading the clock and sleeping.

use ecoedge_core::board::EnergyMeter;
use ecoedge_core::time::Instant;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// A clock giving core [`Instant`]s (microseconds since an origin).
pub trait Clock: Clone + Send + 'static {
    /// The time now.
    fn now(&self) -> Instant;
}

/// The monotonic OS clock, as microseconds since an origin the caller chooses:
/// give the sampler and the service loop the same `MonotonicClock` (it is `Copy`)
/// and their instants compare directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonotonicClock {
    origin: std::time::Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self::with_origin(std::time::Instant::now())
    }

    /// A clock whose origin is `origin` (e.g. the service's start).
    pub fn with_origin(origin: std::time::Instant) -> Self {
        MonotonicClock { origin }
    }

    /// The origin.
    pub fn origin(&self) -> std::time::Instant {
        self.origin
    }

    /// `t` on this clock (zero if `t` is before the origin).
    pub fn instant(&self, t: std::time::Instant) -> Instant {
        let micros = t.saturating_duration_since(self.origin).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        self.instant(std::time::Instant::now())
    }
}

/// Something that reads power now.
pub trait PowerSource: Send + 'static {
    /// Why a read failed.
    type Error: fmt::Display;

    /// The power now, in watts.
    fn power_w(&mut self) -> Result<f64, Self::Error>;

    /// How often the sensor produces a new value, if known: sampling faster only
    /// re-reads the same value.
    fn update_interval(&self) -> Option<Duration> {
        None
    }
}

/// Why an energy figure is not available.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SamplerError {
    /// No sample has been taken yet.
    #[error("no power sample yet")]
    NoSamples,
    /// The instant is older than the oldest sample kept.
    #[error("{asked} is before the oldest power sample kept ({oldest}); raise the history length")]
    Evicted {
        /// The instant asked for.
        asked: Instant,
        /// The oldest sample kept.
        oldest: Instant,
    },
    /// The sensor failed: at start, or for so long that extrapolating the last
    /// sample would be a guess.
    #[error("power sensor failed: {0}")]
    Sensor(String),
    /// The sampling thread could not be started.
    #[error("cannot start the sampling thread: {0}")]
    Thread(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    t: Instant,
    power_w: f64,
    /// Energy from the first sample to this one.
    energy_j: f64,
}

/// Trapezoid integration of timestamped power samples, with a bounded history.
#[derive(Debug, Clone)]
pub struct EnergyIntegrator {
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl EnergyIntegrator {
    /// Keeps the last `capacity` samples (at least 2); queries must fall within
    /// them or after the last.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2);
        EnergyIntegrator {
            samples: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds a sample. One not later than the last is ignored (the clock is
    /// monotonic, so only a caller's mistake produces it).
    pub fn push(&mut self, t: Instant, power_w: f64) {
        let energy_j = match self.samples.back() {
            None => 0.0,
            Some(last) if t <= last.t => return,
            Some(last) => {
                last.energy_j + 0.5 * (last.power_w + power_w) * (t - last.t).as_secs_f64()
            }
        };
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            t,
            power_w,
            energy_j,
        });
    }

    /// Number of samples kept.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Time of the latest sample.
    pub fn latest(&self) -> Option<Instant> {
        self.samples.back().map(|s| s.t)
    }

    /// Energy in joules from the first sample ever pushed to `t`. Before it: 0.
    /// Between two samples: the trapezoid up to `t` under the straight line
    /// joining them. After the last: the last power held (the sampler is at
    /// most one period behind).
    pub fn energy_at(&self, t: Instant) -> Result<f64, SamplerError> {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return Err(SamplerError::NoSamples);
        };
        if t >= last.t {
            return Ok(last.energy_j + last.power_w * (t - last.t).as_secs_f64());
        }
        if t < first.t {
            return if first.energy_j == 0.0 {
                Ok(0.0)
            } else {
                Err(SamplerError::Evicted {
                    asked: t,
                    oldest: first.t,
                })
            };
        }
        // first.t <= t < last.t: the sample at or before t, and the next one.
        let i = self.samples.partition_point(|s| s.t <= t) - 1;
        let (a, b) = (self.samples[i], self.samples[i + 1]);
        let dt = (t - a.t).as_secs_f64();
        let span = (b.t - a.t).as_secs_f64();
        let p_t = a.power_w + (b.power_w - a.power_w) * dt / span;
        Ok(a.energy_j + 0.5 * (a.power_w + p_t) * dt)
    }

    /// Energy in joules between `from` and `to` (0 if `to` is not after `from`).
    pub fn energy_between(&self, from: Instant, to: Instant) -> Result<f64, SamplerError> {
        if to <= from {
            return Ok(0.0);
        }
        Ok(self.energy_at(to)? - self.energy_at(from)?)
    }
}

/// How a [`Sampler`] samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerConfig {
    /// Sampling period; raised to the sensor's update interval when that is longer.
    pub period: Duration,
    /// How far back energy can be asked for.
    pub history: Duration,
}

impl Default for SamplerConfig {
    /// 1 ms period, 60 s of history (60 000 samples, under 2 MB).
    fn default() -> Self {
        SamplerConfig {
            period: Duration::from_millis(1),
            history: Duration::from_secs(60),
        }
    }
}

/// The longest sampling period, whatever the sensor's update interval: an
/// INA3221 averaging 1024 conversions of 8.244 ms on three channels updates
/// every 50 s, and sampling at that pace would leave one sample per run (and
/// a meter that looks dead for minutes). Reading more often than the sensor
/// updates only re-reads its latest average, which costs one read.
pub const MAX_PERIOD: Duration = Duration::from_millis(100);

/// Counters of a running sampler.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplerStats {
    /// Samples taken.
    pub samples: u64,
    /// Failed reads and implausible values (skipped, not integrated).
    pub errors: u64,
    /// Seconds between good samples that had failed reads between them:
    /// the energy there is interpolated. A gap still open is counted up to
    /// now.
    pub gaps_s: f64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct State {
    integrator: EnergyIntegrator,
    stats: SamplerStats,
    /// True from a failed read to the next good sample: a gap is open.
    failing: bool,
}

impl State {
    /// A good sample at `t`: integrated, and the gap it closes counted.
    fn sample(&mut self, t: Instant, power_w: f64) {
        if std::mem::take(&mut self.failing)
            && let Some(last) = self.integrator.latest()
        {
            self.stats.gaps_s += t.saturating_since(last).as_secs_f64();
        }
        self.integrator.push(t, power_w);
        self.stats.samples += 1;
    }

    /// A failed read (or an implausible value).
    fn error(&mut self, why: String) {
        self.failing = true;
        self.stats.errors += 1;
        self.stats.last_error = Some(why);
    }

    /// The counters, with a gap still open counted up to `now`.
    fn stats(&self, now: Instant) -> SamplerStats {
        let mut stats = self.stats.clone();
        if let (true, Some(last)) = (self.failing, self.integrator.latest()) {
            stats.gaps_s += now.saturating_since(last).as_secs_f64();
        }
        stats
    }
}

/// A power reading the integrator may take: finite and not negative. A
/// negative value is a fault (a shunt wired backwards, a driver's sign bug, a
/// corrupt read); integrating it would make energy run backwards, and
/// clamping it would report free work as measured.
fn plausible(power_w: f64) -> Result<f64, String> {
    if power_w.is_finite() && power_w >= 0.0 {
        Ok(power_w)
    } else {
        Err(format!(
            "implausible power reading {power_w} W (negative or not a number)"
        ))
    }
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A thread sampling a [`PowerSource`], integrating energy; an [`EnergyMeter`].
/// Stops and joins the thread on drop.
#[derive(Debug)]
pub struct Sampler<C: Clock> {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    clock: C,
    period: Duration,
    /// The last value `energy_j` returned, so it never decreases.
    last_energy_j: f64,
}

impl<C: Clock> Sampler<C> {
    /// Takes a first sample (so a dead sensor fails here, clearly), then starts
    /// the sampling thread.
    pub fn start<S: PowerSource>(
        mut source: S,
        clock: C,
        config: SamplerConfig,
    ) -> Result<Self, SamplerError> {
        let period = match source.update_interval() {
            Some(u) => config.period.max(u.min(MAX_PERIOD)),
            None => config.period,
        }
        .max(Duration::from_micros(1));
        let capacity = usize::try_from(config.history.as_micros() / period.as_micros())
            .unwrap_or(usize::MAX)
            .saturating_add(2);
        let mut integrator = EnergyIntegrator::new(capacity);
        let p = source
            .power_w()
            .map_err(|e| e.to_string())
            .and_then(plausible)
            .map_err(SamplerError::Sensor)?;
        let first = clock.now();
        integrator.push(first, p);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                integrator,
                stats: SamplerStats {
                    samples: 1,
                    ..SamplerStats::default()
                },
                failing: false,
            }),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            let clock = clock.clone();
            std::thread::Builder::new()
                .name("ecoedge-power".into())
                .spawn(move || run(source, clock, first, period, &shared))
                .map_err(|e| SamplerError::Thread(e.to_string()))?
        };
        Ok(Sampler {
            shared,
            thread: Some(thread),
            clock,
            period,
            last_energy_j: 0.0,
        })
    }

    /// The period actually used.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The clock the samples are stamped on.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Counters so far.
    pub fn stats(&self) -> SamplerStats {
        self.shared.lock().stats(self.clock.now())
    }

    /// Energy in joules between two instants on the sampler's clock.
    pub fn energy_between(&self, from: Instant, to: Instant) -> Result<f64, SamplerError> {
        self.shared.lock().integrator.energy_between(from, to)
    }
}

/// The sampling loop: absolute deadlines (no drift), a missed deadline skipped
/// rather than caught up in a burst; each sample stamped at the middle of its read.
/// Deadlines count from the first sample, not from when the thread got going.
fn run<S: PowerSource, C: Clock>(
    mut source: S,
    clock: C,
    first: Instant,
    period: Duration,
    shared: &Shared,
) {
    let step = core_duration(period);
    let mut next = first + step;
    while !shared.stop.load(Ordering::Acquire) {
        let now = clock.now();
        if now < next {
            std::thread::park_timeout(Duration::from_micros((next - now).as_micros()));
            continue;
        }
        // The clock was read just before the read: two clock reads per sample.
        let read = source.power_w().map_err(|e| e.to_string());
        let after = clock.now();
        let t = now + core_duration(Duration::from_micros((after - now).as_micros() / 2));
        let mut state = shared.lock();
        match read.and_then(plausible) {
            Ok(p) => state.sample(t, p),
            Err(why) => state.error(why),
        }
        drop(state);
        next = next + step;
        if next <= after {
            next = after + step;
        }
    }
}

fn core_duration(d: Duration) -> ecoedge_core::time::Duration {
    ecoedge_core::time::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl<C: Clock> EnergyMeter for Sampler<C> {
    type Error = SamplerError;

    /// Energy since the first sample up to `now` (on [`Sampler::clock`]), never
    /// decreasing. Fails if the sensor has produced nothing for 100 periods
    /// (at least 100 ms): the figure would be a guess.
    fn energy_j(&mut self, now: Instant) -> Result<f64, SamplerError> {
        let state = self.shared.lock();
        let stale = core_duration((self.period * 100).max(Duration::from_millis(100)));
        if let Some(latest) = state.integrator.latest()
            && now > latest + stale
        {
            let why = state.stats.last_error.clone();
            return Err(SamplerError::Sensor(
                why.unwrap_or_else(|| "no new sample".into()),
            ));
        }
        let e = state.integrator.energy_at(now)?;
        drop(state);
        self.last_energy_j = self.last_energy_j.max(e);
        Ok(self.last_energy_j)
    }
}

impl<C: Clock> Drop for Sampler<C> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(us: u64) -> Instant {
        Instant::from_micros(us)
    }

    #[test]
    fn trapezoids_and_boundary_interpolation() {
        let mut i = EnergyIntegrator::new(16);
        assert_eq!(i.energy_at(at(0)), Err(SamplerError::NoSamples));
        i.push(at(1_000_000), 2.0);
        i.push(at(2_000_000), 4.0);
        assert_eq!(i.energy_at(at(0)), Ok(0.0));
        assert_eq!(i.energy_at(at(2_000_000)), Ok(3.0));
        // Half way: power 3 W, area (2 + 3) / 2 * 0.5 s.
        assert_eq!(i.energy_at(at(1_500_000)), Ok(1.25));
        // After the last sample the last power is held.
        assert_eq!(i.energy_at(at(3_000_000)), Ok(7.0));
        assert_eq!(i.energy_between(at(1_500_000), at(2_000_000)), Ok(1.75));
        i.push(at(2_000_000), 100.0);
        assert_eq!(i.len(), 2, "a sample not after the last is ignored");
    }

    #[test]
    fn old_instants_are_refused_once_evicted() {
        let mut i = EnergyIntegrator::new(2);
        for s in 0..4 {
            i.push(at(s * 1_000_000), 1.0);
        }
        assert_eq!(i.energy_at(at(3_000_000)), Ok(3.0));
        assert_eq!(i.energy_at(at(2_500_000)), Ok(2.5));
        assert_eq!(
            i.energy_at(at(1_000_000)),
            Err(SamplerError::Evicted {
                asked: at(1_000_000),
                oldest: at(2_000_000)
            })
        );
    }

    /// A source whose power the test sets, with a given update interval.
    struct Dial(Arc<Mutex<f64>>, Option<Duration>);

    impl PowerSource for Dial {
        type Error = String;

        fn power_w(&mut self) -> Result<f64, String> {
            Ok(*self.0.lock().unwrap())
        }

        fn update_interval(&self) -> Option<Duration> {
            self.1
        }
    }

    fn dial(w: f64, interval: Option<Duration>) -> (Arc<Mutex<f64>>, Dial) {
        let power = Arc::new(Mutex::new(w));
        (Arc::clone(&power), Dial(power, interval))
    }

    #[test]
    fn a_slow_sensor_is_still_sampled_every_max_period() {
        let (_, source) = dial(5.0, Some(Duration::from_secs(50)));
        let s = Sampler::start(source, MonotonicClock::new(), SamplerConfig::default()).unwrap();
        assert_eq!(s.period(), MAX_PERIOD);
    }

    #[test]
    fn negative_power_is_an_error_not_zero_joules() {
        let (_, source) = dial(-4.8, None);
        let e = Sampler::start(source, MonotonicClock::new(), SamplerConfig::default());
        assert!(matches!(e, Err(SamplerError::Sensor(why)) if why.contains("negative")));

        let (power, source) = dial(5.0, None);
        let clock = MonotonicClock::new();
        let mut s = Sampler::start(source, clock, SamplerConfig::default()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        *power.lock().unwrap() = -5.0;
        std::thread::sleep(Duration::from_millis(300));
        let stats = s.stats();
        assert!(stats.errors > 10, "{stats:?}");
        assert!(stats.gaps_s > 0.2, "{stats:?}");
        assert!(stats.last_error.unwrap().contains("negative"));
        // Stale for over 100 ms: the figure would be a guess, so it fails.
        assert!(matches!(
            s.energy_j(clock.now()),
            Err(SamplerError::Sensor(_))
        ));
        *power.lock().unwrap() = 5.0;
        std::thread::sleep(Duration::from_millis(20));
        let e = s.energy_j(clock.now()).unwrap();
        assert!(e > 1.0, "energy interpolated over the gap at 5 W: {e}");
        let stats = s.stats();
        assert!((0.2..0.5).contains(&stats.gaps_s), "{stats:?}");
    }
}
