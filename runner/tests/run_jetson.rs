//! `ecoedge run --board auto` on a fake Xavier NX tree: the Jetson is detected,
//! CPU and GPU clocks (and the memory clock when asked) join the knob space,
//! energy comes from the module's input rail, and every clock file is back as
//! it was after the run.

use std::process::Command;

use ecoedge_tests::sysfs::{FakeBoard, xavier_nx_clock_files};

/// Every clock setting the run may touch, as the files hold them.
fn clock_files(board: &FakeBoard) -> Vec<(String, String)> {
    board.snapshot(xavier_nx_clock_files())
}

/// `ecoedge run` on `board` for 2 s of `mlp` with `extra` flags.
fn run(board: &FakeBoard, extra: &[&str]) -> std::process::Output {
    let cache = tempfile::tempdir().unwrap();
    let root = board.root().to_str().unwrap().to_string();
    let mut args = vec![
        "run",
        "--board",
        "auto",
        "--sysfs-root",
        &root,
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
        "--json",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args(&args)
        .env("ECOEDGE_CACHE", cache.path())
        .output()
        .unwrap()
}

#[test]
fn run_tunes_a_fake_xavier_nx_and_restores_it() {
    let board = FakeBoard::xavier_nx_jp5();
    let before = clock_files(&board);
    let out = run(&board, &["--optimizer", "random"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["board"], "jetson");
    assert_eq!(s["energy_j_per_request"]["source"], "measured");
    assert!(s["energy_j_per_request"]["mean"].as_f64().unwrap() > 0.0);
    let c = &s["final_config"];
    assert!(c["cpu_khz"].as_u64().is_some(), "{c}");
    // tract runs on the CPU: the GPU clock is held at its lowest level.
    assert_eq!(c["gpu_hz"], 114_750_000, "{c}");
    assert_eq!(s["engine"]["gpu_clock"], "pinned", "{s}");
    assert_eq!(s["engine"]["ep"], "cpu");
    assert!(
        c.get("emc_hz").is_none(),
        "the memory clock only when asked: {c}"
    );
    assert_eq!(clock_files(&board), before, "clocks restored");
}

#[test]
fn run_tunes_four_knobs_with_the_memory_clock_and_restores_them() {
    let board = FakeBoard::xavier_nx_jp5();
    let before = clock_files(&board);
    let logs = tempfile::tempdir().unwrap();
    let out = run(
        &board,
        &[
            "--optimizer",
            "random",
            "--knobs",
            "cpu,gpu,batch,emc",
            "--log-dir",
            logs.path().to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let emc = s["final_config"]["emc_hz"].as_u64().unwrap();
    assert!(ecoedge_tests::sysfs::XAVIER_NX_EMC_KHZ.contains(&((emc / 1000) as u32)));
    // The random search pinned the memory clock at several levels: the fake
    // firmware took each (locked, then the rate).
    let windows = std::fs::read_to_string(logs.path().join("windows.csv")).unwrap();
    let column = windows
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "emc_hz")
        .unwrap();
    let levels: std::collections::BTreeSet<&str> = windows
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(column).unwrap())
        .collect();
    assert!(levels.len() > 1, "{levels:?}");
    assert_eq!(clock_files(&board), before, "clocks restored");
}

#[test]
fn an_i2c_meter_the_kernel_owns_is_refused_before_any_change() {
    let board = FakeBoard::xavier_nx_jp5();
    let before = clock_files(&board);
    let out = run(&board, &["--meter", "i2c:/dev/i2c-7@0x40"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("--meter i2c:/dev/i2c-7@0x40:1"), "{stderr}");
    assert!(stderr.contains("unbind"), "{stderr}");
    let out = run(&board, &["--meter", "i2c:/dev/i2c-9@0x40"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("/dev/i2c-9"), "{stderr}");
    let out = run(&board, &["--meter", "spi:/dev/x"]);
    assert!(!out.status.success());
    assert_eq!(clock_files(&board), before);
}
