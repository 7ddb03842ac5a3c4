//! EcoEdge as a library: serve your own batch-inference function with the
//! project's queueing, batching, energy measurement and online tuning (the Rust
//! counterpart of the original's one-line Python decorator).
//!
//! [`Service::serve`] works like [`std::thread::scope`]: it runs the service
//! loop on a thread of its own and hands your code a [`Submitter`]; every
//! [`Submitter::submit`] returns a [`Ticket`] that [`Ticket::wait`]s for that
//! request's answer. When your code returns, the queue is drained and the run's
//! [`Outcome`] comes back with your code's result. Your function gets batches of
//! inputs, in arrival order, and must return one output per input, in order.
//!
//! ```no_run
//! use ecoedge_runner::service::api::{Service, ServiceOptions};
//!
//! let mut service = Service::open(&ServiceOptions::default())?;
//! let (answers, outcome) = service.serve(
//!     |batch: Vec<f32>| batch.iter().map(|x| x * 2.0).collect::<Vec<f32>>(),
//!     |svc| {
//!         let tickets: Vec<_> = (0..64).map(|i| svc.submit(i as f32).ok()).collect();
//!         tickets.into_iter().flatten().map(|t| t.wait()).collect::<Vec<_>>()
//!     },
//! )?;
//! println!("{} answers, {} windows", answers.len(), outcome.windows.len());
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, PoisonError};
use std::thread::Thread;

use anyhow::{Context, Result, bail};
use ecoedge_bsp_jetson::MonotonicClock;
use ecoedge_bsp_jetson::sampler::Clock;
use ecoedge_core::controller::{Controller, Settings};
use ecoedge_core::optimizer::{AnyOptimizer, by_name};
use ecoedge_core::queue::{Producer, RequestSource, RingQueue};
use ecoedge_core::space::Space;
use ecoedge_core::time::Duration;
use ecoedge_core::window::WindowSettings;

use super::{Batch, Fed, Stop, serve_loop};
use crate::board::{BoardOptions, LinuxBoard};
use crate::capacity::{MAX_BATCH, QUEUE};
use crate::knobs::{KnobSet, LowerLimits};
use crate::record::{Ending, Outcome, Recorder};

/// How to set a [`Service`] up.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Which board to measure and tune, and how (default: the host under
    /// `/`, with its own meter).
    pub board: BoardOptions,
    /// Largest batch your function accepts (at most 16).
    pub max_batch: u32,
    /// Optimizer name, as `ecoedge run --optimizer` takes it.
    pub optimizer: String,
    /// Seed of the optimizer's random choices.
    pub seed: u64,
    /// Window, warm-up, alpha, energy scope, maximum wait. Without a maximum
    /// wait a ticket waits until enough requests arrive to fill its batch.
    pub settings: Settings,
    /// The knobs tuned (default CPU, GPU and batch, where the board has them).
    pub knobs: KnobSet,
    /// Lower search limits per knob.
    pub lower_limits: LowerLimits,
}

impl Default for ServiceOptions {
    /// Host board, batches up to 16, EcoGD, windows of 416 requests with 100
    /// warm-up, and a 50 ms maximum wait: a library user's requests must all be
    /// answered even when too few arrive to fill a batch.
    fn default() -> Self {
        ServiceOptions {
            board: BoardOptions::default(),
            max_batch: MAX_BATCH as u32,
            optimizer: "ecogd".into(),
            seed: 1,
            settings: Settings {
                window: WindowSettings::default(),
                max_wait: Some(Duration::from_millis(50)),
                ..Settings::default()
            },
            knobs: KnobSet::paper(),
            lower_limits: LowerLimits::NONE,
        }
    }
}

/// A board opened and ready to serve; see the module doc.
pub struct Service {
    board: LinuxBoard,
    clock: MonotonicClock,
    space: Space,
    options: ServiceOptions,
}

/// A request with the channel its answer goes back on.
struct Job<I, O> {
    input: I,
    reply: SyncSender<O>,
}

/// Why a request was not taken. The input is handed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError<I> {
    /// The queue is full (the refusal is counted in the outcome).
    Full(I),
    /// The service stopped after an error; [`Service::serve`] returns it.
    Stopped(I),
}

impl<I> fmt::Display for SubmitError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "request queue is full",
            SubmitError::Stopped(_) => "the service stopped after an error",
        })
    }
}

impl<I: fmt::Debug> std::error::Error for SubmitError<I> {}

/// A request was dropped without an answer: the service stopped on an error, or
/// it ended with the request in a partial batch (no maximum wait set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotServed;

impl fmt::Display for NotServed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request was not served")
    }
}

impl std::error::Error for NotServed {}

/// The answer to one submitted request, once its batch has run.
#[derive(Debug)]
pub struct Ticket<O> {
    answer: Receiver<O>,
}

impl<O> Ticket<O> {
    /// Blocks until the answer is there.
    pub fn wait(self) -> Result<O, NotServed> {
        self.answer.recv().map_err(|_| NotServed)
    }
}

/// Takes requests into the service's queue; shared by reference between your
/// threads.
pub struct Submitter<'q, I, O> {
    producer: Mutex<Producer<'q, Job<I, O>>>,
    service: Thread,
    failed: &'q AtomicBool,
    clock: MonotonicClock,
}

