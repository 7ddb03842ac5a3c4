//! The simulator board: the core's controller in virtual time.
//!
//! A discrete-event simulation with one inference engine (batches run one at a
//! time, as on the board). Events: request arrivals from a [`Workload`], batch
//! completion, a knob's level taking effect after its transition delay, governor
//! samples (for the `dvfs` baseline), and the batch buffer's maximum-wait deadline.
//! The next event is the earliest of those few candidates, so no event heap is
//! needed. The controller, queue and batch buffer are the core's own, driven
//! exactly as on a board: `now` and the meter's energy in, batches and configs out.
//!
//! Deterministic for a seed: arrivals, sensor noise, service-time jitter and the
//! optimizer's choices each draw from their own stream derived from it.

pub mod knob;
pub mod meter;
pub mod model;
pub mod named;
pub mod oracle;
pub mod profile;

use anyhow::{Context, Result, bail};
use ecoedge_core::board::{EnergyMeter, FrequencyKnob};
use ecoedge_core::controller::{Controller, Settings};
use ecoedge_core::optimizer::Optimizer;
use ecoedge_core::queue::{Request, RingQueue};
use ecoedge_core::space::{Config, Knob, Space};
use ecoedge_core::time::{Duration, Instant};
use rand::SeedableRng;
use rand_distr::{Distribution, LogNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::capacity::{MAX_BATCH, QUEUE};
use crate::knobs::{KnobSet, LowerLimits, apply_config, build_space, dimensions};
use crate::logs::{LogDir, LogWriter};
use crate::record::{Ending, Outcome, Recorder};
use crate::workload::Workload;
use knob::{PodGov, SimKnob, VirtualClock, period, schedutil};
use meter::{SensorModel, SimMeter};
use model::{Clocks, DeviceModel};
use profile::NOT_A_KNOB;

/// When a simulation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many windows have closed.
    Windows(u32),
    /// When no arrival is left before this much virtual time and the last
    /// full batch is done.
    Duration(Duration),
}

/// Everything a simulation run needs besides the device and the optimizer.
#[derive(Debug, Clone)]
pub struct SimSetup {
    /// Arrival process.
    pub workload: Workload,
    /// Seed of the sensor noise, the service-time jitter and the optimizer.
    pub seed: u64,
    /// Seed of the arrivals: reruns of an experiment replay the same arrivals
    /// with other noise, as reruns on a board replay the same trace.
    pub arrival_seed: u64,
    /// When to stop.
    pub stop: Stop,
    /// Controller settings (window, warm-up, alpha, scope, baseline, max wait).
    pub settings: Settings,
    /// Power sensor model.
    pub sensor: SensorModel,
    /// Log-normal spread of batch service times (sigma; 0 = none). Real boards
    /// jitter by a few percent (clock-domain crossings, DRAM refresh, OS noise).
    pub jitter: f64,
    /// Delay before a new clock level takes effect.
    pub transition: Duration,
    /// Batches slowed after each clock change (default none).
    pub clock_warmup: ClockWarmup,
    /// The knobs searched (default the paper's CPU, GPU and batch; the
    /// memory clock stays at its top level unless named).
    pub knobs: KnobSet,
    /// Lower search limit per knob; the original implementation used CPU and
    /// GPU level 4 and batch 4 ([`LowerLimits::ORIGINAL`]).
    pub lower_limits: LowerLimits,
    /// Stream the logs here, keeping nothing per request in memory (the
    /// outcome's requests and windows are then empty); without it, every
    /// request and window is kept, as comparisons need them.
    pub logs: Option<LogDir>,
}

/// The default spread of batch service times (log-normal sigma): real boards
/// jitter by a few percent.
pub const JITTER: f64 = 0.03;

impl SimSetup {
    /// Defaults of SIMULATOR.md for `workload`: 1000 windows for synthetic
    /// patterns, 3 hours for traces; realistic sensor; 3 % jitter; 1 ms transitions.
    pub fn new(workload: Workload, seed: u64) -> Self {
        let stop = if workload.is_trace() {
            Stop::Duration(Duration::from_secs(3 * 3600))
        } else {
            Stop::Windows(1000)
        };
        SimSetup {
            workload,
            seed,
            arrival_seed: seed,
            stop,
            settings: Settings::default(),
            sensor: SensorModel::default(),
            jitter: JITTER,
            transition: Duration::from_millis(1),
            clock_warmup: ClockWarmup::default(),
            knobs: KnobSet::paper(),
            lower_limits: LowerLimits::NONE,
            logs: None,
        }
    }

