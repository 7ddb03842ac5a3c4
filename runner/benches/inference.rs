//! Inference benchmarks (run with `cargo bench -p ecoedge-runner --bench inference`):
//!
//! 1. tract latency per batch size, single-threaded and on every core, for each
//!    model, with one symbolic plan and with a plan for the exact batch size;
//! 2. the service loop's throughput against raw tract at batch 16 (ResNet-50 by
//!    default): `ecoedge run`'s loop with the arrival thread, queue, controller,
//!    meter and knobs, versus `state.run` in a bare loop.
//!
//! Iterations last up to seconds, so instead of criterion's statistics this
//! times whole runs: one warm-up, then as many runs as fit `ECOEDGE_BENCH_SECONDS`
//! (default 3, at least 3 runs), and reports the median. Environment:
//! `ECOEDGE_BENCH_MODELS` (default `resnet50,bert-tiny`), `ECOEDGE_BENCH_BATCHES`
//! (default `1,2,4,8,16`), `ECOEDGE_BENCH_THREADS` (default `1,ALL`),
//! `ECOEDGE_BENCH_SERVICE` (model for part 2, default `resnet50`; `none` skips
//! it), `ECOEDGE_BENCH_SERVICE_BATCHES` (timed batches of part 2, default 8).
//! Results go to stdout as markdown and to `target/ecoedge-bench.json`, which
//! `runner/benches/ort_bench.py` reads to report onnxruntime as a ratio.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use common::{bench_inputs, env_list, thread_counts, time};
use ecoedge_bsp_jetson::MonotonicClock;
use ecoedge_core::controller::{Controller, Settings};
use ecoedge_core::optimizer::by_name;
use ecoedge_core::window::WindowSettings;
use ecoedge_models::Builtin;
use ecoedge_runner::board::{BoardAccess, BoardOptions, LinuxBoard};
use ecoedge_runner::inference::{DataType, Engine, PlanMode, TractEngine, TractOptions};
use ecoedge_runner::knobs::{KnobSet, LowerLimits};
use ecoedge_runner::record::Recorder;
use ecoedge_runner::service::{RunSetup, Stop, run_workload};
use ecoedge_runner::workload::Workload;
use serde_json::json;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::RunOptions;

/// Inputs at `batch` shaped as the engine reads the model's inputs: features
/// 0.5, token ids below 1000, masks of ones (`bench_inputs`, as tract tensors).
fn inputs(path: &Path, batch: usize) -> Result<TVec<TValue>> {
    let engine = TractEngine::load(
        path,
        &TractOptions {
            max_batch: 1,
            plans: PlanMode::Symbolic,
            threads: 1,
            seed: 1,
            memory_limit: None,
        },
    )?;
    bench_inputs(engine.inputs(), batch)?
        .iter()
        .map(|t| {
            let dt = match t.datatype {
                DataType::F32 => f32::datum_type(),
                DataType::I64 => i64::datum_type(),
                other => return Err(anyhow!("bench inputs of {other}")),
            };
            let mut tensor = Tensor::zero_dt(dt, &t.shape)?;
            tensor.as_bytes_mut().copy_from_slice(&t.data);
            Ok(tensor.into())
        })
        .collect()
}

/// A bare tract plan: symbolic batch, or fixed at `batch`.
fn plan(path: &Path, batch: Option<usize>, threads: usize) -> Result<Arc<TypedRunnableModel>> {
    let typed = tract_onnx::onnx()
        .model_for_path(path)?
        .into_typed()?
        .into_decluttered()?;
    let typed = match batch {
        Some(b) => {
            let n = typed.symbols.sym("N");
            typed.set_symbols(&HashMap::from([(n, TDim::Val(b as i64))]))?
        }
        None => typed,
    };
    let options = RunOptions {
        executor: (threads > 1).then(|| tract_linalg::multithread::Executor::multithread(threads)),
        ..RunOptions::default()
    };
    typed.into_optimized()?.into_runnable_with_options(&options)
}

fn latency_table(results: &mut Vec<serde_json::Value>) -> Result<()> {
    let threads = thread_counts().context("ECOEDGE_BENCH_THREADS")?;
    let batches: Vec<usize> = env_list("ECOEDGE_BENCH_BATCHES", "1,2,4,8,16")
        .iter()
        .map(|b| b.parse())
        .collect::<Result<_, _>>()
        .context("ECOEDGE_BENCH_BATCHES")?;
    println!("| model | threads | batch | symbolic ms | exact ms | exact ms/request |");
    println!("|---|---|---|---|---|---|");
    for name in env_list("ECOEDGE_BENCH_MODELS", "resnet50,bert-tiny") {
        let model = Builtin::from_name(&name).with_context(|| format!("model {name}"))?;
        let path = model.path()?;
        for &t in &threads {
            let symbolic = plan(&path, None, t)?;
            for &b in &batches {
                let x = inputs(&path, b)?;
                let mut state = symbolic.spawn()?;
                let s = time(|| state.run(x.clone()).map(drop))?;
                let exact = plan(&path, Some(b), t)?;
                let mut state = exact.spawn()?;
                let e = time(|| state.run(x.clone()).map(drop))?;
                println!(
                    "| {name} | {t} | {b} | {:.2} | {:.2} | {:.2} |",
                    s * 1e3,
                    e * 1e3,
                    e * 1e3 / b as f64
                );
                results.push(json!({"model": name, "threads": t, "batch": b,
                    "symbolic_ms": s * 1e3, "exact_ms": e * 1e3}));
            }
        }
    }
    Ok(())
}

