//! `ecoedge profile --board ...` end to end: the binary measures the MLP on a
//! host without clock knobs and on a fake Xavier NX tree, writes a profile
//! that `sim` and `compare` load, puts every clock back, and answers bad
//! input with one `error:` line.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use ecoedge_tests::cli::{one_error_line, succeeded};
use ecoedge_tests::sysfs::{FakeBoard, XAVIER_NX_CPU_KHZ, XAVIER_NX_GPU_HZ, xavier_nx_clock_files};

/// The profile format's header.
const HEADER: &str = "cpu_khz,gpu_hz,batch,latency_s,busy_power_w,idle_power_w";

/// Short measurements: each test stays within seconds.
const QUICK: [&str; 8] = [
    "--min-time",
    "10ms",
    "--min-runs",
    "2",
    "--settle",
    "0ms",
    "--idle-time",
    "10ms",
];

fn ecoedge(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args(args)
        .env("ECOEDGE_CACHE", cache)
        .output()
        .expect("the binary runs")
}

/// `ecoedge profile` of `mlp` on `board` (a --board value) under `root`,
/// written to `out`, with `extra` flags.
fn profile(cache: &Path, board: &str, root: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "profile",
        "--board",
        board,
        "--sysfs-root",
        root.to_str().unwrap(),
        "--model",
        "mlp",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(&QUICK);
    args.extend_from_slice(extra);
    ecoedge(cache, &args)
}

/// The rows of a profile file: (cpu_khz, gpu_hz, batch, [latency, busy, idle]).
fn rows(path: &Path) -> Vec<(u32, u32, u32, [f64; 3])> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 6, "{l}");
            let real = |i: usize| f[i].parse::<f64>().unwrap();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                [real(3), real(4), real(5)],
            )
        })
        .collect()
}

#[test]
fn a_host_without_clock_knobs_is_profiled_over_batch_sizes_and_simulates() {
    let dir = tempfile::tempdir().unwrap();
    // An empty tree: no cpufreq, no RAPL, so the host board has only the batch
    // knob and estimates energy, the same on every machine.
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let out = dir.path().join("host.csv");
    let stderr = succeeded(&profile(
        dir.path(),
        "host",
        &root,
        &out,
        &["--max-batch", "4"],
    ));
    assert!(
        stderr.contains("profiled host running mlp on tract (cpu): 4 configs"),
        "{stderr}"
    );
    assert!(stderr.contains("energy estimated"), "{stderr}");
    assert!(stderr.contains("config 4/4: batch 4:"), "{stderr}");
    let rows = rows(&out);
    // No clock knob: the placeholder level 1 for both clocks.
    assert!(rows.iter().all(|r| r.0 == 1 && r.1 == 1), "{rows:?}");
    let batches: Vec<u32> = rows.iter().map(|r| r.2).collect();
    assert_eq!(batches, [1, 2, 3, 4]);
    assert!(
        rows.iter().all(|r| r.3.iter().all(|v| *v > 0.0)),
        "{rows:?}"
    );
    assert!(
        rows[3].3[0] > 0.0 && rows[3].3[1] >= rows[3].3[2],
        "{rows:?}"
    );

    let device = out.to_str().unwrap();
    let sim = ecoedge(
        dir.path(),
        &["sim", "--device", device, "--windows", "20", "--json"],
    );
    succeeded(&sim);
    let s: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    assert_eq!(s["device"], device);
    let batch = s["final_config"]["batch"].as_u64().unwrap();
    assert!((1..=4).contains(&batch), "{s}");
    // The placeholder clocks are no knobs, as on the board profiled.
    assert!(s["final_config"]["cpu_khz"].is_null(), "{s}");
    assert!(s["final_config"]["gpu_hz"].is_null(), "{s}");
    let text = ecoedge(dir.path(), &["sim", "--device", device, "--windows", "20"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("final:    CPU -, GPU -, batch"), "{stdout}");

    let compare = ecoedge(
        dir.path(),
        &[
            "compare",
            "--device",
            device,
            "--workload",
            "fixed:50ms",
            "--optimizers",
            "ecogd,grid,oracle",
            "--repeats",
            "1",
            "--windows",
            "20",
            "--json",
        ],
    );
    succeeded(&compare);
    let c: serde_json::Value = serde_json::from_slice(&compare.stdout).unwrap();
    assert_eq!(c["device"], device);
    assert_eq!(c["results"].as_array().unwrap().len(), 3, "{c}");
}

#[test]
fn a_fake_xavier_nx_is_profiled_at_every_cpu_level_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let board = FakeBoard::xavier_nx_jp5();
    let before = board.snapshot(xavier_nx_clock_files());
    let out = dir.path().join("nx.csv");
    let stderr = succeeded(&profile(
        dir.path(),
        "jetson",
        board.root(),
        &out,
        &["--max-batch", "2"],
    ));
    assert!(stderr.contains("energy measured"), "{stderr}");
    assert_eq!(
        board.snapshot(xavier_nx_clock_files()),
        before,
        "clocks restored"
    );
    let rows = rows(&out);
    let cpu: BTreeSet<u32> = rows.iter().map(|r| r.0).collect();
    assert_eq!(cpu, XAVIER_NX_CPU_KHZ.into_iter().collect());
    // tract runs on the CPU: the GPU is held at its lowest level.
    let gpu: BTreeSet<u32> = rows.iter().map(|r| r.1).collect();
    assert_eq!(gpu, BTreeSet::from([XAVIER_NX_GPU_HZ[0]]));
    // 25 CPU levels by 2 batch sizes: within the default budget, all of them.
    assert_eq!(rows.len(), 50);
    // The fake rail draws a constant 5048 mV * 960 mA.
    for r in &rows {
        for w in [r.3[1], r.3[2]] {
            assert!((w - 4.846).abs() < 0.01, "{r:?}");
        }
    }
    succeeded(&ecoedge(
        dir.path(),
        &["sim", "--device", out.to_str().unwrap(), "--windows", "20"],
    ));
}

