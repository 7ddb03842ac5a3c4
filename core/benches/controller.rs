//! Amortised per-request cost of the data path (arrival, batching, completion,
//! window accounting) and the controller's memory footprint.
//!
//! `cargo bench -p ecoedge-core --bench controller`. Goals: <= 100 ns per request,
//! `size_of` of the controller <= 32 KiB with the payload and the load sample
//! excluded (the arrivals kept for replay: 8 bytes each, the `A` parameter,
//! 32 KiB by default).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ecoedge_core::prelude::*;

/// The Xavier NX space: 25 CPU levels, 15 GPU levels, batch 1..=16.
fn xavier_space() -> Space {
    let cpu: Vec<u32> = (0..25).map(|i| 115_200 + i * 76_800).collect();
    let gpu: Vec<u32> = (0..15).map(|i| 114_750_000 + i * 71_000_000).collect();
    Space::new(&[
        Dimension::new(Knob::Cpu, &cpu).unwrap(),
        Dimension::new(Knob::Gpu, &gpu).unwrap(),
        Dimension::batch(16).unwrap(),
    ])
    .unwrap()
}

const BATCH_CAPACITY: usize = 16;
const QUEUE: usize = 256;

/// `Fixed`, but every window after the first runs under a ceiling it never
/// reaches: the abandonment check runs on every request, as in an EcoGD probe.
struct Probing(Fixed);

impl Optimizer for Probing {
    fn name(&self) -> &'static str {
        "probing"
    }
    fn start(&mut self, space: &Space) -> Config {
        self.0.start(space)
    }
    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        self.0.step(space, report)
    }
    fn ceiling(&self) -> Option<f64> {
        Some(f64::MAX)
    }
}

fn per_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("per_request");
    for batch in [1usize, 16] {
        let fixed = Fixed::new(xavier_space().config(&[24, 14, batch - 1]).unwrap());
        bench_batches(&mut group, &format!("batch{batch}"), batch, fixed);
        bench_batches(
            &mut group,
            &format!("batch{batch}_probing"),
            batch,
            Probing(fixed),
        );
    }
    group.finish();
}

/// Pushes `batch` arrivals, forms the batch, completes it: one iteration.
fn bench_batches<O: Optimizer>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    batch: usize,
    optimizer: O,
) {
    // A given baseline skips calibration, so the fixed batch size holds from the
    // first request.
    let settings = Settings {
        baseline: Some(Baseline::new(1.0, 0.01).unwrap()),
        ..Settings::default()
    };
    let mut ctl: Controller<(), O, BATCH_CAPACITY> =
        Controller::new(xavier_space(), settings, optimizer).unwrap();
    let mut queue: RingQueue<(), QUEUE> = RingQueue::new();
    let mut out = heapless::Vec::new();
    let (mut now, mut energy) = (0u64, 0.0f64);
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            for _ in 0..batch {
                now += 1_000;
                let _ = queue.push(Instant::from_micros(now), ());
            }
            energy += 0.1;
            let n = ctl
                .poll_batch(Instant::from_micros(now), energy, &mut queue, &mut out)
                .unwrap();
            now += 5_000;
            energy += 1.0;
            let done = ctl
                .handle_batch_done(Instant::from_micros(now), energy)
                .unwrap();
            let _ = black_box((n, done));
        })
    });
}

fn footprint(_: &mut Criterion) {
    println!(
        "size_of: Controller<(), Fixed, {BATCH_CAPACITY}> = {} B, \
         Controller<(), AnyOptimizer, {BATCH_CAPACITY}> = {} B, RingQueue<(), {QUEUE}> = {} B, \
         Request<()> = {} B, Space = {} B, CostWindow = {} B",
        size_of::<Controller<(), Fixed, BATCH_CAPACITY>>(),
        size_of::<Controller<(), AnyOptimizer, BATCH_CAPACITY>>(),
        size_of::<RingQueue<(), QUEUE>>(),
        size_of::<Request<()>>(),
        size_of::<Space>(),
        size_of::<ecoedge_core::window::CostWindow>(),
    );
}

criterion_group!(benches, per_request, footprint);
criterion_main!(benches);