    /// The same setup without noise: ideal meter, no jitter (for the oracle).
    pub fn noiseless(&self) -> Self {
        SimSetup {
            sensor: SensorModel {
                realistic: false,
                ..self.sensor
            },
            jitter: 0.0,
            // Reference runs (the oracle's) keep their requests and log nothing.
            logs: None,
            ..self.clone()
        }
    }
}

/// The device's clock knobs, each at its top level: CPU, GPU, and the memory
/// clock where the model knows it.
fn clock_knobs(model: &dyn DeviceModel, transition: Duration, clock: &VirtualClock) -> ClockKnobs {
    let knob = |k| SimKnob::new(k, model.levels(k), transition.as_micros(), clock.clone());
    ClockKnobs {
        cpu: knob(Knob::Cpu),
        gpu: knob(Knob::Gpu),
        emc: (!model.emc_levels_hz().is_empty()).then(|| knob(Knob::Memory)),
    }
}

/// The knob space `setup` searches on `model`: the knobs it names, built from
/// the simulated knobs as a board builds its space from its own.
pub fn space_of(model: &dyn DeviceModel, setup: &SimSetup) -> Result<Space> {
    let knobs = clock_knobs(model, setup.transition, &VirtualClock::default());
    space_from(&knobs, model, setup)
}

fn space_from(knobs: &ClockKnobs, model: &dyn DeviceModel, setup: &SimSetup) -> Result<Space> {
    if setup.knobs.contains(Knob::Memory) && knobs.emc.is_none() {
        bail!(
            "--knobs {}: this device model has no memory (EMC) levels (profiles are measured at one memory clock)",
            setup.knobs
        );
    }
    // A profile writes a clock its board lacks as the one level
    // `NOT_A_KNOB`: no knob, as on that board.
    let clocks = dimensions(knobs.iter())?
        .into_iter()
        .filter(|d| d.levels() != [NOT_A_KNOB]);
    build_space(clocks, &setup.knobs, model.max_batch(), &setup.lower_limits)
}

/// The simulated device's clocks.
struct ClockKnobs {
    cpu: SimKnob,
    gpu: SimKnob,
    emc: Option<SimKnob>,
}

impl ClockKnobs {
    fn iter(&self) -> impl Iterator<Item = &SimKnob> {
        [&self.cpu, &self.gpu].into_iter().chain(self.emc.as_ref())
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut SimKnob> {
        [&mut self.cpu, &mut self.gpu]
            .into_iter()
            .chain(self.emc.as_mut())
    }

    /// The clocks in effect now.
    fn clocks(&self) -> Clocks {
        Clocks {
            cpu_khz: self.cpu.frequency(),
            gpu_hz: self.gpu.frequency(),
            emc_hz: self.emc.as_ref().map_or(0, SimKnob::frequency),
        }
    }
}

/// A warm-up after each clock change, for the sensitivity runs: the first
/// `batches` batches run `slowdown` times longer (0.5: half as long again).
/// An assumption, not a measurement: caches, the GPU's pipelines and the
/// memory controller settle after a frequency switch, but no per-batch
/// figures for the Xavier NX are public. Off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClockWarmup {
    /// Batches slowed after each change.
    pub batches: u32,
    /// Extra share of their service time.
    pub slowdown: f64,
}

impl std::str::FromStr for ClockWarmup {
    type Err = String;

    /// `BATCHES@PERCENT`, e.g. `3@50`: three batches, half as long again.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: expected BATCHES@PERCENT, e.g. 3@50");
        let (b, p) = s.split_once('@').ok_or_else(bad)?;
        let batches: u32 = b.parse().map_err(|_| bad())?;
        let percent: f64 = p.parse().map_err(|_| bad())?;
        if !(0.0..=1000.0).contains(&percent) {
            return Err(format!("`{s}`: the slowdown must be 0 to 1000 percent"));
        }
        Ok(ClockWarmup {
            batches,
            slowdown: percent / 100.0,
        })
    }
}

/// The batch on the engine.
struct Running {
    /// Share of the batch's work still to do, from 1 down to 0.
    remaining: f64,
    /// When `remaining` was last brought up to date.
    since_us: u64,
    /// Jitter factor drawn for this batch.
    jitter: f64,
    size: u32,
    done_us: u64,
}

/// The simulated board: clock knobs, meter, engine, governors. Its event
/// arithmetic runs on the virtual clock's microseconds.
struct SimBoard<'m> {
    model: &'m dyn DeviceModel,
    clock: VirtualClock,
    knobs: ClockKnobs,
    meter: SimMeter,
    running: Option<Running>,
    busy_cpu_us: u64,
    busy_gpu_us: u64,
    busy_since: u64,
    podgov: PodGov,
    next_cpu_tick: u64,
    next_gpu_tick: u64,
}

