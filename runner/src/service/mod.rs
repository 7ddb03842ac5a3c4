//! The real-time service loop: the core's controller on a wall clock, real
//! inference, a real board.
//!
//! Thin in the manner of `quinn` around `quinn-proto`: read the clock and the
//! meter, feed the [`Controller`], run the batch it hands out, report it done,
//! apply the config it returns, sleep until something happens. Arrivals come from
//! another thread through the core's [`RingQueue`], split into a producer (the
//! arrival thread, or the integrator's `submit` calls) and a consumer (this loop);
//! the producer wakes the loop after each push, so an idle loop costs nothing.
//!
//! [`run_workload`] serves a [`Workload`] on synthetic inputs (`ecoedge run`);
//! [`api`] wraps an integrator's own batch-inference closure.

pub mod api;
pub mod board;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result};
use ecoedge_bsp_jetson::MonotonicClock;
use ecoedge_bsp_jetson::sampler::Clock;
use ecoedge_core::controller::Controller;
use ecoedge_core::optimizer::Optimizer;
use ecoedge_core::queue::{Consumer, Producer, Request, RequestSource, RingQueue};
use ecoedge_core::time::Instant;
use ecoedge_core::window::WindowReport;

use crate::inference::Engine;
pub use crate::report::Outcome;
use crate::report::Served;
use crate::workload::Workload;
use board::Board;

/// Largest batch the service forms.
pub const MAX_BATCH: usize = 16;
/// Request queue: 1023 requests wait, then arrivals are refused (and counted).
pub const QUEUE: usize = 1024;
/// Longest the loop sleeps before looking at its stop conditions again.
const IDLE_CHECK: StdDuration = StdDuration::from_millis(50);

/// A batch as the controller hands it out.
pub type Batch<T> = heapless::Vec<Request<T>, MAX_BATCH>;

/// Progress, handed to the observer after every batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Time since start, microseconds.
    pub now_us: u64,
    /// Requests served so far.
    pub served: u64,
    /// Windows closed so far.
    pub windows: usize,
    /// Batch size of the config in force.
    pub batch: u32,
}

/// Everything the loop records.
#[derive(Debug, Default)]
struct Record {
    served: Vec<Served>,
    windows: Vec<WindowReport>,
    /// Window open when each refusal was seen (at batch granularity: the
    /// arrival thread refuses, the loop notices after the batch).
    refused_in: Vec<u32>,
}

impl Record {
    /// Attributes refusals counted so far, beyond those already seen, to the
    /// window open now.
    fn note_refusals(&mut self, refused: u64) {
        let window = self.windows.len() as u32;
        let seen = self.refused_in.len() as u64;
        self.refused_in.extend((seen..refused).map(|_| window));
    }
}

