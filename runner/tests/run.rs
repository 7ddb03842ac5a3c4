//! `ecoedge run` end to end: the binary serves the MLP on the host board, and bad
//! input ends in one `error:` line and a non-zero exit, never a panic.

use std::path::Path;
use std::process::{Command, Output};

use ecoedge_models::graph::{Dim, GraphBuilder};
use ecoedge_tests::cli::one_error_line;
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;

fn ecoedge(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args(args)
        .env("ECOEDGE_CACHE", cache)
        .output()
        .expect("the binary runs")
}

/// `ecoedge run` on the host with the model file at `model`.
fn run_model_file(cache: &Path, model: &Path) -> Output {
    ecoedge(
        cache,
        &["run", "--board", "host", "--model", model.to_str().unwrap()],
    )
}

#[test]
fn run_serves_the_mlp_on_the_host() {
    let dir = tempfile::tempdir().unwrap();
    // An empty tree: no cpufreq, no RAPL, so the host board has only the batch
    // knob and estimates energy, the same on every machine.
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let logs = dir.path().join("logs");
    let out = ecoedge(
        dir.path(),
        &[
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
            "3s",
            "--window",
            "48",
            "--warmup",
            "4",
            "--json",
            "--log-dir",
            logs.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(s["board"], "host");
    assert_eq!(s["model"], "mlp");
    assert_eq!(s["workload"], "fixed:4ms");
    assert_eq!(s["optimizer"], "ecogd");
    let r = &s["requests"];
    let arrived = r["arrived"].as_u64().unwrap();
    let served = r["served"].as_u64().unwrap();
    let refused = r["refused"].as_u64().unwrap();
    let pending = r["pending"].as_u64().unwrap();
    // 3 s at one request every 4 ms, give or take the first and last.
    assert!((700..=751).contains(&arrived), "arrived {arrived}");
    assert_eq!(served + refused + pending, arrived);
    assert!(served >= 700 - 16, "served {served}");
    assert_eq!(refused, 0);
    assert!(pending < 16, "only a partial batch may be left: {pending}");
    for key in ["mean", "p50", "p95", "p99"] {
        let v = s["latency_s"][key].as_f64().unwrap();
        assert!(v > 0.0 && v < 1.0, "latency {key} {v}");
    }
    assert_eq!(s["energy_j_per_request"]["source"], "estimated");
    assert_eq!(s["energy_j_per_request"]["scope"], "total");
    assert!(s["energy_j_per_request"]["mean"].as_f64().unwrap() > 0.0);
    assert!(s["cost"]["mean"].as_f64().unwrap() > 0.0);
    assert!(s["windows"].as_u64().unwrap() >= 10);
    let c = &s["final_config"];
    assert!(c["cpu_khz"].is_null() && c["gpu_hz"].is_null(), "{c}");
    assert!((1..=16).contains(&c["batch"].as_u64().unwrap()));

    let requests = std::fs::read_to_string(logs.join("requests.csv")).unwrap();
    assert_eq!(requests.lines().count() as u64, served + 1);
    let windows = std::fs::read_to_string(logs.join("windows.csv")).unwrap();
    assert_eq!(
        windows.lines().count() as u64,
        s["windows"].as_u64().unwrap() + 1
    );
    let logged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(logs.join("summary.json")).unwrap()).unwrap();
    assert_eq!(logged, s);
}

#[test]
fn a_file_that_is_not_onnx_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, "this is not a protobuf at all\n").unwrap();
    let out = run_model_file(dir.path(), &path);
    one_error_line(&out, "not an ONNX model");
}

#[test]
fn a_missing_model_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = ecoedge(
        dir.path(),
        &["run", "--board", "host", "--model", "resnet51"],
    );
    one_error_line(&out, "--model resnet51");
}

