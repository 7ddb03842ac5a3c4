//! Faults injected at the command line: `ecoedge run --board auto` on a fake
//! Xavier NX tree, the tree changed under the running service. Whatever
//! fails, the summary and the logs are written, every clock file the fault
//! spared is back as it was, and the exit status says whether the run was
//! cut short (1) or survived the fault (0).
//!
//! How each fault is made on an ordinary filesystem, where tests may run as
//! root (permission bits stop no one) and the meter's files are held open:
//! - a meter that vanishes: its hwmon directory is removed (the open
//!   descriptors still read the old contents; the sampler looks for its files
//!   once a second, as a kernel's unbound device would fail reads);
//! - read errors (EIO): the current file holds no number (the reader's parse
//!   fails, as a read failing with EIO does); briefly, or for good;
//! - a file that cannot be read at all: a directory in place of the file;
//! - a negative current: the file holds `-960`;
//! - a clock write the kernel refuses (EBUSY): a directory in place of the
//!   GPU's `max_freq` (the write fails with EISDIR; the service treats every
//!   refused write alike);
//! - a clock file turned read-only: a symlink to `/proc/version` in place of a
//!   CPU policy's `scaling_max_freq` (no one, root included, can write it).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ecoedge_tests::sysfs::{FakeBoard, XAVIER_NX_INA3221, xavier_nx_clock_files};

/// The module input rail's directory on the fake Xavier NX.
fn hwmon() -> String {
    format!("{XAVIER_NX_INA3221}/hwmon/hwmon5")
}

/// The module input rail's current file.
fn current_file() -> String {
    format!("{}/curr1_input", hwmon())
}

/// A CPU cluster's maximum: the run's CPU engine holds the GPU clock at its
/// lowest level, so only CPU clock files change once the run is under way.
const CPU4_MAX: &str = "/sys/devices/system/cpu/cpufreq/policy4/scaling_max_freq";
const CPU0_MAX: &str = "/sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq";

/// Every clock setting the run may touch, as the files hold them, but
/// `spared` (a file the fault replaced, which no one can restore).
fn clock_files(board: &FakeBoard, spared: &str) -> Vec<(String, String)> {
    board.snapshot(xavier_nx_clock_files().into_iter().filter(|p| p != spared))
}