impl<I, O> Submitter<'_, I, O> {
    /// Queues `input`; the ticket gives its answer. Never blocks on inference.
    pub fn submit(&self, input: I) -> Result<Ticket<O>, SubmitError<I>> {
        if self.failed.load(Ordering::Acquire) {
            return Err(SubmitError::Stopped(input));
        }
        let (reply, answer) = sync_channel(1);
        let now = self.clock.now();
        let pushed = self
            .producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(now, Job { input, reply });
        match pushed {
            Ok(_) => {
                self.service.unpark();
                Ok(Ticket { answer })
            }
            Err(refused) => Err(SubmitError::Full(refused.0.input)),
        }
    }
}

impl Service {
    /// Opens the board and builds the knob space.
    pub fn open(options: &ServiceOptions) -> Result<Service> {
        if options.max_batch == 0 || options.max_batch as usize > MAX_BATCH {
            bail!("max_batch must be in 1..={MAX_BATCH}");
        }
        let clock = MonotonicClock::new();
        let board = LinuxBoard::open(&options.board, clock)?;
        let space = board.space(&options.knobs, options.max_batch, &options.lower_limits)?;
        Ok(Service {
            board,
            clock,
            space,
            options: options.clone(),
        })
    }

    /// The knob space being tuned.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// The board's notes: knobs or meters looked for and not found.
    pub fn notes(&self) -> &[String] {
        &self.board.notes
    }

    /// Serves `infer` while `body` submits requests; see the module doc.
    pub fn serve<I, O, R>(
        &mut self,
        mut infer: impl FnMut(Vec<I>) -> Vec<O> + Send,
        body: impl FnOnce(&Submitter<'_, I, O>) -> R,
    ) -> Result<(R, Outcome)>
    where
        I: Send,
        O: Send,
    {
        let optimizer: AnyOptimizer =
            by_name(&self.options.optimizer, &self.space, self.options.seed)
                .map_err(|e| anyhow::anyhow!("optimizer: {e}"))?;
        let ctl: Controller<Job<I, O>, AnyOptimizer, MAX_BATCH> =
            Controller::new(self.space.clone(), self.options.settings, optimizer)
                .context("controller settings")?;
        let alpha = self.options.settings.window.alpha;
        let mut queue: Box<RingQueue<Job<I, O>, QUEUE>> = Box::default();
        let closed = AtomicBool::new(false);
        let failed = AtomicBool::new(false);
        let clock = self.clock;
        let board = &mut self.board;
        let (producer, consumer) = queue.split();
        // The integrator stops by returning from `body`; nothing abandons.
        let stop = Stop::default();
        let (answer, (record, final_config, baseline)) = std::thread::scope(|s| {
            let (closed, failed, stop) = (&closed, &failed, &stop);
            let service = std::thread::Builder::new()
                .name("ecoedge-service".into())
                .spawn_scoped(s, move || {
                    let mut ctl = ctl;
                    let mut source = Fed {
                        consumer,
                        closed,
                        stop,
                    };
                    let result = serve_loop(
                        &mut ctl,
                        board,
                        &mut source,
                        |batch: &mut Batch<Job<I, O>>| run_batch(&mut infer, batch),
                        Recorder::keeping(alpha),
                        |_| {},
                    );
                    let summary = (ctl.config(), ctl.baseline());
                    // After an error, requests left in a partial batch go with
                    // the controller: their tickets see `NotServed` instead of
                    // waiting forever. (Without one, the loop drained them all.)
                    drop(ctl);
                    if result.is_err() {
                        failed.store(true, Ordering::Release);
                        while !closed.load(Ordering::Acquire) || !source.is_empty() {
                            while source.dequeue().is_some() {}
                            std::thread::park_timeout(std::time::Duration::from_millis(10));
                        }
                    }
                    result.map(|record| (record, summary.0, summary.1))
                })
                .context("starting the service thread")?;
            let submitter = Submitter {
                producer: Mutex::new(producer),
                service: service.thread().clone(),
                failed,
                clock,
            };
            let answer = body(&submitter);
            closed.store(true, Ordering::Release);
            submitter.service.unpark();
            let done = service
                .join()
                .map_err(|_| anyhow::anyhow!("the inference function panicked"))??;
            Ok::<_, anyhow::Error>((answer, done))
        })?;
        let stats = queue.stats();
        let mut record = record;
        record.refusals(stats.refused);
        Ok((
            answer,
            record.finish(Ending {
                space: self.space.clone(),
                arrived: stats.accepted + stats.refused,
                final_config,
                baseline,
                end: clock.now(),
            }),
        ))
    }
}

/// Runs your function on one batch and sends each answer to its ticket.
fn run_batch<I, O>(
    infer: &mut impl FnMut(Vec<I>) -> Vec<O>,
    batch: &mut Batch<Job<I, O>>,
) -> Result<()> {
    let mut inputs = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    while let Some(r) = batch.pop() {
        inputs.push(r.payload.input);
        replies.push(r.payload.reply);
    }
    inputs.reverse();
    replies.reverse();
    let n = inputs.len();
    let outputs = infer(inputs);
    if outputs.len() != n {
        bail!(
            "the inference function returned {} outputs for {n} inputs",
            outputs.len()
        );
    }
    for (output, reply) in outputs.into_iter().zip(replies) {
        // A dropped ticket only means nobody waits for this answer.
        let _ = reply.try_send(output);
    }
    Ok(())
}