#[test]
fn a_budget_below_the_sweeps_is_refused_with_the_board_restored() {
    let dir = tempfile::tempdir().unwrap();
    let board = FakeBoard::xavier_nx_jp5();
    let before = board.snapshot(xavier_nx_clock_files());
    let out = dir.path().join("nx.csv");
    let run = profile(
        dir.path(),
        "auto",
        board.root(),
        &out,
        &["--max-batch", "2", "--configs", "10"],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: --configs 10: measuring every level of each knob once takes 26 configs (25 cpu, 1 gpu, 2 batch levels)"
        ),
        "{stderr}"
    );
    assert!(!out.exists());
    assert_eq!(
        board.snapshot(xavier_nx_clock_files()),
        before,
        "clocks restored"
    );
}

#[test]
fn bad_input_gets_one_error_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let outs = dir.path().join("outs");
    std::fs::create_dir_all(&outs).unwrap();
    let out = outs.join("p.csv");
    one_error_line(
        &profile(dir.path(), "host", &root, &out, &["--configs", "0"]),
        "--configs must be at least 1",
    );
    // A path under a regular file: not writable, even by root.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let under_file = file.join("p.csv");
    one_error_line(
        &profile(dir.path(), "host", &root, &under_file, &[]),
        &format!("--out {}: cannot write there", under_file.display()),
    );
    one_error_line(
        &ecoedge(
            dir.path(),
            &[
                "profile",
                "--board",
                "host",
                "--sysfs-root",
                root.to_str().unwrap(),
                "--model",
                "no-such-model.onnx",
                "--out",
                out.to_str().unwrap(),
            ],
        ),
        "--model no-such-model.onnx: neither a built-in model",
    );
    one_error_line(
        &profile(dir.path(), "host", &root, &out, &["--device", "xavier-nx"]),
        "--device xavier-nx: a simulated device",
    );
    // A measurement's flag without --board would be ignored: refused.
    for flag in [["--threads", "2"], ["--configs", "50"], ["--settle", "1s"]] {
        let refused = ecoedge(
            dir.path(),
            &["profile", "--out", out.to_str().unwrap(), flag[0], flag[1]],
        );
        assert_eq!(refused.status.code(), Some(2), "{flag:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("--board <BOARD>"), "{flag:?}: {stderr}");
    }
    // Nothing written, no temporary file left behind.
    assert_eq!(std::fs::read_dir(&outs).unwrap().count(), 0);
}

#[test]
fn a_signal_stops_the_profile_restores_the_board_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let board = FakeBoard::xavier_nx_jp5();
    let before = board.snapshot(xavier_nx_clock_files());
    let out = dir.path().join("nx.csv");
    // A second per config: the profile is still measuring when the signal comes.
    let child = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args([
            "profile",
            "--board",
            "jetson",
            "--sysfs-root",
            board.root().to_str().unwrap(),
            "--model",
            "mlp",
            "--max-batch",
            "2",
            "--min-time",
            "1s",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("ECOEDGE_CACHE", dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while board.snapshot(xavier_nx_clock_files()) == before {
        assert!(
            t.elapsed().as_secs() < 60,
            "the profile never set the clocks"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let run = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: interrupted after"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists());
    assert_eq!(
        board.snapshot(xavier_nx_clock_files()),
        before,
        "clocks restored"
    );
}
