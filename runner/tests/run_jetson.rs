//! `ecoedge run --board auto` on a fake Xavier NX tree: the Jetson is detected,
//! CPU and GPU clocks join the knob space, energy comes from the module's input
//! rail, and every clock file is back as it was after the run.

use std::process::Command;

use ecoedge_tests::sysfs::FakeBoard;

/// Every cpufreq and devfreq setting the run may touch, as the files hold them.
fn clock_files(board: &FakeBoard) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for id in [0, 2, 4] {
        for f in ["scaling_governor", "scaling_min_freq", "scaling_max_freq"] {
            let path = format!("/sys/devices/system/cpu/cpufreq/policy{id}/{f}");
            files.push((path.clone(), board.read(&path)));
        }
    }
    for f in ["governor", "min_freq", "max_freq"] {
        let path = format!("/sys/devices/gpu.0/devfreq/17000000.gv11b/{f}");
        files.push((path.clone(), board.read(&path)));
    }
    files
}

#[test]
fn run_tunes_a_fake_xavier_nx_and_restores_it() {
    let board = FakeBoard::xavier_nx_jp5();
    let before = clock_files(&board);
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args([
            "run",
            "--board",
            "auto",
            "--sysfs-root",
            board.root().to_str().unwrap(),
            "--model",
            "mlp",
            "--workload",
            "fixed:4ms",
            "--duration",
            "2s",
            "--window",
            "32",
            "--warmup",
            "2",
            "--optimizer",
            "random",
            "--json",
        ])
        .env("ECOEDGE_CACHE", cache.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["board"], "jetson");
    assert_eq!(s["energy_j_per_request"]["source"], "measured");
    assert!(s["energy_j_per_request"]["mean"].as_f64().unwrap() > 0.0);
    let c = &s["final_config"];
    assert!(c["cpu_khz"].as_u64().is_some(), "{c}");
    assert!(c["gpu_hz"].as_u64().is_some(), "{c}");
    assert_eq!(clock_files(&board), before, "clocks restored");
}
