//! Cost of one optimizer step, and the memory footprint of every optimizer.
//!
//! `cargo bench -p ecoedge-core --bench optimizers`. Goal: one EcoGD step <= 5 us
//! on measured costs, <= 1 ms under a full load sample (it replays the last
//! 4096 arrivals for every remembered config, once a window). The Bayesian step
//! (Gaussian process on 64 observations, expected improvement over all 6000
//! Xavier NX configs) is the expensive reference.

use std::hint::black_box;
use std::mem::size_of;

use criterion::{Criterion, criterion_group, criterion_main};
use ecoedge_core::cost::EnergyScope;
use ecoedge_core::load::{Arrivals, LOAD_SAMPLE, Load, Sample, Service};
use ecoedge_core::optimizer::{
    AnyOptimizer, Bayes, BayesSettings, Dvfs, EcoGd, EcoGdSettings, Fixed, Grid, Linear, Mab,
    MabJoint, MabSettings, Optimizer, RandomSearch, Repeat,
};
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

/// A bowl with its optimum inside the space, about 1.0 at the maximum config.
fn cost(c: &Config) -> f64 {
    let d = |dim: usize, opt: f64, span: f64| (c.index(dim) as f64 - opt) / span;
    0.6 + d(0, 16.0, 24.0).powi(2) + d(1, 9.0, 14.0).powi(2) + d(2, 10.0, 15.0).powi(2)
}

/// A window on the bowl, with service figures that slow down with the batch
/// and speed up with the clocks.
fn report(index: u32, config: Config) -> WindowReport {
    let (cpu, gpu, batch) = (config.index(0), config.index(1), config.index(2));
    WindowReport {
        service: Some(Service {
            fixed_s: 0.01 * (batch + 1) as f64 / (1.0 + (cpu + gpu) as f64 / 8.0),
            per_request_s: 0.0,
            active_w: 5.0 + (cpu + gpu) as f64 / 4.0,
            idle_w: Some(2.0),
        }),
        ..WindowReport::measured(index, config, cost(&config), 20.0)
    }
}

/// Steps `opt` on the bowl for `warm` windows, then measures single steps that go
/// on along the same run; under `load` when given.
fn bench_steps<O: Optimizer>(
    c: &mut Criterion,
    name: &str,
    mut opt: O,
    warm: u32,
    load: Option<&Load<'_>>,
) {
    let space = xavier_space();
    let step = |opt: &mut O, report: &WindowReport| match load {
        Some(load) => opt.step_under(&space, report, load),
        None => opt.step(&space, report),
    };
    let mut config = opt.start(&space);
    let mut index = 1;
    for _ in 0..warm {
        config = step(&mut opt, &report(index, config));
        index += 1;
    }
    c.bench_function(name, |b| {
        b.iter(|| {
            config = step(&mut opt, black_box(&report(index, config)));
            index += 1;
        })
    });
}

fn steps(c: &mut Criterion) {
    println!("size_of (bytes):");
    println!("  Fixed         {:>6}", size_of::<Fixed>());
    println!("  EcoGd         {:>6}", size_of::<EcoGd>());
    println!("  Grid          {:>6}", size_of::<Grid>());
    println!("  Linear        {:>6}", size_of::<Linear>());
    println!("  Dvfs          {:>6}", size_of::<Dvfs>());
    println!("  Mab           {:>6}", size_of::<Mab>());
    println!("  MabJoint      {:>6}", size_of::<MabJoint>());
    println!("  Bayes         {:>6}", size_of::<Bayes>());
    println!("  RandomSearch  {:>6}", size_of::<RandomSearch>());
    println!("  AnyOptimizer  {:>6}", size_of::<AnyOptimizer>());
    let gd = || EcoGd::new(EcoGdSettings::default(), 1);
    bench_steps(c, "ecogd_step", gd(), 200, None);
    // A full sample: 4096 arrivals 20-60 ms apart.
    let mut arrivals: Arrivals<LOAD_SAMPLE> = Arrivals::default();
    let mut t = 0;
    for i in 0..LOAD_SAMPLE as u64 {
        t += 20_000 + i * 7_919 % 40_000;
        arrivals.push(Instant::from_micros(t));
    }
    let load = Load {
        sample: Sample::new(&arrivals, 0, Instant::from_micros(t)),
        baseline: Baseline::new(0.5, 0.5).unwrap(),
        alpha: Alpha::default(),
        scope: EnergyScope::Total,
        max_wait: None,
    };
    bench_steps(c, "ecogd_step_under_load_4096", gd(), 200, Some(&load));
    bench_steps(
        c,
        "mab_step",
        Mab::new(MabSettings::default(), 1),
        100,
        None,
    );
    bench_steps(
        c,
        "mab_joint_step",
        MabJoint::new(MabSettings::default(), 1),
        200,
        None,
    );
    bench_steps(c, "grid_step", Grid::new(), 100, None);
    bench_steps(c, "linear_step", Linear::new(Repeat::Forever), 100, None);
    bench_steps(c, "random_step", RandomSearch::new(1), 0, None);
    bench_steps(
        c,
        "bayes_step_64_observations",
        Bayes::new(BayesSettings::default(), 1),
        70,
        None,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = steps
}
criterion_main!(benches);
