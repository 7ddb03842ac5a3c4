//! `ecoedge serve`: the service loop behind a KServe v2 REST server.
//!
//! HTTP handlers (on a small tokio runtime) parse and check each inference
//! request ([`kserve`]), put its samples into the core's queue, one entry per
//! sample, and wait for the answer. The service loop (the same as `run`'s, on
//! its own thread) batches samples of different requests as the controller's
//! config says, runs the batch once, splits the outputs back by rows, and
//! answers each request when its last sample is done. The queue is shared
//! behind a lock: tokio's tasks need it `'static`, and the core's split
//! producer borrows the queue.

pub mod http;
pub mod kserve;
pub mod metrics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;

use anyhow::Result;
use ecoedge_bsp_jetson::MonotonicClock;
use ecoedge_bsp_jetson::sampler::Clock;
use ecoedge_core::controller::Controller;
use ecoedge_core::optimizer::AnyOptimizer;
use ecoedge_core::queue::{Request, RequestSource, RingQueue};
use ecoedge_core::space::Knob;
use tokio::sync::oneshot;

use crate::board::LinuxBoard;
use crate::capacity::{MAX_BATCH, QUEUE};
use crate::inference::tensor::Tensor;
use crate::inference::{Engine, Signature};
use crate::record::{Ending, Outcome, Recorder};
use crate::report::window_line;
use crate::service::{Batch, Queue, serve_loop};
use metrics::Metrics;

/// What a request's handler waits for: every output, batch axis first, or
/// why the engine failed.
pub type Answer = Result<Vec<Tensor>, String>;

/// One inference request in flight: its inputs, the rows of outputs its
/// samples got so far, and where the answer goes.
pub struct Job {
    inputs: Vec<Tensor>,
    state: Mutex<JobState>,
}

struct JobState {
    /// Per output, the bytes of each sample's row (filled as batches finish).
    rows: Vec<Vec<Option<Vec<u8>>>>,
    left: usize,
    failed: Option<String>,
    reply: Option<oneshot::Sender<Answer>>,
}

/// One queue entry: sample `index` of a job.
pub struct Sample {
    job: Arc<Job>,
    index: usize,
}

/// The core's queue, shared by the handlers (producers) and the loop.
pub struct SharedQueue {
    queue: Mutex<RingQueue<Sample, QUEUE>>,
    /// Most samples that may wait (`--queue`), at most the queue's capacity.
    limit: usize,
    closed: AtomicBool,
    service: Mutex<Option<Thread>>,
}

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The queue cannot take all its samples now.
    Full,
    /// The service is shutting down.
    Closing,
}

impl SharedQueue {
    /// An empty queue holding at most `limit` samples (and at most its capacity).
    pub fn new(limit: usize) -> Self {
        SharedQueue {
            queue: Mutex::new(RingQueue::new()),
            limit: limit.min(QUEUE - 1),
            closed: AtomicBool::new(false),
            service: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RingQueue<Sample, QUEUE>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues every sample of `inputs` (`samples` rows) as one job, or
    /// refuses them all (counted as refused samples); the receiver gets the answer.
    pub fn submit(
        &self,
        clock: &MonotonicClock,
        inputs: Vec<Tensor>,
        samples: usize,
        outputs: usize,
    ) -> Result<oneshot::Receiver<Answer>, Refusal> {
        let (tx, rx) = oneshot::channel();
        let job = Arc::new(Job {
            inputs,
            state: Mutex::new(JobState {
                rows: vec![vec![None; samples]; outputs],
                left: samples,
                failed: None,
                reply: Some(tx),
            }),
        });
        {
            let mut q = self.lock();
            // Checked under the lock: `closed` is set under it too, so no
            // sample is queued after the loop saw the queue closed and empty.
            if self.closed.load(Ordering::Acquire) {
                return Err(Refusal::Closing);
            }
            let stats = q.stats();
            let waiting = stats.waiting() as usize;
            if waiting + samples > self.limit {
                // Refused as a whole: offer them so the queue counts them.
                q.refuse(samples as u64);
                return Err(Refusal::Full);
            }
            let now = clock.now();
            for index in 0..samples {
                // Cannot fail: the room was checked above, and only this
                // lock's holder pushes.
                let _ = q.push(
                    now,
                    Sample {
                        job: Arc::clone(&job),
                        index,
                    },
                );
            }
        }
        if let Some(t) = self
            .service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            t.unpark();
        }
        Ok(rx)
    }

    /// Refuses everything from now on; the loop drains what was accepted.
    pub fn close(&self) {
        let _q = self.lock();
        self.closed.store(true, Ordering::Release);
        if let Some(t) = self
            .service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            t.unpark();
        }
    }

    /// Whether the service refuses new requests (shutting down).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The loop's view of the shared queue.
struct Source<'a>(&'a SharedQueue);

impl RequestSource<Sample> for Source<'_> {
    fn dequeue(&mut self) -> Option<Request<Sample>> {
        self.0.lock().pop()
    }
    fn len(&self) -> usize {
        self.0.lock().len()
    }
}

