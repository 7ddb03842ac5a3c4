//! The sans-IO controller: queue in, batches out, measurements in, configs out.
//!
//! [`Controller`] owns the batch buffer, the cost window, the baseline and the
//! optimizer. It never reads a clock or a sensor: the caller passes `now` and the
//! meter's cumulative energy, runs the batches it is handed, applies the configs it
//! is told to, and sleeps until [`Controller::poll_timeout`]. The request queue
//! stays outside, so arrivals can be pushed from another context.
//!
//! Phases: first *calibration* windows at the maximum config measure the baseline
//! `E0, L0` (skipped when a baseline is given); then every finished window is
//! handed to the optimizer, whose answer becomes the next config.
//!
//! ```
//! use ecoedge_core::prelude::*;
//!
//! let space = Space::new(&[Dimension::batch(4).unwrap()]).unwrap();
//! let settings = Settings { window: WindowSettings { requests: 8, warmup: 0, ..Default::default() }, ..Default::default() };
//! let mut ctl: Controller<u32, Fixed, 4> = Controller::new(space, settings, Fixed::max()).unwrap();
//! let mut queue: RingQueue<u32, 16> = RingQueue::new();
//! let mut batch = heapless::Vec::new();
//! for i in 0..4 {
//!     queue.push(Instant::from_micros(i), i as u32).unwrap();
//! }
//! let energy_j = 0.0;
//! assert_eq!(ctl.poll_batch(Instant::from_micros(4), energy_j, &mut queue, &mut batch), Ok(4));
//! // ... run the batch ...
//! let done = ctl.handle_batch_done(Instant::from_micros(30_000), 1.0).unwrap();
//! assert_eq!(done.served, 4);
//! ```

use core::fmt;

use heapless::Vec;

use crate::batch::BatchBuffer;
use crate::cost::{Baseline, CostError, EnergyScope};
use crate::load::{Arrivals, LOAD_SAMPLE, Load, Sample};
use crate::optimizer::Optimizer;
use crate::queue::{Request, RequestSource};
use crate::space::{Config, ConfigError, Knob, Space};
use crate::time::{Duration, Instant};
use crate::window::{CostWindow, WindowError, WindowReport, WindowSettings};

/// How the controller measures and when it hands over to the optimizer.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Settings {
    /// Window size, warm-up, alpha, energy scope.
    pub window: WindowSettings,
    /// Windows at the maximum config before the optimizer starts; the last one
    /// gives the baseline (default 1). Ignored when `baseline` is given.
    pub calibration_windows: u32,
    /// A known baseline: skips calibration.
    pub baseline: Option<Baseline>,
    /// Release a partial batch once its oldest request waited this long (default
    /// off: the paper releases full batches only).
    pub max_wait: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window: WindowSettings::default(),
            calibration_windows: 1,
            baseline: None,
            max_wait: None,
        }
    }
}

/// Why [`Controller::new`] refused its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SetupError {
    /// Window settings are unusable.
    Window(WindowError),
    /// No baseline was given and no calibration window was asked for.
    NoCalibration,
    /// The space's largest batch does not fit the batch buffer.
    BatchAboveCapacity {
        /// Largest batch level of the space.
        batch: u32,
        /// Batch buffer capacity `B`.
        capacity: usize,
    },
    /// A window must hold at least one full batch.
    WindowBelowBatch {
        /// Requests per window.
        window: u32,
        /// Largest batch level of the space.
        batch: u32,
    },
    /// The optimizer's first config is outside the space.
    Config(ConfigError),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Window(e) => e.fmt(f),
            SetupError::NoCalibration => {
                f.write_str("no baseline given and no calibration window asked for")
            }
            SetupError::BatchAboveCapacity { batch, capacity } => write!(
                f,
                "batch size {batch} is above the controller's batch capacity {capacity}"
            ),
            SetupError::WindowBelowBatch { window, batch } => write!(
                f,
                "a window of {window} requests is shorter than the largest batch ({batch})"
            ),
            SetupError::Config(e) => write!(f, "optimizer started at a bad config: {e}"),
        }
    }
}

