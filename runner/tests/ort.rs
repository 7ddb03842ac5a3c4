//! The ONNX Runtime engine on its CPU provider, with the `libonnxruntime.so`
//! of the `onnxruntime` PyPI wheel: the same outputs as tract on the same
//! inputs (every built-in model and a model given by path), `run` and
//! `serve --engine ort` end to end, and one error line for a GPU provider the
//! library lacks or a library that is not there.
//!
//! The library is `ORT_DYLIB_PATH` (`.ci/run` sets it) or the one in the
//! project's Python environment (`bash .ci/pyenv.sh` makes `target/pyenv`).
//! Without either these tests fail, saying so: they never pass without
//! having run ONNX Runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ecoedge_models::Builtin;
use ecoedge_models::graph::{Attr, Dim, GraphBuilder};
use ecoedge_runner::inference::ort_library::{pip_library, runtime_from};
use ecoedge_runner::inference::synthetic::synthesise;
use ecoedge_runner::inference::{
    DataType, Engine, EngineChoice, EngineOptions, InputKind, OrtEngine, PlanMode, Tensor,
    TractEngine, TractOptions,
};
use ecoedge_tests::cli::one_error_line;
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType as OnnxType;

/// The ONNX Runtime library these tests use; panics with how to get one.
fn library() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let pyenv = std::env::var_os("ECOEDGE_PYENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv"),
        PathBuf::from,
    );
    pip_library(&pyenv).unwrap_or_else(|| {
        panic!(
            "the ort engine's tests need ONNX Runtime: run `bash .ci/pyenv.sh` (installs the \
             onnxruntime wheel into {}) or set ORT_DYLIB_PATH to a libonnxruntime.so",
            pyenv.display()
        )
    })
}

/// Loads the library into this test process (once; every test calls it).
fn load_runtime() {
    if let Err(e) = runtime_from(Some(&library())) {
        panic!("{e:#}");
    }
}

fn ort(path: &Path, max_batch: usize, plans: PlanMode) -> OrtEngine {
    load_runtime();
    let options = EngineOptions {
        engine: EngineChoice::Ort,
        max_batch,
        plans,
        seed: 7,
        ..EngineOptions::default()
    };
    OrtEngine::load(path, &options).unwrap_or_else(|e| panic!("{e:#}"))
}

fn tract(path: &Path, max_batch: usize) -> TractEngine {
    let options = TractOptions {
        max_batch,
        plans: PlanMode::Symbolic,
        threads: 1,
        seed: 7,
        memory_limit: None,
    };
    TractEngine::load(path, &options).unwrap_or_else(|e| panic!("{e:#}"))
}

/// `a` within 1e-4 of `b`, relative to the output's scale: every element's
/// difference at most 1e-4 times the largest magnitude of `b`. (Element by
/// element, logits near zero differ by more in relative terms: ResNet-50's
/// largest difference is 4e-6 on a scale of 2.3, 1.6e-6 relative.)
fn assert_close(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!((a.datatype, &a.shape), (b.datatype, &b.shape), "{what}");
    let (a, b) = (a.to_f32().unwrap(), b.to_f32().unwrap());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(scale > 0.0, "{what}: all zeros");
    assert!(
        worst <= 1e-4 * scale,
        "{what}: difference {worst:e} on a scale of {scale:e}"
    );
}

/// tract and ort on the same inputs (the synthetic inputs of `seed`, two
/// samples) give the same outputs.
fn same_outputs(path: &Path, what: &str) {
    let mut t = tract(path, 2);
    let mut o = ort(path, 2, PlanMode::Symbolic);
    assert_eq!(o.signature(), t.signature(), "{what}");
    assert_eq!(o.inputs(), t.inputs(), "{what}");
    let inputs = synthesise(t.inputs(), 2, 11).unwrap();
    let (a, b) = (o.infer(&inputs).unwrap(), t.infer(&inputs).unwrap());
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_close(&format!("{what} output {i}"), x, y);
    }
}

fn builtin(model: Builtin, dir: &Path) -> PathBuf {
    model.path_in(dir).unwrap()
}

#[test]
fn mlp_matches_tract() {
    let dir = tempfile::tempdir().unwrap();
    same_outputs(&builtin(Builtin::Mlp, dir.path()), "mlp");
}

#[test]
fn bert_tiny_matches_tract() {
    let dir = tempfile::tempdir().unwrap();
    same_outputs(&builtin(Builtin::BertTiny, dir.path()), "bert-tiny");
}

