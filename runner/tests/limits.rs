//! Limits on bad input (issue #15): each input below once aborted, hung or ate
//! memory in the shipped binary. Now each is refused at once with one
//! `error:` line and a non-zero exit.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecoedge_models::graph::{Dim, GraphBuilder};
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;

/// Longer than any refusal takes; the old hangs are killed after it.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs the binary with `args`, killing it after [`PATIENCE`]; returns the
/// exit code (None when killed by a signal) and stderr.
fn ecoedge(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args(args)
        .env("ECOEDGE_CACHE", dir.join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let started = Instant::now();
    while child.try_wait().expect("waiting").is_none() {
        if started.elapsed() > PATIENCE {
            child.kill().expect("killing");
            child.wait().expect("reaping");
            panic!(
                "`ecoedge {}` did not finish in {PATIENCE:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The command failed with exactly one line on stderr, an `error:` holding `needle`.
fn assert_refused(dir: &Path, args: &[&str], needle: &str) {
    let (code, stderr) = ecoedge(dir, args);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        code.is_some_and(|c| c != 0 && c != 101),
        "exit {code:?}: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{needle:?} not in {stderr}");
}

/// `ecoedge run` on the host board over an empty /sys tree, plus `extra`.
fn run_args<'a>(root: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--board", "host", "--sysfs-root", root];
    args.extend(extra);
    args
}

/// A scratch directory holding an empty /sys tree (`root`).
fn scratch() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let root = root.to_str().unwrap().to_string();
    (dir, root)
}

#[test]
fn a_trace_row_of_a_trillion_requests_is_refused() {
    // 17 bytes that asked for 8 TB of timestamps and aborted.
    let (dir, root) = scratch();
    let trace = dir.path().join("trace.csv");
    std::fs::write(&trace, "0,1000000000000\n").unwrap();
    let workload = format!("--workload=file:{}", trace.display());
    let args = run_args(&root, &["--model", "mlp", &workload, "--duration", "2s"]);
    assert_refused(dir.path(), &args, "beyond the time resolution");
}

#[test]
fn a_profile_with_3000_levels_is_refused_while_parsing() {
    // 66 KB that asked for 13.8 GB before the 64-level limit was checked.
    let (dir, _) = scratch();
    let profile = dir.path().join("profile.csv");
    let mut text = String::from("cpu_khz,gpu_hz,batch,latency_s,busy_power_w,idle_power_w\n");
    for i in 0..3000 {
        text.push_str(&format!("{},{},64,0.01,10,5\n", 100_000 + i, 1_000_000 + i));
    }
    std::fs::write(&profile, text).unwrap();
    let args = [
        "sim",
        "--device",
        profile.to_str().unwrap(),
        "--windows",
        "5",
    ];
    assert_refused(dir.path(), &args, "more than 64 distinct");
}

#[test]
fn an_absurd_profile_latency_is_refused() {
    // 1e300 s wrapped the simulator's clock: the output matched 1e-300 s.
    let (dir, _) = scratch();
    let profile = dir.path().join("profile.csv");
    for latency in ["1e300", "1e-300"] {
        std::fs::write(
            &profile,
            format!(
                "cpu_khz,gpu_hz,batch,latency_s,busy_power_w,idle_power_w\n100,1000,1,{latency},10,5\n"
            ),
        )
        .unwrap();
        let args = [
            "sim",
            "--device",
            profile.to_str().unwrap(),
            "--optimizer",
            "fixed:max",
            "--windows",
            "5",
        ];
        assert_refused(
            dir.path(),
            &args,
            &format!("latency_s `{latency}` is outside"),
        );
    }
}

#[test]
fn a_trace_timestamp_past_a_year_is_refused() {
    // Spreading 3 requests over 1e13 s overflowed (span * j).
    let (dir, _) = scratch();
    let trace = dir.path().join("trace.csv");
    std::fs::write(&trace, "0,3\n10000000000000,1\n").unwrap();
    let workload = format!("--workload=file:{}", trace.display());
    let args = ["sim", &workload, "--duration", "1h"];
    assert_refused(dir.path(), &args, "beyond the longest trace");
}

#[test]
fn an_onnx_input_too_large_for_memory_is_refused_before_planning() {
    // `[N, 100000, 100000]` floats: 640 GB at a batch of 16, and an abort.
    let (dir, root) = scratch();
    let model = dir.path().join("huge.onnx");
    let dims = [Dim::Batch, Dim::Fixed(100_000), Dim::Fixed(100_000)];
    let mut g = GraphBuilder::new(1);
    let x = g.input("input", DataType::Float, &dims);
    let y = g.node("Relu", &[&x], &[]);
    g.output(&y, DataType::Float, &dims);
    std::fs::write(&model, g.finish("huge", "test").encode_to_vec()).unwrap();
    let args = run_args(&root, &["--model", model.to_str().unwrap()]);
    assert_refused(
        dir.path(),
        &args,
        "a batch of 16 needs at least 640.0 GB of memory",
    );
}

#[test]
fn threads_beyond_twice_the_cores_are_refused() {
    // 100000 threads: tract's executor panicked (or spent many minutes spawning).
    let (dir, root) = scratch();
    let args = run_args(&root, &["--model", "mlp", "--threads", "100000"]);
    assert_refused(dir.path(), &args, "--threads 100000: must be in 1..=");
}

#[test]
fn poisson_rates_beyond_the_time_resolution_are_refused() {
    // poisson:1e9 never stopped (every gap truncated to 0 us); 1e6 ran 72 % fast.
    let (dir, root) = scratch();
    for rate in ["1e9", "2e6"] {
        let workload = format!("poisson:{rate}");
        let args = run_args(
            &root,
            &[
                "--model",
                "mlp",
                "--workload",
                &workload,
                "--duration",
                "2s",
            ],
        );
        assert_refused(dir.path(), &args, "beyond the time resolution");
    }
}