impl SimBoard<'_> {
    fn power_w(&self) -> f64 {
        let clocks = self.knobs.clocks();
        match &self.running {
            Some(r) => self.model.busy_power_w(clocks, r.size),
            None => self.model.idle_power_w(clocks),
        }
    }

    fn service_s(&self, size: u32, jitter: f64) -> f64 {
        self.model.service_time_s(self.knobs.clocks(), size) * jitter
    }

    /// Brings busy time and the running batch's progress up to `now`.
    fn account(&mut self, now: u64) {
        let clocks = self.knobs.clocks();
        if let Some(r) = &mut self.running {
            let dt = now - self.busy_since;
            self.busy_cpu_us += dt;
            self.busy_gpu_us += dt;
            let t = self.model.service_time_s(clocks, r.size) * r.jitter;
            r.remaining -= (now - r.since_us) as f64 * 1e-6 / t;
            r.since_us = now;
        }
        self.busy_since = now;
    }

    /// Re-plans the running batch's end and the meter after a clock or load change.
    fn replan(&mut self, now: u64) {
        if let Some(r) = &self.running {
            let left = r.remaining.max(0.0) * self.service_s(r.size, r.jitter);
            // Saturating: the float-to-int cast saturates, the sum must too
            // (an absurd service time wrapped to a tiny one).
            let done = now.saturating_add((left * 1e6).round() as u64);
            if let Some(r) = &mut self.running {
                r.done_us = done;
            }
        }
        let p = self.power_w();
        self.meter.set_power(now, p);
    }

    fn governed(&self) -> bool {
        self.knobs.iter().any(SimKnob::governed)
    }

    /// When the next pending clock change takes effect.
    fn next_change(&self) -> Option<u64> {
        self.knobs.iter().filter_map(SimKnob::next_change).min()
    }

    /// Governor samples due at `now`. The memory clock's governor (the BPMP's
    /// activity monitor on a Jetson) is not modelled: a memory clock handed
    /// over keeps the level it had.
    fn tick(&mut self, now: u64) {
        let cpu = &mut self.knobs.cpu;
        if now >= self.next_cpu_tick {
            let util = self.busy_cpu_us as f64 / period::CPU_US as f64;
            self.busy_cpu_us = 0;
            if cpu.governed() {
                let next = schedutil(cpu.levels(), cpu.level(), util);
                cpu.govern(next);
            }
            self.next_cpu_tick = now.saturating_add(period::CPU_US);
        }
        let gpu = &mut self.knobs.gpu;
        if now >= self.next_gpu_tick {
            let load = self.busy_gpu_us as f64 / period::GPU_US as f64;
            self.busy_gpu_us = 0;
            if gpu.governed() {
                let level = gpu.level();
                let next = self.podgov.next(gpu.levels(), level, load);
                gpu.govern(next);
            }
            self.next_gpu_tick = now.saturating_add(period::GPU_US);
        }
    }

    /// Idle at the lowest levels with no change pending: governor samples
    /// change nothing until the next arrival, so they can be skipped.
    fn governors_at_rest(&self) -> bool {
        let (cpu, gpu) = (&self.knobs.cpu, &self.knobs.gpu);
        self.running.is_none()
            && self.next_change().is_none()
            && (!cpu.governed() || cpu.level() == 0)
            && (!gpu.governed() || gpu.level() == 0)
    }

    /// Applies `config` to every clock knob, handing governed knobs to the governor.
    fn apply<O: Optimizer>(
        &mut self,
        ctl: &Controller<(), O, MAX_BATCH>,
        config: Config,
    ) -> Result<()> {
        for knob in self.knobs.iter_mut() {
            apply_config(ctl.space(), &config, |k| ctl.governed(k), knob)?;
        }
        Ok(())
    }
}