impl core::error::Error for SetupError {}

/// A time or energy reading the controller refused; it changed nothing. Shared by
/// [`PollBatchError`] and [`BatchDoneError`], since both calls take readings. The
/// outer errors print it as their own message (no `source` chain), as the
/// crate's other wrapping errors do.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReadingError {
    /// An energy reading was NaN or infinite.
    EnergyNotFinite(f64),
    /// The cumulative energy reading went down.
    EnergyDecreased {
        /// The previous reading, joules.
        from: f64,
        /// This reading, joules.
        to: f64,
    },
    /// `now` is earlier than a time already seen.
    TimeWentBack {
        /// The latest time seen.
        latest: Instant,
        /// The time given.
        now: Instant,
    },
}

impl fmt::Display for ReadingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadingError::EnergyNotFinite(e) => write!(f, "energy reading {e} is not finite"),
            ReadingError::EnergyDecreased { from, to } => {
                write!(f, "cumulative energy went down from {from} J to {to} J")
            }
            ReadingError::TimeWentBack { latest, now } => {
                write!(f, "time went back from {latest} to {now}")
            }
        }
    }
}

impl core::error::Error for ReadingError {}

/// Why [`Controller::poll_batch`] refused the call; it changed nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PollBatchError {
    /// A batch is running: report it done before asking for another.
    BatchInFlight,
    /// `now` or the energy reading was refused.
    Reading(ReadingError),
}

impl fmt::Display for PollBatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PollBatchError::BatchInFlight => f.write_str("a batch is already in flight"),
            PollBatchError::Reading(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for PollBatchError {}

impl From<ReadingError> for PollBatchError {
    fn from(e: ReadingError) -> Self {
        PollBatchError::Reading(e)
    }
}

/// Why [`Controller::handle_batch_done`] failed.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BatchDoneError {
    /// No batch is running.
    NoBatchInFlight,
    /// `now` or the energy reading was refused; the batch stays in flight.
    Reading(ReadingError),
    /// The optimizer proposed a config outside the space.
    Config(ConfigError),
    /// The calibration window measured an unusable baseline (a meter reading
    /// nothing, say).
    Baseline(CostError),
}

impl fmt::Display for BatchDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchDoneError::NoBatchInFlight => f.write_str("no batch is in flight"),
            BatchDoneError::Reading(e) => e.fmt(f),
            BatchDoneError::Config(e) => write!(f, "optimizer proposed a bad config: {e}"),
            BatchDoneError::Baseline(e) => write!(f, "calibration failed: {e}"),
        }
    }
}

impl core::error::Error for BatchDoneError {}

impl From<ReadingError> for BatchDoneError {
    fn from(e: ReadingError) -> Self {
        BatchDoneError::Reading(e)
    }
}

/// Where the controller is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Phase {
    /// Measuring the baseline at the maximum config; `window` counts from 0.
    Calibrating {
        /// Calibration windows finished so far.
        window: u32,
    },
    /// Handing every finished window to the optimizer.
    Optimizing,
}

/// What a finished batch led to.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
pub struct Completion {
    /// Requests completed by this batch.
    pub served: usize,
    /// Energy charged to each of them, joules (per the energy scope).
    pub energy_j: f64,
    /// The window this batch closed, if any.
    pub window: Option<WindowReport>,
    /// The config to apply before the next batch, when it changes, and when
    /// calibration ends for an optimizer that hands knobs to the governors.
    pub apply: Option<Config>,
}

/// The batch in flight: when it started, the meter then, its requests' arrivals.
#[derive(Debug, Clone)]
struct InFlight<const B: usize> {
    start: Instant,
    energy_j: f64,
    arrivals: Vec<Instant, B>,
}

