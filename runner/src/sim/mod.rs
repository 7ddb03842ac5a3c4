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
pub mod oracle;
pub mod profile;

use anyhow::{Context, Result};
use ecoedge_core::board::{EnergyMeter, FrequencyKnob};
use ecoedge_core::controller::{Controller, Settings};
use ecoedge_core::optimizer::Optimizer;
use ecoedge_core::queue::{Request, RingQueue};
use ecoedge_core::space::{Config, Dimension, Knob, Space};
use ecoedge_core::time::Instant;
use rand::SeedableRng;
use rand_distr::{Distribution, LogNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::apply::apply_config;
pub use crate::report::{Outcome, Served};
use crate::workload::Workload;
use knob::{PodGov, SimKnob, VirtualClock, period, schedutil};
use meter::{SensorModel, SimMeter};
use model::DeviceModel;

/// Largest batch the simulated controller can form.
pub const MAX_BATCH: usize = 16;
/// Request queue of the simulated service: 1023 requests, then refusals.
pub const QUEUE: usize = 1024;

/// When a simulation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many windows have closed.
    Windows(u32),
    /// When no arrival is left before this time (microseconds) and the last
    /// full batch is done.
    Duration(u64),
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
    /// Delay before a new clock level takes effect, microseconds.
    pub transition_us: u64,
    /// Lower search limit per dimension (CPU, GPU, batch level index); the
    /// original implementation used 4, 4, 3 (batch 4).
    pub lower_limits: [usize; 3],
}

impl SimSetup {
    /// Defaults of SIMULATOR.md for `workload`: 1000 windows for synthetic
    /// patterns, 3 hours for traces; realistic sensor; 3 % jitter; 1 ms transitions.
    pub fn new(workload: Workload, seed: u64) -> Self {
        let stop = if workload.is_trace() {
            Stop::Duration(3 * 3600 * 1_000_000)
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
            jitter: 0.03,
            transition_us: 1_000,
            lower_limits: [0; 3],
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
            ..self.clone()
        }
    }
}

/// The knob space a device model offers: CPU, GPU, batch.
pub fn space_of(model: &dyn DeviceModel, lower: [usize; 3]) -> Result<Space> {
    let dims = [
        Dimension::new(Knob::Cpu, model.cpu_levels_khz())?.with_lower_limit(lower[0])?,
        Dimension::new(Knob::Gpu, model.gpu_levels_hz())?.with_lower_limit(lower[1])?,
        Dimension::batch(model.max_batch())?.with_lower_limit(lower[2])?,
    ];
    Ok(Space::new(&dims)?)
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

/// The simulated board: knobs, meter, engine, governors.
struct Board<'m> {
    model: &'m dyn DeviceModel,
    clock: VirtualClock,
    cpu: SimKnob,
    gpu: SimKnob,
    meter: SimMeter,
    running: Option<Running>,
    busy_cpu_us: u64,
    busy_gpu_us: u64,
    busy_since: u64,
    podgov: PodGov,
    next_cpu_tick: u64,
    next_gpu_tick: u64,
}

impl Board<'_> {
    fn power_w(&self) -> f64 {
        let (c, g) = (self.cpu.frequency(), self.gpu.frequency());
        match &self.running {
            Some(r) => self.model.busy_power_w(c, g, r.size),
            None => self.model.idle_power_w(c, g),
        }
    }

    fn service_s(&self, size: u32, jitter: f64) -> f64 {
        self.model
            .service_time_s(self.cpu.frequency(), self.gpu.frequency(), size)
            * jitter
    }

    /// Brings busy time and the running batch's progress up to `now`.
    fn account(&mut self, now: u64) {
        if let Some(r) = &mut self.running {
            let dt = now - self.busy_since;
            self.busy_cpu_us += dt;
            self.busy_gpu_us += dt;
            let t = self
                .model
                .service_time_s(self.cpu.frequency(), self.gpu.frequency(), r.size)
                * r.jitter;
            r.remaining -= (now - r.since_us) as f64 * 1e-6 / t;
            r.since_us = now;
        }
        self.busy_since = now;
    }

    /// Re-plans the running batch's end and the meter after a clock or load change.
    fn replan(&mut self, now: u64) {
        if let Some(r) = &self.running {
            let left = r.remaining.max(0.0) * self.service_s(r.size, r.jitter);
            let done = now + (left * 1e6).round() as u64;
            if let Some(r) = &mut self.running {
                r.done_us = done;
            }
        }
        let p = self.power_w();
        self.meter.set_power(now, p);
    }

    fn governed(&self) -> bool {
        self.cpu.governed() || self.gpu.governed()
    }

    /// Governor samples due at `now`.
    fn tick(&mut self, now: u64) {
        if now >= self.next_cpu_tick {
            let util = self.busy_cpu_us as f64 / period::CPU_US as f64;
            self.busy_cpu_us = 0;
            if self.cpu.governed() {
                self.cpu.govern(schedutil(self.cpu.levels(), util));
            }
            self.next_cpu_tick = now + period::CPU_US;
        }
        if now >= self.next_gpu_tick {
            let load = self.busy_gpu_us as f64 / period::GPU_US as f64;
            self.busy_gpu_us = 0;
            if self.gpu.governed() {
                let level = self.gpu.level();
                let next = self.podgov.next(self.gpu.levels(), level, load);
                self.gpu.govern(next);
            }
            self.next_gpu_tick = now + period::GPU_US;
        }
    }

    /// Idle at the lowest levels with no change pending: governor samples
    /// change nothing until the next arrival, so they can be skipped.
    fn governors_at_rest(&self) -> bool {
        self.running.is_none()
            && self.cpu.next_change().is_none()
            && self.gpu.next_change().is_none()
            && (!self.cpu.governed() || self.cpu.level() == 0)
            && (!self.gpu.governed() || self.gpu.level() == 0)
    }
}

