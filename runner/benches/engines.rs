//! The engines side by side (run with `cargo bench -p ecoedge-runner --bench
//! engines`; `--engine ort` needs ONNX Runtime, see README): per model,
//! thread count and batch size, the median time of one `Engine::infer` call
//! (plain tensors in, plain tensors out, as `serve` calls it) on
//!
//! - tract, one symbolic plan,
//! - ONNX Runtime's CPU provider, one session with the batch dynamic,
//! - ONNX Runtime's CPU provider, one session per batch size (the batch
//!   dimension fixed), to choose the layout `--plans auto` should favour.
//!
//! Same inputs as `runner/benches/ort_bench.py`, which reads this bench's
//! `target/ecoedge-engines.json` and times onnxruntime's Python API on the
//! same files for the ratios. Environment: `ECOEDGE_BENCH_MODELS` (default
//! `resnet50,bert-tiny`), `ECOEDGE_BENCH_BATCHES` (default `1,16`),
//! `ECOEDGE_BENCH_THREADS` (default `1,ALL`), `ECOEDGE_BENCH_SECONDS` (time
//! per figure, default 3).

mod common;

use std::path::Path;

use anyhow::{Context, Result};
use common::{bench_inputs, env_list, thread_counts, time};
use ecoedge_models::Builtin;
use ecoedge_runner::inference::{
    Engine, EngineChoice, EngineOptions, PlanMode, TractEngine, TractOptions, load,
};
use serde_json::json;

/// Median milliseconds of `engine.infer` at `batch`.
fn infer_ms(engine: &mut dyn Engine, batch: usize) -> Result<f64> {
    let inputs = bench_inputs(engine.inputs(), batch)?;
    Ok(time(|| engine.infer(&inputs).map(drop))? * 1e3)
}

fn main() -> Result<()> {
    let threads = thread_counts().context("ECOEDGE_BENCH_THREADS")?;
    let batches: Vec<usize> = env_list("ECOEDGE_BENCH_BATCHES", "1,16")
        .iter()
        .map(|b| b.parse())
        .collect::<Result<_, _>>()
        .context("ECOEDGE_BENCH_BATCHES")?;
    let largest = batches.iter().copied().max().unwrap_or(1);
    let mut rows = Vec::new();
    println!("| model | threads | batch | tract ms | ort dynamic ms | ort per-batch ms |");
    println!("|---|---|---|---|---|---|");
    for name in env_list("ECOEDGE_BENCH_MODELS", "resnet50,bert-tiny") {
        let model = Builtin::from_name(&name).with_context(|| format!("model {name}"))?;
        let path = model.path()?;
        for &t in &threads {
            let options = |plans: PlanMode, max_batch: usize| EngineOptions {
                engine: EngineChoice::Ort,
                max_batch,
                plans,
                threads: t,
                ..EngineOptions::default()
            };
            let mut tract = TractEngine::load(
                &path,
                &TractOptions {
                    max_batch: largest,
                    plans: PlanMode::Symbolic,
                    threads: t,
                    seed: 1,
                },
            )?;
            let mut dynamic = load(&path, &options(PlanMode::Symbolic, largest))?;
            for &b in &batches {
                let tract_ms = infer_ms(&mut tract, b)?;
                let dynamic_ms = infer_ms(dynamic.as_mut(), b)?;
                // Sessions for 1..=b, timed at b: the layout `--plans per-batch` runs.
                let per_batch_ms =
                    infer_ms(load(&path, &options(PlanMode::PerBatch, b))?.as_mut(), b)?;
                println!(
                    "| {name} | {t} | {b} | {tract_ms:.2} | {dynamic_ms:.2} | {per_batch_ms:.2} |"
                );
                rows.push(
                    json!({"model": name, "file": path, "threads": t, "batch": b,
                    "tract_ms": tract_ms, "ort_ms": dynamic_ms, "ort_per_batch_ms": per_batch_ms}),
                );
            }
        }
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ecoedge-engines.json");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&rows)?)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