/// See the module doc. `T` is the request payload, `O` the optimizer, `B` the
/// largest batch, `A` the arrivals kept to price configs under the recent load
/// ([`crate::load`]; 8 bytes each). Holds no heap memory and allocates none.
pub struct Controller<T, O, const B: usize, const A: usize = LOAD_SAMPLE> {
    space: Space,
    settings: Settings,
    optimizer: O,
    batcher: BatchBuffer<T, B>,
    window: CostWindow,
    state: State,
    config: Config,
    in_flight: Option<InFlight<B>>,
    /// The optimizer's ceiling for the window being measured.
    ceiling: Option<f64>,
    /// Time and meter reading at the end of the previous batch, or at the first
    /// observation: the board idled since then (total scope charges that energy
    /// to the next batch).
    mark: Option<(Instant, f64)>,
    /// Arrivals of the last requests served, replayed to price configs.
    arrivals: Arrivals<A>,
    /// Requests waiting (queue and batch buffer) just after the last batch
    /// was formed, and when.
    waiting: (usize, Instant),
    last_energy: f64,
    latest: Instant,
    served: u64,
}

impl<T, O: Optimizer, const B: usize, const A: usize> Controller<T, O, B, A> {
    /// A controller for `space`. The config to apply first is [`config`](Self::config).
    pub fn new(space: Space, settings: Settings, mut optimizer: O) -> Result<Self, SetupError> {
        let window = CostWindow::new(settings.window).map_err(SetupError::Window)?;
        let max_batch = space.batch_size(&space.max_config());
        if max_batch as usize > B {
            return Err(SetupError::BatchAboveCapacity {
                batch: max_batch,
                capacity: B,
            });
        }
        if settings.window.requests < max_batch {
            return Err(SetupError::WindowBelowBatch {
                window: settings.window.requests,
                batch: max_batch,
            });
        }
        let (state, config) = match settings.baseline {
            Some(baseline) => (State::Optimizing { baseline }, optimizer.start(&space)),
            None if settings.calibration_windows == 0 => {
                return Err(SetupError::NoCalibration);
            }
            None => (State::Calibrating { window: 0 }, space.max_config()),
        };
        space.check(&config).map_err(SetupError::Config)?;
        Ok(Controller {
            batcher: BatchBuffer::new(settings.max_wait),
            window,
            state,
            config,
            in_flight: None,
            ceiling: None,
            mark: None,
            arrivals: Arrivals::default(),
            waiting: (0, Instant::ZERO),
            last_energy: 0.0,
            latest: Instant::ZERO,
            served: 0,
            space,
            settings,
            optimizer,
        })
    }

    /// The config in force (apply it to the board at start).
    pub fn config(&self) -> Config {
        self.config
    }

