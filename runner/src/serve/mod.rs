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

use anyhow::{Context, Result, anyhow};
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
use crate::service::{Batch, Progress, Queue, Stop, Stopped, serve_loop};
use http::{App, serve_connections};
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
    /// More samples than the queue may ever hold: it would never fit.
    TooLarge,
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
    /// refuses them all (counted by the queue as refused samples); the
    /// receiver gets the answer. A request larger than the queue's limit is
    /// not counted: it could never be served, so it is the client's error.
    pub fn submit(
        &self,
        clock: &MonotonicClock,
        inputs: Vec<Tensor>,
        samples: usize,
        outputs: usize,
    ) -> Result<oneshot::Receiver<Answer>, Refusal> {
        if samples > self.limit {
            return Err(Refusal::TooLarge);
        }
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
            // Refused as a whole, and counted by the queue: the summary
            // accounts for every sample that arrived.
            let refusal = if self.closed.load(Ordering::Acquire) {
                Some(Refusal::Closing)
            } else if q.stats().waiting() as usize + samples > self.limit {
                Some(Refusal::Full)
            } else {
                None
            };
            if let Some(refusal) = refusal {
                q.refuse(samples as u64);
                return Err(refusal);
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
        self.wake();
        Ok(rx)
    }

    /// Refuses everything from now on; the loop drains what was accepted.
    pub fn close(&self) {
        let _q = self.lock();
        self.closed.store(true, Ordering::Release);
        self.wake();
    }

    /// Wakes the service loop, if it waits.
    fn wake(&self) {
        if let Some(t) = self
            .service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            t.unpark();
        }
    }

    /// Most samples that may wait.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the service refuses new requests (shutting down).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The loop's view of the shared queue, and of the stop flags.
struct Source<'a> {
    queue: &'a SharedQueue,
    stop: &'a Stop,
}

impl RequestSource<Sample> for Source<'_> {
    fn dequeue(&mut self) -> Option<Request<Sample>> {
        self.queue.lock().pop()
    }
    fn len(&self) -> usize {
        self.queue.lock().len()
    }
}

impl Queue<Sample> for Source<'_> {
    fn refused(&self) -> u64 {
        self.queue.lock().stats().refused
    }
    fn closed(&self) -> bool {
        self.queue.is_closed()
    }
    fn abandoned(&self) -> bool {
        self.stop.abandoned()
    }
}

/// Runs one batch of samples: concatenates their rows per input, runs the
/// engine once, and gives each job its rows of every output. If the batch
/// fails (the engine's error, such as a token id past the vocabulary), each
/// sample is run alone, so only the requests at fault fail (500) and the
/// service goes on. Returns how many
/// samples failed.
fn execute(
    engine: &mut dyn Engine,
    signature: &Signature,
    batch: &mut Batch<Sample>,
    metrics: &Metrics,
) -> u64 {
    let samples: Vec<&Sample> = batch.iter().map(|r| &r.payload).collect();
    match infer_guarded(engine, &gather(signature, &samples)) {
        Ok(outputs) => {
            scatter(&samples, &outputs, signature, metrics);
            0
        }
        Err(why) if samples.len() == 1 => {
            fail(samples[0], why, signature, metrics);
            1
        }
        Err(_) => {
            let mut failed = 0;
            for &sample in &samples {
                match infer_guarded(engine, &gather(signature, &[sample])) {
                    Ok(outputs) => scatter(&[sample], &outputs, signature, metrics),
                    Err(why) => {
                        fail(sample, why, signature, metrics);
                        failed += 1;
                    }
                }
            }
            failed
        }
    }
}

/// The engine's inputs for `samples`: each input's rows, in order.
fn gather(signature: &Signature, samples: &[&Sample]) -> Vec<Tensor> {
    signature
        .inputs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut data = Vec::new();
            for s in samples {
                let t = &s.job.inputs[i];
                let row = t.row_bytes();
                data.extend_from_slice(&t.data[s.index * row..(s.index + 1) * row]);
            }
            let mut shape = vec![samples.len()];
            shape.extend(&spec.shape);
            Tensor {
                datatype: spec.datatype,
                shape,
                data,
            }
        })
        .collect()
}

/// Runs the engine; an error becomes the reason given to clients.
fn infer_guarded(engine: &mut dyn Engine, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
    engine
        .infer(inputs)
        .map_err(|e| crate::inference::brief(&e))
}

