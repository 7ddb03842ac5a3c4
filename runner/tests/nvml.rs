//! `--board nvml` against a fake NVIDIA GPU (a fake `libnvidia-ml.so.1`
//! loaded through the real `nvml-wrapper` bindings; `ecoedge_tests::nvml`):
//! what `board` reports, energy from the GPU's counter, the GPU clock locked
//! only with `--gpu-clocks lock` and reset however the run ends, and one
//! error line where NVML is missing or refuses.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ecoedge_tests::cli::succeeded;
use ecoedge_tests::nvml::FakeGpu;
use ecoedge_tests::sysfs::FakeBoard;
use serde_json::Value;

/// `ecoedge ARGS` on `gpu`, with `root` as an empty host tree (no cpufreq,
/// no RAPL) unless `args` name another, and its own model cache.
fn ecoedge(gpu: &FakeGpu, root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecoedge"));
    gpu.command(&mut cmd)
        .args(args)
        .arg("--sysfs-root")
        .arg(root)
        .env("ECOEDGE_CACHE", root.join("cache"));
    cmd
}

/// The flags of a short `run` of `mlp` on the NVML board.
fn run_args<'a>(duration: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--board",
        "nvml",
        "--model",
        "mlp",
        "--workload",
        "fixed:10ms",
        "--duration",
        duration,
        "--window",
        "32",
        "--warmup",
        "2",
        "--json",
    ];
    args.extend_from_slice(extra);
    args
}

fn summary(out: &Output) -> Value {
    succeeded(out);
    serde_json::from_slice(&out.stdout).expect("summary JSON")
}

/// The one `error:` line of a failed command.
fn error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_string()
}