    /// The knob space.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Calibrating or optimizing.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Calibrating { window } => Phase::Calibrating { window },
            State::Optimizing { .. } => Phase::Optimizing,
        }
    }

    /// The baseline, once known.
    pub fn baseline(&self) -> Option<Baseline> {
        self.state.baseline().copied()
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &O {
        &self.optimizer
    }

    /// True when `knob` is left to the OS governor, not pinned by configs. Only
    /// once optimizing: calibration pins everything at the maximum.
    pub fn governed(&self, knob: Knob) -> bool {
        self.phase() == Phase::Optimizing && self.optimizer.governed(knob)
    }

    /// Requests completed so far.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Requests held in the batch buffer (taken from the queue, not yet running).
    pub fn buffered(&self) -> usize {
        self.batcher.len()
    }

    /// True while a batch handed out by [`poll_batch`](Self::poll_batch) has not
    /// been reported done.
    pub fn batch_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// When to poll again even if no request arrives: the maximum-wait deadline of
    /// the partial batch waiting, if any. A caller that ignores it can leave a
    /// partial batch waiting past its maximum wait, hence `#[must_use]`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        self.batcher.deadline()
    }

    fn observe(&mut self, now: Instant, energy_j: f64) -> Result<(), ReadingError> {
        if !energy_j.is_finite() {
            return Err(ReadingError::EnergyNotFinite(energy_j));
        }
        if now < self.latest {
            return Err(ReadingError::TimeWentBack {
                latest: self.latest,
                now,
            });
        }
        if energy_j < self.last_energy && self.mark.is_some() {
            return Err(ReadingError::EnergyDecreased {
                from: self.last_energy,
                to: energy_j,
            });
        }
        self.latest = now;
        self.last_energy = energy_j;
        self.mark.get_or_insert((now, energy_j));
        Ok(())
    }

    /// Forms the next batch from `src` into `out` (cleared first) when the batch
    /// rule allows; returns its length, 0 when it is not time yet. `energy_j` is
    /// the meter's cumulative reading at `now`. Bounded work: at most `B` requests
    /// move.
    pub fn poll_batch<S: RequestSource<T>>(
        &mut self,
        now: Instant,
        energy_j: f64,
        src: &mut S,
        out: &mut Vec<Request<T>, B>,
    ) -> Result<usize, PollBatchError> {
        self.form(now, energy_j, false, src, out)
    }

    /// As [`poll_batch`](Self::poll_batch), for a service that is closing:
    /// releases whatever waits, up to one batch, even a partial one that the
    /// batch rule would hold, so that every accepted request is served.
    /// Returns 0 only when nothing waits. Bounded work: at most `B` requests move.
    pub fn poll_drain<S: RequestSource<T>>(
        &mut self,
        now: Instant,
        energy_j: f64,
        src: &mut S,
        out: &mut Vec<Request<T>, B>,
    ) -> Result<usize, PollBatchError> {
        self.form(now, energy_j, true, src, out)
    }

    fn form<S: RequestSource<T>>(
        &mut self,
        now: Instant,
        energy_j: f64,
        drain: bool,
        src: &mut S,
        out: &mut Vec<Request<T>, B>,
    ) -> Result<usize, PollBatchError> {
        if self.in_flight.is_some() {
            return Err(PollBatchError::BatchInFlight);
        }
        self.observe(now, energy_j)?;
        let size = self.space.batch_size(&self.config) as usize;
        let n = self.batcher.take(now, size, drain, src, out);
        if n > 0 {
            // A window closes only when a batch is done, and no poll comes
            // between forming a batch and its end: this is the count at the
            // last poll before any window closes.
            self.waiting = (src.len() + self.batcher.len(), now);
            let mut arrivals = Vec::new();
            for r in out.iter() {
                // Cannot fail: out holds at most B requests.
                let _ = arrivals.push(r.arrival);
            }
            self.in_flight = Some(InFlight {
                start: now,
                energy_j,
                arrivals,
            });
        }
        Ok(n)
    }

    /// Reports the batch in flight finished at `now`, the meter reading
    /// `energy_j`. Charges its energy to its requests, closes the window when full
    /// and, if the config changes, says which to apply. Bounded work: one window
    /// summary and one optimizer step at most.
    pub fn handle_batch_done(
        &mut self,
        now: Instant,
        energy_j: f64,
    ) -> Result<Completion, BatchDoneError> {
        if self.in_flight.is_none() {
            return Err(BatchDoneError::NoBatchInFlight);
        }
        let mark = self.mark;
        self.observe(now, energy_j)?;
        let Some(batch) = self.in_flight.take() else {
            return Err(BatchDoneError::NoBatchInFlight);
        };
        // The board idled from the mark until the batch started (`poll_batch`
        // observed before, so there is a mark).
        let (idle_from, idle_mark_j) = mark.unwrap_or((batch.start, batch.energy_j));
        let since = match self.settings.window.scope {
            EnergyScope::Active => batch.energy_j,
            EnergyScope::Total => idle_mark_j,
        };
        let n = batch.arrivals.len();
        let per_request_j = (energy_j - since) / n as f64;
        self.window.record_batch(
            n,
            now.saturating_since(batch.start).as_secs_f64(),
            energy_j - batch.energy_j,
            batch.start.saturating_since(idle_from).as_secs_f64(),
            batch.energy_j - idle_mark_j,
        );
        self.mark = Some((now, energy_j));
        self.served += n as u64;
        let mut completion = Completion {
            served: n,
            energy_j: per_request_j,
            window: None,
            apply: None,
        };
        for &arrival in &batch.arrivals {
            self.arrivals.push(arrival);
            let latency_s = now.saturating_since(arrival).as_secs_f64();
            self.window
                .record(arrival, latency_s, per_request_j, self.state.baseline());
            // At most one window closes per batch: one that opened in this batch
            // is not abandoned in it.
            if let (Some(ceiling), None) = (self.ceiling, completion.window)
                && self.window.exceeds(ceiling)
            {
                self.window.abandon();
            }
            if self.window.is_full() {
                // A window holds at least one batch, so at most one closes here.
                let calibrating = matches!(self.state, State::Calibrating { .. });
                let (report, next) = self.close_window(now)?;
                completion.window = Some(report);
                // Calibration pinned every knob; an optimizer that leaves some
                // to the governors (`dvfs`) must get them even when its first
                // config is the calibrated one.
                let handover = calibrating
                    && matches!(self.state, State::Optimizing { .. })
                    && self
                        .space
                        .dims()
                        .iter()
                        .any(|d| self.optimizer.governed(d.knob()));
                if next != self.config || handover {
                    self.config = next;
                    completion.apply = Some(next);
                }
            }
        }
        Ok(completion)
    }

    /// Summarises the full window, decides the next config, starts the next window.
    /// Changes nothing when it fails.
    fn close_window(&mut self, now: Instant) -> Result<(WindowReport, Config), BatchDoneError> {
        let (baseline, state) = match self.state {
            State::Optimizing { baseline } => (baseline, self.state),
            State::Calibrating { window } => {
                let (e, l) = self.window.means();
                let baseline = Baseline::new(e, l).map_err(BatchDoneError::Baseline)?;
                let state = if window + 1 >= self.settings.calibration_windows {
                    State::Optimizing { baseline }
                } else {
                    State::Calibrating { window: window + 1 }
                };
                (baseline, state)
            }
        };
        let report = self.window.report(now, self.config, &baseline);
        let load = Load {
            sample: Sample::new(&self.arrivals, self.waiting.0, self.waiting.1),
            baseline,
            alpha: self.settings.window.alpha,
            scope: self.settings.window.scope,
            max_wait: self.settings.max_wait,
        };
        let next = match (self.state, state) {
            (State::Calibrating { .. }, State::Calibrating { .. }) => self.config,
            (State::Calibrating { .. }, State::Optimizing { .. }) => {
                // The optimizer's first config is often the calibrated one: give it
                // that window's report instead of measuring the same config again.
                let first = self.optimizer.start(&self.space);
                if first == self.config {
                    self.optimizer.step_under(&self.space, &report, &load)
                } else {
                    first
                }
            }
            (State::Optimizing { .. }, _) => self.optimizer.step_under(&self.space, &report, &load),
        };
        self.space.check(&next).map_err(BatchDoneError::Config)?;
        self.ceiling = match state {
            State::Optimizing { .. } => self.optimizer.ceiling(),
            State::Calibrating { .. } => None,
        };
        self.state = state;
        self.window.next(next != self.config);
        Ok((report, next))
    }
}

/// Phase with the data that only exists in it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Calibrating { window: u32 },
    Optimizing { baseline: Baseline },
}

impl State {
    fn baseline(&self) -> Option<&Baseline> {
        match self {
            State::Optimizing { baseline } => Some(baseline),
            State::Calibrating { .. } => None,
        }
    }
}
