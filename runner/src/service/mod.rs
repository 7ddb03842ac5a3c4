//! The real-time service loop: the core's controller on a wall clock, real
//! inference, a real board.
//!
//! Thin in the manner of `quinn` around `quinn-proto`: read the clock and the
//! meter, feed the [`Controller`], run the batch it hands out, report it done,
//! apply the config it returns, sleep until something happens. Arrivals come from
//! another thread through the core's [`RingQueue`], split into a producer (the
//! arrival thread, or the integrator's `submit` calls) and a consumer (this loop);
//! the producer wakes the loop after each push, so an idle loop costs nothing.
//! When the producer closes, the loop drains: every accepted request is
//! served, partial batches included, before it returns.
//!
//! [`run_workload`] serves a [`Workload`] on synthetic inputs (`ecoedge run`);
//! [`api`] wraps an integrator's own batch-inference closure.

pub mod api;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result};
use ecoedge_bsp_jetson::MonotonicClock;
use ecoedge_bsp_jetson::sampler::Clock;
use ecoedge_core::controller::Controller;
use ecoedge_core::optimizer::Optimizer;
use ecoedge_core::queue::{Consumer, Producer, Request, RequestSource, RingQueue};
use ecoedge_core::space::{Config, Space};
use ecoedge_core::time::{Duration, Instant};
use ecoedge_core::window::WindowReport;

use crate::board::LinuxBoard;
use crate::capacity::{MAX_BATCH, QUEUE};
use crate::inference::Engine;
use crate::record::{Ending, Outcome, Recorder};
use crate::workload::Workload;

/// Longest the loop sleeps before looking at its stop conditions again.
const IDLE_CHECK: StdDuration = StdDuration::from_millis(50);

/// A batch as the controller hands it out.
pub type Batch<T> = heapless::Vec<Request<T>, MAX_BATCH>;

/// Where the loop takes requests from: the core's queue, split (a producer
/// thread and this loop) or shared behind a lock (many HTTP handlers).
pub trait Queue<T>: RequestSource<T> {
    /// Requests refused so far.
    fn refused(&self) -> u64;
    /// No request will come any more: the loop serves what waits (partial
    /// batches too), then returns.
    fn closed(&self) -> bool;
    /// The service gives up on what still waits (a drain that outlasted its
    /// time): the loop returns at once.
    fn abandoned(&self) -> bool;
}

/// Set from outside the loop (a signal handler): `stop` ends arrivals, so
/// the service drains what it accepted; `abandon` ends the drain, leaving
/// what still waits unserved (counted as pending).
#[derive(Debug, Default)]
pub struct Stop {
    /// Stop taking requests.
    pub stop: AtomicBool,
    /// Give up on the drain.
    pub abandon: AtomicBool,
}

impl Stop {
    /// Whether arrivals were stopped.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Whether the drain was given up.
    pub fn abandoned(&self) -> bool {
        self.abandon.load(Ordering::Acquire)
    }
}

/// A split queue's consumer with the flags around it: `closed` set by its
/// producer after the last push, `stop` by the outside.
pub(crate) struct Fed<'q, 'f, T> {
    pub consumer: Consumer<'q, T>,
    pub closed: &'f AtomicBool,
    pub stop: &'f Stop,
}

impl<T> RequestSource<T> for Fed<'_, '_, T> {
    fn dequeue(&mut self) -> Option<Request<T>> {
        self.consumer.dequeue()
    }
    fn len(&self) -> usize {
        self.consumer.len()
    }
}

impl<T> Queue<T> for Fed<'_, '_, T> {
    fn refused(&self) -> u64 {
        self.consumer.stats().refused
    }
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
    fn abandoned(&self) -> bool {
        self.stop.abandoned()
    }
}

/// What the observer hears after every batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// When the batch started.
    pub started: Instant,
    /// When it was done.
    pub now: Instant,
    /// The meter's cumulative reading when it started, joules.
    pub meter_start_j: f64,
    /// The meter's cumulative reading when it was done, joules.
    pub meter_end_j: f64,
    /// Requests in the batch.
    pub size: usize,
    /// Requests served so far.
    pub served: u64,
    /// Requests waiting (queue and batch buffer) after it.
    pub waiting: usize,
    /// Windows closed so far.
    pub windows: usize,
    /// The window this batch closed, if any.
    pub window: Option<&'a WindowReport>,
    /// The config in force from now on.
    pub config: Config,
    /// The knob space.
    pub space: &'a Space,
}