/// Runs `optimizer` on `model` under `setup`.
pub fn simulate<O: Optimizer>(
    model: &dyn DeviceModel,
    optimizer: O,
    setup: &SimSetup,
) -> Result<Outcome> {
    let space = space_of(model, setup.lower_limits)?;
    let mut ctl: Controller<(), O, MAX_BATCH> =
        Controller::new(space.clone(), setup.settings, optimizer).context("controller settings")?;
    let mut arrivals = setup.workload.arrivals(setup.arrival_seed)?;
    let horizon = match setup.stop {
        Stop::Duration(d) => d,
        Stop::Windows(_) => u64::MAX,
    };
    let mut next_arrival = arrivals.next().filter(|&t| t < horizon);
    let clock = VirtualClock::default();
    let mut board = Board {
        model,
        cpu: SimKnob::new(
            Knob::Cpu,
            model.cpu_levels_khz(),
            setup.transition_us,
            clock.clone(),
        ),
        gpu: SimKnob::new(
            Knob::Gpu,
            model.gpu_levels_hz(),
            setup.transition_us,
            clock.clone(),
        ),
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
    let jitter = (setup.jitter > 0.0)
        .then(|| LogNormal::new(-0.5 * setup.jitter * setup.jitter, setup.jitter))
        .transpose()
        .context("jitter")?;
    apply(&mut board, &ctl, ctl.config())?;
    board.cpu.settle(0);
    board.gpu.settle(0);
    board.replan(0);

    let mut queue: RingQueue<(), QUEUE> = RingQueue::new();
    let mut batch: heapless::Vec<Request<()>, MAX_BATCH> = heapless::Vec::new();
    let mut out = Outcome {
        space,
        served: Vec::new(),
        windows: Vec::new(),
        arrived: 0,
        refused: 0,
        refused_in: Vec::new(),
        final_config: ctl.config(),
        baseline: None,
        end_us: 0,
    };
    let mut now = 0u64;
    loop {
        if let Stop::Windows(n) = setup.stop
            && out.windows.len() as u32 >= n
        {
            break;
        }
        let knob_change = [board.cpu.next_change(), board.gpu.next_change()]
            .into_iter()
            .flatten()
            .min();
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
            board.cpu.settle(now);
            board.gpu.settle(now);
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
            let energy = board.meter.energy_j(Instant::from_micros(now))?;
            let c = ctl.handle_batch_done(Instant::from_micros(now), energy)?;
            let window = out.windows.len() as u32;
            out.served.extend(batch.iter().map(|r| Served {
                arrival_us: r.arrival.as_micros(),
                done_us: now,
                energy_j: c.energy_j,
                window,
            }));
            if let Some(w) = c.window {
                out.windows.push(w);
            }
            if let Some(config) = c.apply {
                apply(&mut board, &ctl, config)?;
            }
            board.replan(now);
        }
        while next_arrival.is_some_and(|a| a <= now) {
            out.arrived += 1;
            if queue.push(Instant::from_micros(now), ()).is_err() {
                out.refused += 1;
                out.refused_in.push(out.windows.len() as u32);
            }
            next_arrival = arrivals.next().filter(|&t| t < horizon);
        }
        if board.running.is_none() {
            let energy = board.meter.energy_j(Instant::from_micros(now))?;
            let n = ctl.poll_batch(Instant::from_micros(now), energy, &mut queue, &mut batch)?;
            if n > 0 {
                let jitter = jitter.map_or(1.0, |j| j.sample(&mut jitter_rng));
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
    out.final_config = ctl.config();
    out.baseline = ctl.baseline();
    out.end_us = now;
    Ok(out)
}

/// Applies `config` to the board's knobs, handing governed knobs to the governor.
fn apply<O: Optimizer>(
    board: &mut Board<'_>,
    ctl: &Controller<(), O, MAX_BATCH>,
    config: Config,
) -> Result<()> {
    let space = ctl.space();
    apply_config(space, &config, |k| ctl.governed(k), &mut board.cpu)?;
    apply_config(space, &config, |k| ctl.governed(k), &mut board.gpu)?;
    Ok(())
}
