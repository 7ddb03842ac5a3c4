//! The engines side by side (run with `cargo bench -p ecoedge-runner --bench
//! engines`; the ort engine needs ONNX Runtime, see README): per model,
//! thread count and batch size, the fastest of repeated `Engine::infer` calls
//! (plain tensors in, plain tensors out, as `serve` calls it) on
//!
//! - tract, one symbolic plan,
//! - ONNX Runtime's CPU provider, one session with the batch dynamic,
//! - ONNX Runtime's CPU provider, one session per batch size (the batch
//!   dimension fixed), to choose the layout `--plans auto` should favour,
//! - with `ECOEDGE_BENCH_PYTHON` naming an interpreter that has onnxruntime
//!   and numpy (`target/pyenv/bin/python`, made by `.ci/pyenv.sh`):
//!   onnxruntime's Python API on the same file, inputs and settings
//!   (`runner/benches/ort_bench.py --worker`).
//!
//! The four are timed in turns, `ROUNDS` rounds of a share of the budget
//! each, and each keeps its fastest run: on a machine shared with other load
//! they see the same load, and the fastest run is the least disturbed.
//! Environment: `ECOEDGE_BENCH_MODELS` (default `resnet50,bert-tiny`),
//! `ECOEDGE_BENCH_BATCHES` (default `1,16`), `ECOEDGE_BENCH_THREADS` (default
//! `1,ALL`), `ECOEDGE_BENCH_SECONDS` (time per figure, default 3). Results
//! also go to `target/ecoedge-engines.json`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, anyhow};
use common::{bench_inputs, budget_s, env_list, thread_counts, time_min};
use ecoedge_models::Builtin;
use ecoedge_runner::inference::{
    Engine, EngineChoice, EngineOptions, PlanMode, TractEngine, TractOptions, load,
};
use serde_json::json;

/// Turns each figure is timed in.
const ROUNDS: usize = 3;

/// Milliseconds of the fastest `engine.infer` at `batch` within `budget` seconds.
fn infer_ms(engine: &mut dyn Engine, batch: usize, budget: f64) -> Result<f64> {
    let inputs = bench_inputs(engine.inputs(), batch)?;
    Ok(time_min(budget, || engine.infer(&inputs).map(drop))? * 1e3)
}

/// onnxruntime's Python API in a worker process (`ort_bench.py --worker`).
struct Python {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Python {
    /// The worker on `ECOEDGE_BENCH_PYTHON`, if set.
    fn start() -> Result<Option<Python>> {
        let Some(python) = std::env::var_os("ECOEDGE_BENCH_PYTHON") else {
            return Ok(None);
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ort_bench.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg("--worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("ECOEDGE_BENCH_PYTHON={}", python.to_string_lossy()))?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("worker stdout")?);
        Ok(Some(Python {
            child,
            stdin,
            stdout,
        }))
    }

    /// Milliseconds of the fastest Python run of `file` within `budget` seconds.
    fn time_ms(&mut self, file: &Path, threads: usize, batch: usize, budget: f64) -> Result<f64> {
        writeln!(self.stdin, "{} {threads} {batch} {budget}", file.display())?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        line.trim()
            .parse()
            .map_err(|_| anyhow!("the Python worker answered {line:?}"))
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `a / b` with two decimals, or `-` without `b`.
fn ratio(a: f64, b: Option<f64>) -> String {
    b.map_or_else(|| "-".into(), |b| format!("{:.2}", a / b))
}

fn main() -> Result<()> {
    let threads = thread_counts().context("ECOEDGE_BENCH_THREADS")?;
    let batches: Vec<usize> = env_list("ECOEDGE_BENCH_BATCHES", "1,16")
        .iter()
        .map(|b| b.parse())
        .collect::<Result<_, _>>()
        .context("ECOEDGE_BENCH_BATCHES")?;
    let largest = batches.iter().copied().max().unwrap_or(1);
    let share = budget_s() / ROUNDS as f64;
    let mut python = Python::start()?;
    let mut rows = Vec::new();
    println!(
        "| model | threads | batch | Python ms | ort ms | ort / Python | ort per-batch ms | per-batch / Python | tract ms | tract / Python |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
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
                    memory_limit: None,
                },
            )?;
            let mut dynamic = load(&path, &options(PlanMode::Symbolic, largest))?;
            for &b in &batches {
                // Sessions for 1..=b, timed at b: the layout `--plans per-batch` runs.
                let mut exact = load(&path, &options(PlanMode::PerBatch, b))?;
                let mut best = [f64::INFINITY; 4];
                for _ in 0..ROUNDS {
                    let ms = [
                        infer_ms(&mut tract, b, share)?,
                        infer_ms(dynamic.as_mut(), b, share)?,
                        infer_ms(exact.as_mut(), b, share)?,
                        match python.as_mut() {
                            Some(p) => p.time_ms(&path, t, b, share)?,
                            None => f64::INFINITY,
                        },
                    ];
                    for (best, ms) in best.iter_mut().zip(ms) {
                        *best = best.min(ms);
                    }
                }
                let [tract_ms, ort_ms, per_batch_ms, python_ms] = best;
                let py = python_ms.is_finite().then_some(python_ms);
                println!(
                    "| {name} | {t} | {b} | {} | {ort_ms:.2} | {} | {per_batch_ms:.2} | {} | {tract_ms:.2} | {} |",
                    py.map_or_else(|| "-".into(), |p| format!("{p:.2}")),
                    ratio(ort_ms, py),
                    ratio(per_batch_ms, py),
                    ratio(tract_ms, py),
                );
                rows.push(
                    json!({"model": name, "file": path, "threads": t, "batch": b,
                    "tract_ms": tract_ms, "ort_ms": ort_ms, "ort_per_batch_ms": per_batch_ms,
                    "python_ms": py}),
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