#[test]
fn board_reports_the_gpu_and_the_levels_it_would_search() {
    let gpu = FakeGpu::new("");
    let root = tempfile::tempdir().unwrap();
    let out = ecoedge(&gpu, root.path(), &["board", "--board", "nvml", "--json"])
        .output()
        .unwrap();
    let doc = summary(&out);
    let n = &doc["nvml"];
    assert_eq!(n["name"], "NVIDIA Fake H100");
    assert_eq!(n["uuid"], "GPU-fake-0001");
    assert_eq!(n["memory_mhz"], 2619);
    assert_eq!(n["graphics_mhz"], 1980, "unlocked: the highest clock");
    assert_eq!(n["energy_counter"], true);
    assert!((n["power_w"].as_f64().unwrap() - 258.0).abs() < 1e-9, "{n}");
    let levels: Vec<u64> = n["levels_mhz"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(levels.len(), 16, "{levels:?}");
    assert_eq!((levels[0], levels[15]), (495, 1980));
    assert!(levels.windows(2).all(|w| w[0] < w[1]), "{levels:?}");

    let text = ecoedge(&gpu, root.path(), &["board", "--board", "nvml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("nvml:   NVIDIA Fake H100"), "{text}");
    assert!(gpu.calls().is_empty(), "board only reads");
}

#[test]
fn without_nvml_each_command_says_so_in_one_line() {
    let gpu = FakeGpu::new("");
    let root = tempfile::tempdir().unwrap();
    for args in [
        vec!["board", "--board", "nvml"],
        run_args("1s", &[]),
        run_args("1s", &["--gpu-clocks", "lock"]),
    ] {
        let out = ecoedge(&gpu, root.path(), &args)
            .env("ECOEDGE_NVML_LIB", "/nonexistent/libnvidia-ml.so.1")
            .output()
            .unwrap();
        let line = error_line(&out);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("plans built"),
            "said before the model is loaded: {out:?}"
        );
        assert!(
            line.contains("cannot load the NVML library /nonexistent/libnvidia-ml.so.1")
                && line.contains("install the NVIDIA driver")
                && line.contains("ECOEDGE_NVML_LIB"),
            "{line}"
        );
    }
    let dead = FakeGpu::new("init=driver_not_loaded");
    let out = ecoedge(&dead, root.path(), &run_args("1s", &[]))
        .output()
        .unwrap();
    assert!(
        error_line(&out).contains("the NVIDIA kernel driver is not loaded"),
        "{out:?}"
    );
}

#[test]
fn lock_needs_the_nvml_board_and_root_and_nvml_is_refused_on_a_jetson() {
    let gpu = FakeGpu::new("lock=no_permission");
    let root = tempfile::tempdir().unwrap();
    let out = ecoedge(
        &gpu,
        root.path(),
        &run_args("1s", &["--gpu-clocks", "lock"]),
    )
    .output()
    .unwrap();
    let line = error_line(&out);
    assert!(line.contains("locking GPU clocks needs root"), "{line}");

    let mut host = run_args("1s", &["--gpu-clocks", "lock"]);
    host[2] = "host";
    let out = ecoedge(&gpu, root.path(), &host).output().unwrap();
    assert!(
        error_line(&out).contains("only the NVML board (--board nvml) locks GPU clocks"),
        "{out:?}"
    );

    let jetson = FakeBoard::xavier_nx_jp5();
    let out = ecoedge(&gpu, jetson.root(), &run_args("1s", &[]))
        .output()
        .unwrap();
    assert!(
        error_line(&out).contains("this is a Jetson, where NVML reports no power"),
        "{out:?}"
    );
}

/// Energy per request of a 3 s run, and the summary.
fn energy_per_request(gpu: &FakeGpu, extra: &[&str]) -> (f64, Value) {
    let root = tempfile::tempdir().unwrap();
    let out = ecoedge(gpu, root.path(), &run_args("3s", extra))
        .output()
        .unwrap();
    let s = summary(&out);
    assert_eq!(s["board"], "nvml");
    assert_eq!(s["energy_j_per_request"]["source"], "measured", "{s}");
    let e = s["energy_j_per_request"]["mean"].as_f64().unwrap();
    (e, s)
}

#[test]
fn energy_follows_the_gpu_counter_and_the_lock_is_reset_after_the_run() {
    let gpu = FakeGpu::new("");
    let (read_only, s) = energy_per_request(&gpu, &[]);
    assert_eq!(s["engine"]["gpu_clock"], "untouched", "{s}");
    assert!(s["final_config"]["gpu_hz"].is_null(), "{s}");
    assert!(gpu.calls().is_empty(), "read-only: nothing written");

    let (locked, s) = energy_per_request(&gpu, &["--gpu-clocks", "lock"]);
    // tract runs on the CPU: the GPU is pinned at its lowest clock.
    assert_eq!(s["engine"]["name"], "tract");
    assert_eq!(s["engine"]["gpu_clock"], "pinned", "{s}");
    assert_eq!(s["final_config"]["gpu_hz"], 495_000_000u64, "{s}");
    assert_eq!(
        gpu.calls(),
        ["reset", "lock 495 495", "reset"],
        "checked, locked once, reset at the end"
    );
    assert_eq!(gpu.locked(), None);
    // The fake draws 60 W + 0.1 W per MHz: 258 W unlocked, 109.5 W at
    // 495 MHz, and the same requests take the same time on the CPU.
    let ratio = locked / read_only;
    assert!(
        (0.3..0.6).contains(&ratio),
        "{locked} J at 495 MHz against {read_only} J unlocked: {ratio}"
    );
}

/// A 60 s run with `--gpu-clocks lock`, once it holds the lock.
fn locked_run(gpu: &FakeGpu, root: &Path) -> Child {
    let mut child = ecoedge(gpu, root, &run_args("60s", &["--gpu-clocks", "lock"]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while gpu.locked().is_none() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(t.elapsed() < Duration::from_secs(60), "never locked");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// A locked run killed with SIGKILL: the lock stays. Its pid.
fn killed_locked_run(gpu: &FakeGpu, root: &Path) -> u32 {
    let mut child = locked_run(gpu, root);
    child.kill().unwrap();
    child.wait().unwrap();
    child.id()
}

#[test]
fn a_stop_signal_resets_the_lock_and_a_killed_run_is_undone_by_board_restore() {
    let gpu = FakeGpu::new("");
    let root = tempfile::tempdir().unwrap();
    let mut child = locked_run(&gpu, root.path());
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
    assert_eq!(gpu.locked(), None, "reset after the drain");

    let pid = killed_locked_run(&gpu, root.path());
    assert_eq!(gpu.locked(), Some((495, 495)), "SIGKILL leaves the lock");
    let out = ecoedge(&gpu, root.path(), &["board", "--restore"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(&format!("reset the GPU clock lock process {pid} left")),
        "{stdout}"
    );
    assert_eq!(gpu.locked(), None);
    let again = ecoedge(&gpu, root.path(), &["board", "--restore"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&again.stdout).contains("reset the GPU clock lock"),
        "the store went with the reset"
    );
}

#[test]
fn the_next_run_resets_a_lock_a_killed_run_left() {
    let gpu = FakeGpu::new("");
    let root = tempfile::tempdir().unwrap();
    let pid = killed_locked_run(&gpu, root.path());
    let out = ecoedge(
        &gpu,
        root.path(),
        &run_args("1s", &["--gpu-clocks", "lock"]),
    )
    .output()
    .unwrap();
    let stderr = succeeded(&out);
    assert!(
        stderr.contains(&format!(
            "nvml: reset the GPU clock lock process {pid} left"
        )),
        "{stderr}"
    );
    assert_eq!(gpu.locked(), None);
}

#[test]
fn profile_measures_the_gpu_board_at_its_pinned_clock_and_resets_the_lock() {
    let gpu = FakeGpu::new("");
    let root = tempfile::tempdir().unwrap();
    let out_file = root.path().join("nvml.csv");
    let out = ecoedge(
        &gpu,
        root.path(),
        &[
            "profile",
            "--board",
            "nvml",
            "--gpu-clocks",
            "lock",
            "--model",
            "mlp",
            "--max-batch",
            "2",
            "--min-time",
            "100ms",
            "--min-runs",
            "2",
            "--settle",
            "0ms",
            "--idle-time",
            "100ms",
            "--out",
            out_file.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    succeeded(&out);
    let text = std::fs::read_to_string(&out_file).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "batches 1 and 2: {text}");
    for r in &rows {
        // tract runs on the CPU: the GPU at its lowest clock, 495 MHz.
        assert_eq!(r[1], "495000000", "{text}");
        // The fake draws 60 W + 0.1 W/MHz: 109.5 W at 495 MHz, idle or busy.
        for power in [r[4], r[5]] {
            let w: f64 = power.parse().unwrap();
            assert!((w - 109.5).abs() < 5.0, "{power} W: {text}");
        }
    }
    assert_eq!(gpu.calls(), ["reset", "lock 495 495", "reset"]);
    assert_eq!(gpu.locked(), None);
}