/// Gives sample `k` of `samples` row `k` of every output.
fn scatter(samples: &[&Sample], outputs: &[Tensor], signature: &Signature, metrics: &Metrics) {
    for (k, s) in samples.iter().enumerate() {
        let mut state = s.job.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (o, out) in outputs.iter().enumerate() {
            let row = out.row_bytes();
            state.rows[o][s.index] = Some(out.data[k * row..(k + 1) * row].to_vec());
        }
        finish_sample(&mut state, signature, metrics);
    }
}

/// Marks a sample's job failed, for `why`.
fn fail(sample: &Sample, why: String, signature: &Signature, metrics: &Metrics) {
    let mut state = sample
        .job
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    state.failed = Some(why);
    finish_sample(&mut state, signature, metrics);
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
                        data: rows
                            .iter_mut()
                            .flat_map(|r| r.take().unwrap_or_default())
                            .collect(),
                    }
                })
                .collect())
        }
    };
    // A handler that gave up (client gone) dropped its receiver: fine.
    let _ = reply.send(answer);
}

/// What the HTTP side of `serve` needs.
#[derive(Debug)]
pub struct Listen {
    /// The bound listener.
    pub listener: std::net::TcpListener,
    /// The model's name in URLs.
    pub model: String,
    /// Most samples waiting before requests are refused.
    pub queue: usize,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Longest a client may take to send a request's headers or body, and
    /// longest an idle connection is kept.
    pub client_timeout: std::time::Duration,
}

/// Serves inference over HTTP until `stop` is set (a signal), then stops
/// taking requests (the listener closes, late requests get 503), serves
/// every accepted one, answers each client and returns: the board is left
/// for the caller to restore. `live` prints a line per closed window.
pub fn serve(
    board: &mut LinuxBoard,
    engine: &mut dyn Engine,
    mut ctl: Controller<Sample, AnyOptimizer, MAX_BATCH>,
    record: Recorder,
    listen: Listen,
    stop: &Arc<Stop>,
    live: bool,
) -> Result<Outcome> {
    let clock = board.clock();
    let queue = Arc::new(SharedQueue::new(listen.queue));
    let metrics = Arc::new(Metrics::new(
        &listen.model,
        board.name,
        engine.max_batch() as u32,
    ));
    // Once, not per batch: the engine is borrowed mutably while it runs.
    let signature = engine.signature().clone();
    let app = Arc::new(App {
        model: listen.model,
        signature: signature.clone(),
        queue: Arc::clone(&queue),
        clock,
        metrics: Arc::clone(&metrics),
        max_body: listen.max_body,
        client_timeout: listen.client_timeout,
    });
    // Two workers: the handlers only parse, queue and wait; inference runs
    // on this thread, so more workers would only take cores from it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ecoedge-http")
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    listen.listener.set_nonblocking(true)?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(listen.listener)?
    };
    let (stop_http, queue_http) = (Arc::clone(stop), Arc::clone(&queue));
    let server = runtime.spawn(serve_connections(listener, app, async move {
        while !stop_http.stopping() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Refuse from now on; the loop drains what was accepted and the
        // handlers waiting for it answer before the server ends.
        queue_http.close();
    }));

    *queue.service.lock().unwrap_or_else(PoisonError::into_inner) = Some(std::thread::current());
    let mut failed = 0;
    let served = serve_loop(
        &mut ctl,
        board,
        &mut Source {
            queue: &queue,
            stop,
        },
        |batch| {
            failed += execute(engine, &signature, batch, &metrics);
            Ok(())
        },
        record,
        |p| observe(&metrics, &p, live),
    );
    // The loop ends once the queue is closed and drained, or abandoned, or
    // on an error: refuse everything, drop what still waits (its clients get
    // 500: not served), and let the server finish its answers.
    stop.stop.store(true, Ordering::Release);
    queue.close();
    let (space, final_config, baseline) = (ctl.space().clone(), ctl.config(), ctl.baseline());
    drop(ctl);
    while queue.lock().pop().is_some() {}
    let http = runtime.block_on(server);
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    // A fault that stopped the loop still gets its summary and logs.
    let (mut record, stopped) = match served {
        Ok(record) => (record, None),
        Err(Stopped { record, error }) => (*record, Some(format!("{error:#}"))),
    };
    http.map_err(|e| anyhow!("the HTTP server stopped: {e}"))?;
    // Read after the server ended: refusals while it finished count too.
    let stats = queue.lock().stats();
    record.refusals(stats.refused);
    let mut out = record.finish(Ending {
        space,
        arrived: stats.accepted + stats.refused,
        final_config,
        baseline,
        end: clock.now(),
    });
    out.failed = failed;
    out.stopped = stopped;
    Ok(out)
}

/// Updates the metrics after a batch; prints a closed window's live line.
fn observe(metrics: &Metrics, p: &Progress<'_>, live: bool) {
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
}
