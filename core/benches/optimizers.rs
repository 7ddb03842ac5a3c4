//! Cost of one optimizer step, and the memory footprint of every optimizer.
//!
//! `cargo bench -p ecoedge-core --bench optimizers`. Goal: one EcoGD step <= 5 us.
//! The Bayesian step (Gaussian process on 64 observations, expected improvement
//! over all 6000 Xavier NX configs) is the expensive reference.

use std::hint::black_box;
use std::mem::size_of;

use criterion::{Criterion, criterion_group, criterion_main};
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

fn report(index: u32, config: Config) -> WindowReport {
    WindowReport::measured(index, config, cost(&config), 20.0)
}

/// Steps `opt` on the bowl for `warm` windows, then measures single steps that go
/// on along the same run.
fn bench_steps<O: Optimizer>(c: &mut Criterion, name: &str, mut opt: O, warm: u32) {
    let space = xavier_space();
    let mut config = opt.start(&space);
    let mut index = 1;
    for _ in 0..warm {
        config = opt.step(&space, &report(index, config));
        index += 1;
    }
    c.bench_function(name, |b| {
        b.iter(|| {
            config = opt.step(&space, black_box(&report(index, config)));
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
    bench_steps(
        c,
        "ecogd_step",
        EcoGd::new(EcoGdSettings::default(), 1),
        200,
    );
    bench_steps(c, "mab_step", Mab::new(MabSettings::default(), 1), 100);
    bench_steps(
        c,
        "mab_joint_step",
        MabJoint::new(MabSettings::default(), 1),
        200,
    );
    bench_steps(c, "grid_step", Grid::new(), 100);
    bench_steps(c, "linear_step", Linear::new(Repeat::Forever), 100);
    bench_steps(c, "random_step", RandomSearch::new(1), 0);
    bench_steps(
        c,
        "bayes_step_64_observations",
        Bayes::new(BayesSettings::default(), 1),
        70,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = steps
}
criterion_main!(benches);
