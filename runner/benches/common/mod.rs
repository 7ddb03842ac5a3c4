//! What the inference benchmarks share: their inputs and their timing.

// Each bench uses its part: `time` (median) or `time_min`.
#![allow(dead_code)]

use std::time::Instant;

use anyhow::{Result, anyhow};
use ecoedge_runner::inference::{DataType, InputKind, InputSpec, Tensor};

/// Inputs at `batch` for a model's inputs, the same as
/// `runner/benches/ort_bench.py` makes: features 0.5, token ids
/// `(i * 7919) % 1000`, masks of ones, token types of zeros.
pub fn bench_inputs(specs: &[InputSpec], batch: usize) -> Result<Vec<Tensor>> {
    specs
        .iter()
        .map(|spec| {
            let mut shape = vec![batch];
            shape.extend(&spec.shape);
            let n: usize = shape.iter().product();
            let data: Vec<u8> = match (spec.datatype, spec.kind) {
                (DataType::F32, _) => 0.5f32.to_le_bytes().repeat(n),
                (DataType::I64, InputKind::Mask) => 1i64.to_le_bytes().repeat(n),
                (DataType::I64, InputKind::Zeros) => 0i64.to_le_bytes().repeat(n),
                (DataType::I64, _) => (0..n as i64)
                    .flat_map(|i| ((i * 7919) % 1000).to_le_bytes())
                    .collect(),
                (other, _) => {
                    return Err(anyhow!("input {}: no bench input of {other}", spec.name));
                }
            };
            Tensor::new(spec.datatype, shape, data)
        })
        .collect()
}

/// Seconds each run may take in all: `ECOEDGE_BENCH_SECONDS`, default 3.
pub fn budget_s() -> f64 {
    std::env::var("ECOEDGE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0)
}

/// Median seconds of `f` after one warm-up run: as many runs as fit the
/// budget, 3 to 200.
pub fn time(f: impl FnMut() -> Result<()>) -> Result<f64> {
    let samples = samples(budget_s(), f)?;
    Ok(samples[samples.len() / 2])
}

/// The fastest of the runs that fit `budget` seconds (3 to 200, after a
/// warm-up): on a machine shared with other load, the run least disturbed
/// by it.
pub fn time_min(budget: f64, f: impl FnMut() -> Result<()>) -> Result<f64> {
    Ok(samples(budget, f)?[0])
}

/// Seconds of each run that fits `budget` after a warm-up, sorted.
fn samples(budget: f64, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    let t = Instant::now();
    f()?;
    let first = t.elapsed().as_secs_f64();
    let runs = ((budget / first.max(1e-6)) as usize).clamp(3, 200);
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples)
}

/// A comma-separated list from the environment, or `default`.
pub fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `ECOEDGE_BENCH_THREADS` (default `1,ALL`; ALL is every core this process may use).
pub fn thread_counts() -> Result<Vec<usize>> {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    env_list("ECOEDGE_BENCH_THREADS", "1,ALL")
        .iter()
        .map(|t| {
            if t == "ALL" {
                Ok(all)
            } else {
                t.parse().map_err(Into::into)
            }
        })
        .collect()
}