/// A service loop cut short by an error (a meter that failed for good, a
/// clock write refused, an engine failure): what it recorded until then, so
/// that the summary and the logs are still written, and why it stopped.
#[derive(Debug)]
pub struct Stopped {
    /// Everything recorded before the error (boxed: a recorder is large, and
    /// an error travels by value through every `?`).
    pub record: Box<Recorder>,
    /// Why the loop stopped.
    pub error: anyhow::Error,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Stopped {}

/// Serves batches until `source` is closed and everything accepted is
/// served, or it is abandoned: once closed, partial batches are released too
/// (the controller's drain), so nothing waits for requests that will not
/// come. `execute` runs a batch; it may take the payloads out. An error stops
/// the loop at once, handing back what was recorded ([`Stopped`]).
pub(crate) fn serve_loop<T, O: Optimizer>(
    ctl: &mut Controller<T, O, MAX_BATCH>,
    board: &mut LinuxBoard,
    source: &mut impl Queue<T>,
    execute: impl FnMut(&mut Batch<T>) -> Result<()>,
    mut record: Recorder,
    observe: impl FnMut(Progress<'_>),
) -> Result<Recorder, Stopped> {
    match serve_batches(ctl, board, source, execute, &mut record, observe) {
        Ok(()) => Ok(record),
        Err(error) => Err(Stopped {
            record: Box::new(record),
            error,
        }),
    }
}

/// The loop of [`serve_loop`], recording into `record`.
fn serve_batches<T, O: Optimizer>(
    ctl: &mut Controller<T, O, MAX_BATCH>,
    board: &mut LinuxBoard,
    source: &mut impl Queue<T>,
    mut execute: impl FnMut(&mut Batch<T>) -> Result<()>,
    record: &mut Recorder,
    mut observe: impl FnMut(Progress<'_>),
) -> Result<()> {
    let clock = board.clock();
    let mut batch: Batch<T> = heapless::Vec::new();
    let mut arrivals: heapless::Vec<Instant, MAX_BATCH> = heapless::Vec::new();
    board.apply(ctl.space(), &ctl.config(), |k| ctl.governed(k))?;
    loop {
        record.tick();
        if source.abandoned() {
            return Ok(());
        }
        // Read before looking at the queue: the producer sets `closed` after
        // its last push, so everything pushed is visible once it reads true.
        let finished = source.closed();
        let now = clock.now();
        let energy = board.energy_j(now)?;
        let mut n = ctl.poll_batch(now, energy, source, &mut batch)?;
        if n == 0 && finished {
            n = ctl.poll_drain(now, energy, source, &mut batch)?;
        }
        if n > 0 {
            arrivals.clear();
            for r in &batch {
                // Cannot fail: both hold at most MAX_BATCH.
                let _ = arrivals.push(r.arrival);
            }
            execute(&mut batch)?;
            let done = clock.now();
            let energy_done = board.energy_j(done)?;
            let c = ctl.handle_batch_done(done, energy_done)?;
            record.batch_done(arrivals.iter().copied(), done, &c);
            record.refusals(source.refused());
            record.window_closed(&c, ctl.baseline());
            if let Some(config) = c.apply {
                board.apply(ctl.space(), &config, |k| ctl.governed(k))?;
            }
            observe(Progress {
                started: now,
                now: done,
                meter_start_j: energy,
                meter_end_j: energy_done,
                size: n,
                served: ctl.served(),
                waiting: source.len() + ctl.buffered(),
                windows: record.windows(),
                window: c.window.as_ref(),
                config: ctl.config(),
                space: ctl.space(),
            });
            continue;
        }
        if finished {
            // The drain released nothing: nothing waits anywhere.
            return Ok(());
        }
        let deadline = ctl.poll_timeout();
        let wait = deadline.map_or(IDLE_CHECK, |d| {
            StdDuration::from_micros(d.saturating_since(now).as_micros()).min(IDLE_CHECK)
        });
        std::thread::park_timeout(wait);
    }
}

/// What [`run_workload`] needs besides the board, the engine and the controller.
#[derive(Debug, Clone)]
pub struct RunSetup {
    /// Arrival process.
    pub workload: Workload,
    /// Seed of the arrival process.
    pub seed: u64,
    /// No arrival after this much time.
    pub duration: Duration,
}

/// Serves `setup.workload` on synthetic inputs through `engine` until the
/// duration is up or `stop` is set (Ctrl-C), then drains the queue. The
/// controller's config is applied to `board` as it changes.
pub fn run_workload<O: Optimizer>(
    board: &mut LinuxBoard,
    engine: &mut dyn Engine,
    mut ctl: Controller<(), O, MAX_BATCH>,
    setup: &RunSetup,
    stop: &Stop,
    record: Recorder,
    observe: impl FnMut(Progress<'_>),
) -> Result<Outcome> {
    let arrivals = setup.workload.arrivals(setup.seed)?;
    let clock = board.clock();
    let mut queue: RingQueue<(), QUEUE> = RingQueue::new();
    let closed = AtomicBool::new(false);
    let loop_ended = AtomicBool::new(false);
    let service = std::thread::current();
    let start = clock.now();
    let (mut producer, consumer) = queue.split();
    let result = std::thread::scope(|s| {
        let arrival_thread = std::thread::Builder::new()
            .name("ecoedge-arrivals".into())
            .spawn_scoped(s, || {
                follow(
                    arrivals,
                    start,
                    setup.duration,
                    &clock,
                    [&stop.stop, &loop_ended],
                    &mut producer,
                    &service,
                );
                closed.store(true, Ordering::Release);
                service.unpark();
            })
            .context("starting the arrival thread")?;
        let mut source = Fed {
            consumer,
            closed: &closed,
            stop,
        };
        let result = serve_loop(
            &mut ctl,
            board,
            &mut source,
            |batch| engine.run_synthetic(batch.len()),
            record,
            observe,
        );
        // After an error or an abandoned drain, arrivals end too.
        loop_ended.store(true, Ordering::Release);
        // The arrival thread only loops and sleeps; it cannot panic.
        let _ = arrival_thread.join();
        anyhow::Ok(result)
    })?;
    let (mut record, stopped) = match result {
        Ok(record) => (record, None),
        Err(Stopped { record, error }) => (*record, Some(format!("{error:#}"))),
    };
    let end = clock.now();
    let stats = queue.stats();
    record.refusals(stats.refused);
    let mut out = record.finish(Ending {
        space: ctl.space().clone(),
        arrived: stats.accepted + stats.refused,
        final_config: ctl.config(),
        baseline: ctl.baseline(),
        end,
    });
    out.stopped = stopped;
    Ok(out)
}

/// Pushes each arrival at its time after `start` (arrival stamped with the workload's
/// instant, so a late wake-up counts against the service as a real client's
/// would) until the arrivals end, `duration` passes or a stop flag is set.
/// The end is also read on the clock: a generator that outruns the pushes (its
/// arrivals all due) would otherwise not stop until its own time reached it.
fn follow(
    arrivals: impl Iterator<Item = Instant>,
    start: Instant,
    duration: Duration,
    clock: &MonotonicClock,
    stops: [&AtomicBool; 2],
    producer: &mut Producer<'_, ()>,
    service: &Thread,
) {
    let stopped = || stops.iter().any(|s| s.load(Ordering::Acquire));
    let end = Instant::ZERO + duration;
    let wall_end = start + duration;
    for at in arrivals.take_while(|&t| t < end) {
        let at = start + at.saturating_since(Instant::ZERO);
        loop {
            let now = clock.now();
            if stopped() || now >= wall_end {
                return;
            }
            if now >= at {
                break;
            }
            let left = at.saturating_since(now).as_micros();
            std::thread::sleep(StdDuration::from_micros(left).min(IDLE_CHECK));
        }
        // A refusal is counted by the queue; the request is gone by design.
        let _ = producer.push(at, ());
        service.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_that_outrun_the_pushes_stop_at_the_duration() {
        let (tx, rx) = std::sync::mpsc::channel();
        // Detached: before the fix `follow` never returned.
        std::thread::spawn(move || {
            let clock = MonotonicClock::new();
            let mut queue: RingQueue<(), QUEUE> = RingQueue::new();
            let (mut producer, _consumer) = queue.split();
            let never = AtomicBool::new(false);
            let start = clock.now();
            // Every arrival at 0: the stream's own time never reaches the end.
            follow(
                std::iter::repeat(Instant::ZERO),
                start,
                Duration::from_millis(200),
                &clock,
                [&never, &never],
                &mut producer,
                &std::thread::current(),
            );
            let _ = tx.send(clock.now().saturating_since(start));
        });
        let took = rx
            .recv_timeout(StdDuration::from_secs(10))
            .expect("follow stops");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
