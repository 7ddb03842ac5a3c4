//! Simulator speed: simulated requests per second through the controller and the
//! simulator board, and the wall time of a 3-hour trace with EcoGD.
//!
//! `cargo bench -p ecoedge-runner --bench sim`. Goals: >= 5 million simulated
//! requests per second; a 3-hour `trace:twitter` run with ecogd in < 1 s.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ecoedge_core::optimizer::by_name;
use ecoedge_runner::sim::model::{DnnKind, XavierNx};
use ecoedge_runner::sim::{SimSetup, simulate, space_of};
use ecoedge_runner::workload::Workload;

fn run(model: &XavierNx, workload: &str, optimizer: &str) -> usize {
    let setup = SimSetup::new(Workload::parse(workload).unwrap(), 1);
    let space = space_of(model, &setup).unwrap();
    let out = simulate(model, by_name(optimizer, &space, 1).unwrap(), &setup).unwrap();
    out.served.len()
}

fn simulator(c: &mut Criterion) {
    let model = XavierNx::new(DnnKind::Resnet50);
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    for (workload, optimizer) in [
        ("fixed:50ms", "fixed:max"),
        ("fixed:50ms", "ecogd"),
        ("bursty:10@500ms", "ecogd"),
        ("trace:twitter", "ecogd"),
    ] {
        let served = run(&model, workload, optimizer) as u64;
        group.throughput(Throughput::Elements(served));
        group.bench_function(format!("{workload}/{optimizer}"), |b| {
            b.iter(|| black_box(run(&model, workload, optimizer)))
        });
    }
    group.finish();
}

criterion_group!(benches, simulator);
criterion_main!(benches);