/// Steady-state throughput, requests per second: the batches after the first,
/// over the time from the first completion to the last.
fn steady_rate(done_us: &[u64], batch: usize) -> Result<f64> {
    let (Some(first), Some(last)) = (done_us.first(), done_us.last()) else {
        return Err(anyhow!("no batch completed"));
    };
    if last <= first {
        return Err(anyhow!(
            "one batch only: raise ECOEDGE_BENCH_SERVICE_BATCHES"
        ));
    }
    Ok((done_us.len() - 1) as f64 * batch as f64 / ((last - first) as f64 * 1e-6))
}

fn service_vs_raw(name: &str, results: &mut Vec<serde_json::Value>) -> Result<()> {
    const BATCH: usize = 16;
    let batches: usize = std::env::var("ECOEDGE_BENCH_SERVICE_BATCHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
        .max(2);
    let model = Builtin::from_name(name).with_context(|| format!("model {name}"))?;
    let path = model.path()?;

    // Raw tract: the exact batch-16 plan in a bare loop.
    let exact = plan(&path, Some(BATCH), 1)?;
    let mut state = exact.spawn()?;
    let x = inputs(&path, BATCH)?;
    state.run(x.clone())?;
    let start = Instant::now();
    let mut done = Vec::new();
    for _ in 0..=batches {
        state.run(x.clone())?;
        done.push(start.elapsed().as_micros() as u64);
    }
    drop(state);
    drop(exact);
    let raw = steady_rate(&done, BATCH)?;

    // The service loop pinned at batch 16 (`fixed:max`) with the same plan
    // layout, arrivals a quarter above the raw rate so it never idles; the
    // drain after the arrivals stop counts too.
    let mut engine = TractEngine::load(
        &path,
        &TractOptions {
            max_batch: BATCH,
            plans: PlanMode::PerBatch,
            threads: 1,
            seed: 1,
            memory_limit: None,
        },
    )?;
    // An empty sysfs root: the host board with no knob but the batch and the
    // CPU-time meter, the same on every machine.
    let root = tempfile::tempdir()?;
    let clock = MonotonicClock::new();
    let options = BoardOptions {
        access: BoardAccess {
            sysfs_root: root.path().to_path_buf(),
            ..BoardAccess::default()
        },
        ..BoardOptions::default()
    };
    let mut board = LinuxBoard::open(&options, clock)?;
    let space = board.space(&KnobSet::paper(), BATCH as u32, &LowerLimits::NONE)?;
    let optimizer = by_name("fixed:max", &space, 1).map_err(|e| anyhow!("{e}"))?;
    let settings = Settings {
        window: WindowSettings {
            requests: 64,
            warmup: 0,
            ..WindowSettings::default()
        },
        ..Settings::default()
    };
    let ctl = Controller::new(space, settings, optimizer)?;
    let gap_us = (1e6 / (1.25 * raw)).max(1.0) as u64;
    let setup = RunSetup {
        workload: Workload::parse(&format!("fixed:{gap_us}us"))?,
        seed: 1,
        duration: ecoedge_core::time::Duration::from_micros(
            ((batches + 1) * BATCH) as u64 * gap_us,
        ),
    };
    let stop = Stop::default();
    let record = Recorder::keeping(settings.window.alpha);
    let out = run_workload(&mut board, &mut engine, ctl, &setup, &stop, record, |_| {})?;
    let mut done: Vec<u64> = out.served.iter().map(|s| s.done.as_micros()).collect();
    done.dedup();
    let served = steady_rate(&done, BATCH)?;
    let loss = 100.0 * (1.0 - served / raw);
    println!();
    println!("| {name} batch {BATCH} | raw tract | service loop | loss |");
    println!("|---|---|---|---|");
    println!(
        "| requests/s ({} and {} batches) | {raw:.3} | {served:.3} | {loss:.2} % |",
        batches,
        done.len() - 1
    );
    results.push(json!({"model": name, "service_vs_raw": {
        "batch": BATCH, "raw_rps": raw, "service_rps": served, "loss_percent": loss,
        "served": out.served.len(), "refused": out.refused}}));
    Ok(())
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; everything else comes from the environment.
    let mut results = Vec::new();
    latency_table(&mut results)?;
    let service = std::env::var("ECOEDGE_BENCH_SERVICE").unwrap_or_else(|_| "resnet50".into());
    if service != "none" {
        service_vs_raw(&service, &mut results)?;
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ecoedge-bench.json");
    std::fs::write(&out, serde_json::to_string_pretty(&results)?)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