impl Queue<Sample> for Source<'_> {
    fn refused(&self) -> u64 {
        self.0.lock().stats().refused
    }
}

/// Runs one batch of samples: concatenates their rows per input, runs the
/// engine once, gives each job its rows of every output, and answers the jobs
/// whose last sample this was. An engine error fails the batch's jobs (500)
/// and the service goes on.
fn execute(engine: &mut dyn Engine, batch: &mut Batch<Sample>, metrics: &Metrics) {
    let signature = engine.signature().clone();
    let n = batch.len();
    let inputs: Vec<Tensor> = signature
        .inputs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut data = Vec::new();
            for r in batch.iter() {
                let t = &r.payload.job.inputs[i];
                let row = t.row_bytes();
                data.extend_from_slice(&t.data[r.payload.index * row..(r.payload.index + 1) * row]);
            }
            let mut shape = vec![n];
            shape.extend(&spec.shape);
            Tensor {
                datatype: spec.datatype,
                shape,
                data,
            }
        })
        .collect();
    match engine.infer(&inputs) {
        Ok(outputs) => {
            for (k, r) in batch.iter().enumerate() {
                let mut s = r.payload.job.state.lock().unwrap_or_else(PoisonError::into_inner);
                for (o, out) in outputs.iter().enumerate() {
                    let row = out.row_bytes();
                    s.rows[o][r.payload.index] = Some(out.data[k * row..(k + 1) * row].to_vec());
                }
                finish_sample(&mut s, &signature, metrics);
            }
        }
        Err(e) => {
            let why = crate::inference::brief(&e);
            for r in batch.iter() {
                let mut s = r.payload.job.state.lock().unwrap_or_else(PoisonError::into_inner);
                s.failed = Some(why.clone());
                finish_sample(&mut s, &signature, metrics);
            }
        }
    }
}

/// Counts one sample of a job done; the last one answers the job.
fn finish_sample(s: &mut JobState, signature: &Signature, metrics: &Metrics) {
    s.left -= 1;
    if s.left > 0 {
        return;
    }
    let Some(reply) = s.reply.take() else {
        return;
    };
    let answer = match s.failed.take() {
        Some(why) => {
            metrics.request(metrics::Outcome::Failed);
            Err(why)
        }
        None => {
            let samples = s.rows.first().map_or(0, Vec::len);
            Ok(signature
                .outputs
                .iter()
                .zip(s.rows.iter_mut())
                .map(|(spec, rows)| {
                    let mut shape = vec![samples];
                    shape.extend(&spec.shape);
                    Tensor {
                        datatype: spec.datatype,
                        shape,
                        data: rows.iter_mut().flat_map(|r| r.take().unwrap_or_default()).collect(),
                    }
                })
                .collect())
        }
    };
    // A handler that gave up (client gone) dropped its receiver: fine.
    let _ = reply.send(answer);
}

/// The service loop of `serve`: serves the shared queue through `engine` on
/// `board` until the queue is closed and drained; reports to `metrics`.
pub fn serve_queue(
    board: &mut LinuxBoard,
    engine: &mut dyn Engine,
    mut ctl: Controller<Sample, AnyOptimizer, MAX_BATCH>,
    queue: &SharedQueue,
    clock: MonotonicClock,
    metrics: &Metrics,
    record: Recorder,
    live: bool,
) -> Result<Outcome> {
    *queue.service.lock().unwrap_or_else(PoisonError::into_inner) = Some(std::thread::current());
    let mut source = Source(queue);
    let record = serve_loop(
        &mut ctl,
        board,
        &clock,
        &mut source,
        &queue.closed,
        |batch| {
            execute(engine, batch, metrics);
            Ok(())
        },
        record,
        |p| {
            let dt = p.now.saturating_since(p.started).as_secs_f64();
            let joules = (p.meter_end_j - p.meter_start_j).max(0.0);
            metrics.batch(p.size, joules, if dt > 0.0 { joules / dt } else { 0.0 });
            metrics.queue_depth(p.waiting);
            let hz = |k: Knob, per: f64| p.space.knob_value(&p.config, k).map(|v| f64::from(v) * per);
            metrics.config(
                hz(Knob::Cpu, 1e3),
                hz(Knob::Gpu, 1.0),
                hz(Knob::Memory, 1.0),
                p.space.batch_size(&p.config),
            );
            if let Some(w) = p.window {
                metrics.window(w.energy_j, w.cost.mean);
                if live {
                    eprintln!("{}", window_line(p.space, w, &p.config));
                }
            }
        },
    )?;
    let stats = queue.lock().stats();
    let mut record = record;
    record.refusals(stats.refused);
    Ok(record.finish(Ending {
        space: ctl.space().clone(),
        arrived: stats.accepted + stats.refused,
        final_config: ctl.config(),
        baseline: ctl.baseline(),
        end: clock.now(),
    }))
}