/// Runs `optimizer` on `model` under `setup`.
pub fn simulate<O: Optimizer>(
    model: &dyn DeviceModel,
    optimizer: O,
    setup: &SimSetup,
) -> Result<Outcome> {
    let clock = VirtualClock::default();
    let knobs = clock_knobs(model, setup.transition, &clock);
    let space = space_from(&knobs, model, setup)?;
    let mut ctl: Controller<(), O, MAX_BATCH> =
        Controller::new(space.clone(), setup.settings, optimizer).context("controller settings")?;
    let mut arrivals = setup.workload.arrivals(setup.arrival_seed)?;
    let horizon = match setup.stop {
        Stop::Duration(d) => d.as_micros(),
        Stop::Windows(_) => u64::MAX,
    };
    let mut next_arrival = arrivals
        .next()
        .map(Instant::as_micros)
        .filter(|&t| t < horizon);
    let mut board = SimBoard {
        model,
        knobs,
        clock,
        meter: SimMeter::new(setup.sensor, setup.seed ^ 0x05EE_D0F3_E7E6),
        running: None,
        busy_cpu_us: 0,
        busy_gpu_us: 0,
        busy_since: 0,
        podgov: PodGov::default(),
        next_cpu_tick: 0,
        next_gpu_tick: 0,
    };
    let mut jitter_rng = Xoshiro256PlusPlus::seed_from_u64(setup.seed ^ 0x0717_7E12);
    // The clocks the last batch started at, and batches of warm-up left.
    let (mut last_clocks, mut warm_left) = (None, 0u32);
    let jitter = (setup.jitter > 0.0)
        .then(|| LogNormal::new(-0.5 * setup.jitter * setup.jitter, setup.jitter))
        .transpose()
        .context("jitter")?;
    board.apply(&ctl, ctl.config())?;
    for knob in board.knobs.iter_mut() {
        knob.settle(0);
    }
    board.replan(0);

    let mut queue: RingQueue<(), QUEUE> = RingQueue::new();
    let mut batch: heapless::Vec<Request<()>, MAX_BATCH> = heapless::Vec::new();
    let alpha = setup.settings.window.alpha;
    let mut record = match &setup.logs {
        Some(logs) => Recorder::streaming(alpha, Some(LogWriter::create(logs, &space)?)),
        None => Recorder::keeping(alpha),
    };
    let (mut arrived, mut refused) = (0u64, 0u64);
    let mut now = 0u64;
    loop {
        if let Stop::Windows(n) = setup.stop
            && record.windows() as u32 >= n
        {
            break;
        }
        let knob_change = board.next_change();
        let tick = (board.governed() && !board.governors_at_rest())
            .then(|| board.next_cpu_tick.min(board.next_gpu_tick).max(now));
        let wait = ctl.poll_timeout().map(Instant::as_micros);
        let done = board.running.as_ref().map(|r| r.done_us);
        let Some(t) = [knob_change, done, next_arrival, wait, tick]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        now = t.max(now);
        board.clock.set(now);
        board.account(now);

        if knob_change.is_some_and(|k| k <= now) {
            for knob in board.knobs.iter_mut() {
                knob.settle(now);
            }
            board.replan(now);
        }
        if tick.is_some_and(|k| k <= now) {
            board.tick(now);
        } else if board.governed() && board.governors_at_rest() {
            // Resume sampling on the grid after a skipped idle stretch.
            board.next_cpu_tick = board.next_cpu_tick.max(now);
            board.next_gpu_tick = board.next_gpu_tick.max(now);
        }
        if done.is_some_and(|d| d <= now) {
            board.running = None;
            let at = Instant::from_micros(now);
            let energy = board.meter.energy_j(at)?;
            let c = ctl.handle_batch_done(at, energy)?;
            record.batch_done(batch.iter().map(|r| r.arrival), at, &c);
            record.window_closed(&c, ctl.baseline());
            if let Some(config) = c.apply {
                board.apply(&ctl, config)?;
            }
            board.replan(now);
        }
        while next_arrival.is_some_and(|a| a <= now) {
            arrived += 1;
            if queue.push(Instant::from_micros(now), ()).is_err() {
                refused += 1;
                record.refusals(refused);
            }
            next_arrival = arrivals
                .next()
                .map(Instant::as_micros)
                .filter(|&t| t < horizon);
        }
        if board.running.is_none() {
            let energy = board.meter.energy_j(Instant::from_micros(now))?;
            let n = ctl.poll_batch(Instant::from_micros(now), energy, &mut queue, &mut batch)?;
            if n > 0 {
                let mut jitter = jitter.map_or(1.0, |j| j.sample(&mut jitter_rng));
                let clocks = board.knobs.clocks();
                if last_clocks != Some(clocks) {
                    last_clocks = Some(clocks);
                    warm_left = setup.clock_warmup.batches;
                }
                if warm_left > 0 {
                    warm_left -= 1;
                    jitter *= 1.0 + setup.clock_warmup.slowdown;
                }
                board.running = Some(Running {
                    remaining: 1.0,
                    since_us: now,
                    jitter,
                    size: n as u32,
                    done_us: now,
                });
                board.replan(now);
            }
        }
    }
    // A governed knob's level is the governor's: report what it ran last.
    let mut final_config = ctl.config();
    for knob in board.knobs.iter().filter(|k| k.governed()) {
        if let Some(dim) = space.position(knob.knob()) {
            final_config = final_config.with(dim, knob.level());
        }
    }
    Ok(record.finish(Ending {
        space,
        arrived,
        final_config,
        baseline: ctl.baseline(),
        end: Instant::from_micros(now),
    }))
}