/// A run of `mlp` on `board` for `seconds`, logs into `logs`, the optimizer
/// random (so clocks are written at every window).
fn start(board: &FakeBoard, logs: &Path, cache: &Path, seconds: u32) -> Child {
    // ECOEDGE_BIN replays the faults against another build (an older one,
    // to see a fix's test fail without it).
    let bin = std::env::var("ECOEDGE_BIN").unwrap_or(env!("CARGO_BIN_EXE_ecoedge").into());
    Command::new(bin)
        .args(["run", "--board", "auto", "--sysfs-root"])
        .arg(board.root())
        .args(["--model", "mlp", "--workload", "fixed:4ms", "--duration"])
        .arg(format!("{seconds}s"))
        .args(["--window", "32", "--warmup", "2", "--optimizer", "random"])
        .arg("--log-dir")
        .arg(logs)
        .arg("--json")
        .env("ECOEDGE_CACHE", cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the run has served requests (its request log was flushed,
/// which happens once a second), so the fault lands mid-run.
fn wait_serving(logs: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let rows =
            std::fs::read_to_string(logs.join("requests.csv")).map_or(0, |s| s.lines().count());
        if rows > 10 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the run never served a request");
}

/// What a faulted run left: its exit, stderr, summary (stdout), and the
/// summary and logs in its log directory.
struct Faulted {
    out: Output,
    stderr: String,
    summary: serde_json::Value,
}

/// Runs for `seconds`, applies `fault` once serving, waits for the end;
/// checks the summary and logs were written and the clocks `fault` spared
/// restored.
fn run_with_fault(seconds: u32, spared: &str, fault: impl FnOnce(&FakeBoard)) -> Faulted {
    let board = FakeBoard::xavier_nx_jp5();
    let before = clock_files(&board, spared);
    let logs = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let child = start(&board, logs.path(), cache.path(), seconds);
    wait_serving(logs.path());
    fault(&board);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no summary on stdout ({e}): {stderr}"));
    let logged: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(logs.path().join("summary.json"))
            .unwrap_or_else(|e| panic!("no summary.json ({e}): {stderr}")),
    )
    .unwrap();
    assert_eq!(logged, summary, "the logged summary is the printed one");
    let requests = std::fs::read_to_string(logs.path().join("requests.csv")).unwrap();
    let served = summary["requests"]["served"].as_u64().unwrap();
    assert!(served > 0, "{summary}");
    assert_eq!(requests.lines().count() as u64, 1 + served, "{stderr}");
    assert!(logs.path().join("windows.csv").is_file());
    assert_eq!(
        clock_files(&board, spared),
        before,
        "clocks restored: {stderr}"
    );
    Faulted {
        out,
        stderr,
        summary,
    }
}

/// Replaces the file at board path `abs` with an empty directory.
fn directory_in_place_of(board: &FakeBoard, abs: &str) {
    let p = board.path(abs);
    std::fs::remove_file(&p).unwrap();
    std::fs::create_dir(&p).unwrap();
}

/// The meter block of a summary: samples, errors, seconds of gaps.
fn meter(s: &serde_json::Value) -> (u64, u64, f64) {
    let m = &s["meter"];
    (
        m["samples"].as_u64().unwrap_or_else(|| panic!("{s}")),
        m["errors"].as_u64().unwrap(),
        m["gaps_s"].as_f64().unwrap(),
    )
}

/// Checks a run that the fault cut short: exit status 1, the summary says
/// why, the error names `names`.
fn assert_stopped(f: &Faulted, names: &str) {
    assert_eq!(f.out.status.code(), Some(1), "{}", f.stderr);
    let why = f.summary["stopped"].as_str().unwrap_or_default();
    assert!(why.contains(names), "{why} | {}", f.stderr);
    assert!(f.stderr.contains(names), "{}", f.stderr);
}

#[test]
fn a_meter_that_vanishes_stops_the_run_with_summary_logs_and_clocks_back() {
    let f = run_with_fault(6, "", |b| {
        std::fs::remove_dir_all(b.path(&hwmon())).unwrap();
    });
    assert_stopped(&f, "hwmon5");
    let (samples, errors, _) = meter(&f.summary);
    assert!(samples > 0 && errors > 0, "{}", f.summary);
}

#[test]
fn a_meter_file_turned_directory_stops_the_run_cleanly() {
    let f = run_with_fault(6, "", |b| directory_in_place_of(b, &current_file()));
    assert_stopped(&f, "curr1_input");
}

#[test]
fn persistent_read_errors_stop_the_run_cleanly() {
    let f = run_with_fault(6, "", |b| {
        b.file(&current_file(), "EIO\n");
    });
    assert_stopped(&f, "curr1_input");
    assert!(meter(&f.summary).1 > 0, "{}", f.summary);
}

#[test]
fn transient_read_errors_are_counted_and_reported() {
    let f = run_with_fault(4, "", |b| {
        b.file(&current_file(), "EIO\n");
        std::thread::sleep(Duration::from_millis(300));
        b.file(&current_file(), "960\n");
    });
    assert!(f.out.status.success(), "{}", f.stderr);
    assert_eq!(f.summary["energy_j_per_request"]["source"], "measured");
    let (samples, errors, gaps_s) = meter(&f.summary);
    assert!(samples > 100, "{}", f.summary);
    assert!(errors > 0, "{}", f.summary);
    assert!((0.2..2.0).contains(&gaps_s), "{}", f.summary);
}

#[test]
fn a_negative_current_is_not_measured_as_zero_joules() {
    let f = run_with_fault(6, "", |b| {
        b.file(&current_file(), "-960\n");
    });
    assert_stopped(&f, "negative");
    assert!(meter(&f.summary).1 > 0, "{}", f.summary);
}

#[test]
fn a_refused_clock_write_stops_the_run_and_restores_the_rest() {
    let f = run_with_fault(6, CPU4_MAX, |b| directory_in_place_of(b, CPU4_MAX));
    assert_stopped(&f, "scaling_max_freq");
}

#[test]
fn a_clock_file_turned_read_only_stops_the_run_and_restores_the_rest() {
    let f = run_with_fault(6, CPU0_MAX, |b| {
        let p = b.path(CPU0_MAX);
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/proc/version", &p).unwrap();
    });
    assert_stopped(&f, "scaling_max_freq");
}