#[test]
fn resnet50_matches_tract() {
    let dir = tempfile::tempdir().unwrap();
    same_outputs(&builtin(Builtin::ResNet50, dir.path()), "resnet50");
}

/// A model of our own, written to a file: a float input through a dense
/// layer plus an embedding looked up by an INT64 id input, so the token
/// ids' bound comes from the graph for both engines.
#[test]
fn a_model_file_given_by_path_matches_tract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dense-and-embedding.onnx");
    let mut g = GraphBuilder::new(3);
    let x = g.input("features", OnnxType::Float, &[Dim::Batch, Dim::Fixed(16)]);
    let ids = g.input("item_id", OnnxType::Int64, &[Dim::Batch, Dim::Fixed(1)]);
    let w = g.uniform("w", &[16, 8], 0.5);
    let bias = g.uniform("b", &[8], 0.5);
    let table = g.uniform("table", &[50, 8], 1.0);
    let dense = g.node("MatMul", &[&x, &w], &[]);
    let dense = g.node("Add", &[&dense, &bias], &[]);
    let looked_up = g.node("Gather", &[&table, &ids], &[("axis", Attr::Int(0))]);
    let shape = g.constant_i64("shape", &[2], &[0, 8]);
    let looked_up = g.node("Reshape", &[&looked_up, &shape], &[]);
    let sum = g.node("Add", &[&dense, &looked_up], &[]);
    let y = g.node("Tanh", &[&sum], &[]);
    g.output(&y, OnnxType::Float, &[Dim::Batch, Dim::Fixed(8)]);
    std::fs::write(&path, g.finish("t", "test").encode_to_vec()).unwrap();

    same_outputs(&path, "dense-and-embedding.onnx");
    let o = ort(&path, 2, PlanMode::Symbolic);
    let kinds: Vec<InputKind> = o.inputs().iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        vec![InputKind::Features, InputKind::TokenIds { vocab: 50 }]
    );
}

#[test]
fn every_session_layout_runs_every_batch_size_and_refuses_what_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let path = builtin(Builtin::Mlp, dir.path());
    for plans in [PlanMode::Symbolic, PlanMode::PerBatch, PlanMode::Auto] {
        let mut e = ort(&path, 4, plans);
        assert_eq!(e.backend(), "ort");
        assert_ne!(e.plan_report().mode, PlanMode::Auto);
        for b in 1..=4 {
            e.run_synthetic(b).unwrap();
        }
        assert!(e.run_synthetic(0).is_err());
        assert!(e.run_synthetic(5).is_err());
        let out = e.infer(&synthesise(e.inputs(), 3, 1).unwrap()).unwrap();
        assert_eq!(out[0].shape, vec![3, 10]);
        let too_big = synthesise(e.inputs(), 5, 1).unwrap();
        assert_eq!(
            e.infer(&too_big).unwrap_err().to_string(),
            "batch of 5 outside 1..=4"
        );
        let wrong = Tensor::new(DataType::F64, vec![1, 64], vec![0; 64 * 8]).unwrap();
        assert!(
            e.infer(&[wrong])
                .unwrap_err()
                .to_string()
                .contains("does not fit input: FP32[N, 64]")
        );
    }
}

/// Per-batch sessions and the dynamic session give the same outputs.
#[test]
fn per_batch_sessions_match_the_dynamic_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = builtin(Builtin::BertTiny, dir.path());
    let mut dynamic = ort(&path, 3, PlanMode::Symbolic);
    let mut exact = ort(&path, 3, PlanMode::PerBatch);
    let inputs = synthesise(dynamic.inputs(), 3, 5).unwrap();
    let (a, b) = (
        dynamic.infer(&inputs).unwrap(),
        exact.infer(&inputs).unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert_close("per-batch against dynamic", x, y);
    }
}

// The command line.

fn ecoedge(cache: &Path, library: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecoedge"));
    cmd.args(args).env("ECOEDGE_CACHE", cache);
    match library {
        Some(lib) => cmd.env("ORT_DYLIB_PATH", lib),
        None => cmd.env_remove("ORT_DYLIB_PATH"),
    };
    cmd.output().expect("the binary runs")
}

/// `run` on the host board of an empty tree: only the batch knob, the same
/// on every machine.
fn run_args<'a>(root: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--board",
        "host",
        "--sysfs-root",
        root.to_str().unwrap(),
        "--model",
        "mlp",
        "--workload",
        "fixed:4ms",
        "--duration",
        "2s",
        "--window",
        "32",
        "--warmup",
        "4",
        "--json",
    ];
    args.extend(extra);
    args
}