/// Serves batches until `closed` is set and nothing more can be released: the
/// queue is drained of every full batch (and of partial ones when the
/// controller has a maximum wait). `execute` runs a batch; it may take the
/// payloads out. Errors stop the loop at once.
fn serve_loop<T, O: Optimizer>(
    ctl: &mut Controller<T, O, MAX_BATCH>,
    board: &mut Board,
    clock: &MonotonicClock,
    consumer: &mut Consumer<'_, T>,
    closed: &AtomicBool,
    mut execute: impl FnMut(&mut Batch<T>) -> Result<()>,
    mut observe: impl FnMut(Progress),
) -> Result<Record> {
    let mut record = Record::default();
    let mut batch: Batch<T> = heapless::Vec::new();
    let mut arrivals: heapless::Vec<u64, MAX_BATCH> = heapless::Vec::new();
    board.apply(ctl.space(), &ctl.config(), |k| ctl.governed(k))?;
    loop {
        // Read before looking at the queue: the producer sets `closed` after
        // its last push, so everything pushed is visible once it reads true.
        let finished = closed.load(Ordering::Acquire);
        let now = clock.now();
        let energy = board.energy_j(now)?;
        let n = ctl.poll_batch(now, energy, consumer, &mut batch)?;
        if n > 0 {
            arrivals.clear();
            for r in &batch {
                // Cannot fail: both hold at most MAX_BATCH.
                let _ = arrivals.push(r.arrival.as_micros());
            }
            execute(&mut batch)?;
            let done = clock.now();
            let energy = board.energy_j(done)?;
            let c = ctl.handle_batch_done(done, energy)?;
            let window = record.windows.len() as u32;
            record.served.extend(arrivals.iter().map(|&a| Served {
                arrival_us: a,
                done_us: done.as_micros(),
                energy_j: c.energy_j,
                window,
            }));
            record.note_refusals(consumer.stats().refused);
            if let Some(w) = c.window {
                record.windows.push(w);
            }
            if let Some(config) = c.apply {
                board.apply(ctl.space(), &config, |k| ctl.governed(k))?;
            }
            observe(Progress {
                now_us: done.as_micros(),
                served: ctl.served(),
                windows: record.windows.len(),
                batch: ctl.space().batch_size(&ctl.config()),
            });
            continue;
        }
        let deadline = ctl.poll_timeout();
        if finished && consumer.is_empty() && deadline.is_none() {
            // Whatever sits in the batch buffer now is below one batch and no
            // maximum wait will release it: it stays counted as pending.
            return Ok(record);
        }
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
    /// No arrival after this much time, microseconds.
    pub duration_us: u64,
}

/// Serves `setup.workload` on synthetic inputs through `engine` until the
/// duration is up or `stop` is set (Ctrl-C), then drains the queue. The
/// controller's config is applied to `board` as it changes.
pub fn run_workload<O: Optimizer>(
    board: &mut Board,
    engine: &mut dyn Engine,
    mut ctl: Controller<(), O, MAX_BATCH>,
    setup: &RunSetup,
    clock: MonotonicClock,
    stop: &AtomicBool,
    observe: impl FnMut(Progress),
) -> Result<Outcome> {
    let arrivals = setup.workload.arrivals(setup.seed)?;
    let mut queue: RingQueue<(), QUEUE> = RingQueue::new();
    let closed = AtomicBool::new(false);
    let failed = AtomicBool::new(false);
    let service = std::thread::current();
    let start_us = clock.now().as_micros();
    let (mut producer, mut consumer) = queue.split();
    let record = std::thread::scope(|s| {
        let arrival_thread = std::thread::Builder::new()
            .name("ecoedge-arrivals".into())
            .spawn_scoped(s, || {
                follow(
                    arrivals,
                    start_us,
                    setup.duration_us,
                    &clock,
                    [stop, &failed],
                    &mut producer,
                    &service,
                );
                closed.store(true, Ordering::Release);
                service.unpark();
            })
            .context("starting the arrival thread")?;
        let result = serve_loop(
            &mut ctl,
            board,
            &clock,
            &mut consumer,
            &closed,
            |batch| engine.run_synthetic(batch.len()),
            observe,
        );
        if result.is_err() {
            failed.store(true, Ordering::Release);
        }
        // The arrival thread only loops and sleeps; it cannot panic.
        let _ = arrival_thread.join();
        result
    })?;
    let end_us = clock.now().as_micros();
    let stats = queue.stats();
    let mut record = record;
    record.note_refusals(stats.refused);
    Ok(Outcome {
        space: ctl.space().clone(),
        served: record.served,
        windows: record.windows,
        arrived: stats.accepted + stats.refused,
        refused: stats.refused,
        refused_in: record.refused_in,
        final_config: ctl.config(),
        baseline: ctl.baseline(),
        end_us,
    })
}

/// Pushes each arrival at its time after `start_us` (arrival stamped with the workload's
/// instant, so a late wake-up counts against the service as a real client's
/// would) until the arrivals end, `duration_us` passes or a stop flag is set.
fn follow(
    arrivals: impl Iterator<Item = u64>,
    start_us: u64,
    duration_us: u64,
    clock: &MonotonicClock,
    stops: [&AtomicBool; 2],
    producer: &mut Producer<'_, ()>,
    service: &Thread,
) {
    let stopped = || stops.iter().any(|s| s.load(Ordering::Acquire));
    for at in arrivals.take_while(|&t| t < duration_us) {
        let at = start_us + at;
        loop {
            if stopped() {
                return;
            }
            let now = clock.now().as_micros();
            if now >= at {
                break;
            }
            std::thread::sleep(StdDuration::from_micros(at - now).min(IDLE_CHECK));
        }
        // A refusal is counted by the queue; the request is gone by design.
        let _ = producer.push(Instant::from_micros(at), ());
        service.unpark();
    }
}

#[cfg(test)]
mod record_tests {
    use super::Record;

    #[test]
    fn refusals_go_to_the_window_open_when_seen() {
        let mut r = Record::default();
        r.note_refusals(2);
        r.note_refusals(2);
        assert_eq!(r.refused_in, [0, 0]);
        r.windows.push(ecoedge_core::window::WindowReport::measured(
            0,
            Default::default(),
            1.0,
            0.0,
        ));
        r.note_refusals(3);
        assert_eq!(r.refused_in, [0, 0, 1]);
    }
}