/// Writes an MLP-like graph whose input is `dims` and whose single node is `op`.
fn write_model(path: &Path, dims: &[Dim], op: &str) {
    let mut g = GraphBuilder::new(1);
    let x = g.input("input", DataType::Float, dims);
    let y = g.node(op, &[&x], &[]);
    g.output(&y, DataType::Float, dims);
    std::fs::write(path, g.finish("t", "test").encode_to_vec()).unwrap();
}

#[test]
fn a_model_without_a_batch_dimension_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixed.onnx");
    write_model(&path, &[Dim::Fixed(1), Dim::Fixed(8)], "Relu");
    let out = run_model_file(dir.path(), &path);
    one_error_line(&out, "no batch dimension");
}

#[test]
fn an_unsupported_operator_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.onnx");
    write_model(&path, &[Dim::Batch, Dim::Fixed(8)], "FrobnicateV2");
    let out = run_model_file(dir.path(), &path);
    one_error_line(&out, "unsupported operator FrobnicateV2");
}

#[test]
fn an_input_shape_that_does_not_fit_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reshape.onnx");
    let mut g = GraphBuilder::new(1);
    let x = g.input("input", DataType::Float, &[Dim::Batch, Dim::Fixed(10)]);
    let shape = g.constant_i64("shape", &[2], &[0, 3]);
    let y = g.node("Reshape", &[&x, &shape], &[]);
    g.output(&y, DataType::Float, &[Dim::Batch, Dim::Fixed(3)]);
    std::fs::write(&path, g.finish("t", "test").encode_to_vec()).unwrap();
    let out = run_model_file(dir.path(), &path);
    one_error_line(&out, path.to_str().unwrap());
}

#[test]
fn a_bad_workload_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = ecoedge(
        dir.path(),
        &[
            "run",
            "--board",
            "host",
            "--model",
            "mlp",
            "--workload",
            "sometimes:3",
        ],
    );
    one_error_line(&out, "sometimes:3");
}

#[test]
fn run_defaults_show_the_optimizer_at_work_and_leave_nothing_pending() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    // The default window (100 requests) at 1200 requests: 11 windows after
    // calibration, each one live line on stderr; stdout holds the summary only.
    let base = [
        "run",
        "--board",
        "host",
        "--sysfs-root",
        root.to_str().unwrap(),
        "--model",
        "mlp",
        "--workload",
        "fixed:5ms",
        "--duration",
        "6s",
        "--json",
    ];
    let out = ecoedge(dir.path(), &base);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let windows = s["windows"].as_u64().unwrap();
    assert!(windows >= 10, "{windows} windows");
    let lines = stderr.lines().filter(|l| l.starts_with("window ")).count() as u64;
    assert_eq!(lines, windows, "{stderr}");
    assert!(stderr.contains("a partial batch waits at most"), "{stderr}");
    assert_eq!(s["requests"]["pending"], 0, "{s}");
    // The paper's full-batch rule, pinned at batch 16, with 858 arrivals
    // (53 batches of 16 and 10 more): still drained to the last request.
    let mut full = base.to_vec();
    full[8] = "fixed:7ms";
    full.extend(["--max-wait", "none", "--optimizer", "fixed:max"]);
    let out = ecoedge(dir.path(), &full);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &s["requests"];
    assert_eq!(r["pending"], 0, "{r}");
    assert_ne!(
        r["arrived"].as_u64().unwrap() % 16,
        0,
        "a partial batch was left to drain: {r}"
    );
}

#[test]
fn ctrl_c_drains_and_prints_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args([
            "run",
            "--board",
            "host",
            "--sysfs-root",
            root.to_str().unwrap(),
            "--model",
            "mlp",
            "--workload",
            "fixed:2ms",
            "--duration",
            "1h",
            "--window",
            "32",
            "--warmup",
            "0",
            "--json",
        ])
        .env("ECOEDGE_CACHE", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    // SAFETY: plain kill(2) on the child we spawned and still own.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the summary");
    let r = &s["requests"];
    assert!(r["served"].as_u64().unwrap() > 100, "{r}");
    assert_eq!(r["pending"], 0, "drained: {r}");
}