#[test]
fn run_with_the_ort_engine_serves_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library();
    let out = ecoedge(
        dir.path(),
        Some(&lib),
        &run_args(
            dir.path(),
            &["--engine", "ort", "--ep", "cpu", "--threads", "2"],
        ),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ort (cpu provider) "),
        "the engine and its provider are named: {stderr}"
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(s["engine"]["name"], "ort", "{s}");
    assert_eq!(s["engine"]["ep"], "cpu", "{s}");
    let r = &s["requests"];
    assert!(r["arrived"].as_u64().unwrap() > 100, "{s}");
    assert_eq!(r["served"], r["arrived"], "{s}");
    assert_eq!(r["failed"], 0);
    assert_eq!(r["pending"], 0);
}

#[test]
fn a_gpu_provider_the_library_lacks_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library();
    for (ep, name) in [("cuda", "CUDA"), ("tensorrt", "TensorRT")] {
        let out = ecoedge(
            dir.path(),
            Some(&lib),
            &run_args(dir.path(), &["--engine", "ort", "--ep", ep]),
        );
        one_error_line(
            &out,
            &format!("--ep {ep}: the ONNX Runtime at {}", lib.display()),
        );
        one_error_line(&out, &format!("has no {name} execution provider"));
    }
    // tract has no GPU provider at all.
    let out = ecoedge(dir.path(), None, &run_args(dir.path(), &["--ep", "cuda"]));
    one_error_line(&out, "--ep cuda: tract runs on the CPU only");
}

#[test]
fn a_bad_library_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("libonnxruntime.so.0.1");
    let out = ecoedge(
        dir.path(),
        Some(&missing),
        &run_args(dir.path(), &["--engine", "ort"]),
    );
    one_error_line(
        &out,
        "no such file; install one with `pip install onnxruntime`",
    );
    // A file that is not ONNX Runtime (not even a library).
    let bogus = dir.path().join("libonnxruntime.so");
    std::fs::write(&bogus, "not a library").unwrap();
    let out = ecoedge(
        dir.path(),
        Some(&bogus),
        &run_args(dir.path(), &["--engine", "ort"]),
    );
    one_error_line(
        &out,
        &format!("cannot load ONNX Runtime from {}", bogus.display()),
    );
}

#[test]
fn serve_with_the_ort_engine_answers_and_drains() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args([
            "serve",
            "--engine",
            "ort",
            "--board",
            "host",
            "--sysfs-root",
            dir.path().to_str().unwrap(),
            "--model",
            "mlp",
            "--listen",
            "127.0.0.1:0",
            "--json",
        ])
        .env("ECOEDGE_CACHE", dir.path())
        .env("ORT_DYLIB_PATH", library())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let addr: SocketAddr = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("serve ended before listening:\n{seen}");
        }
        seen.push_str(&line);
        if let Some(rest) = line.strip_prefix("serving mlp on http://") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    assert!(seen.contains("ort "), "the engine is named: {seen}");

    // Two samples of the MLP's 64 features; the answer is what the ort
    // engine gives in process.
    let features: Vec<f32> = (0..128).map(|i| (i % 13) as f32 / 13.0).collect();
    let body = serde_json::json!({"inputs": [{
        "name": "input", "shape": [2, 64], "datatype": "FP32", "data": features}]});
    let (status, answer) = post(addr, "/v2/models/mlp/infer", &body.to_string());
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let output = &answer["outputs"][0];
    assert_eq!(output["shape"], serde_json::json!([2, 10]));
    let got: Vec<f32> = output["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let mut e = ort(&builtin(Builtin::Mlp, dir.path()), 2, PlanMode::Symbolic);
    let want = e
        .infer(&[Tensor::from_f32(vec![2, 64], &features).unwrap()])
        .unwrap();
    assert_close(
        "served against in process",
        &Tensor::from_f32(vec![2, 10], &got).unwrap(),
        &want[0],
    );

    // SIGTERM: drained, summary on stdout, exit 0.
    // SAFETY: kill(2) on the child's pid, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("serve did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    assert!(status.success(), "{seen}{rest}");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let s: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(s["requests"]["served"], 2, "{s}");
}

/// One HTTP/1.1 POST on a fresh connection: status and body.
fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}
