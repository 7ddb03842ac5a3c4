//! The NVML board through the library API, against the fake GPU: every level
//! of the GPU knob is a lock at that clock, each written once; a restore
//! from another thread (a signal handler's) resets the lock, and nothing is
//! locked after it. One test: NVML's library path is process-wide (an
//! environment variable), so this binary sets it once, before any thread
//! reads it.

use ecoedge_bsp_jetson::MonotonicClock;
use ecoedge_bsp_jetson::sampler::Clock as _;
use ecoedge_core::space::Knob;
use ecoedge_runner::board::nvml::GpuClocks;
use ecoedge_runner::board::{BoardAccess, BoardChoice, BoardOptions, LinuxBoard};
use ecoedge_runner::knobs::{KnobSet, LowerLimits};
use ecoedge_tests::nvml::{FakeGpu, LIB};

#[test]
fn each_gpu_level_is_a_lock_and_a_restore_from_another_thread_ends_them() {
    let gpu = FakeGpu::new("");
    // SAFETY: the only test of this binary, before any other thread runs.
    unsafe {
        std::env::set_var("ECOEDGE_NVML_LIB", LIB);
        std::env::set_var("FAKE_NVML_DIR", gpu.dir());
    }
    let root = tempfile::tempdir().unwrap();
    let options = BoardOptions {
        choice: BoardChoice::Nvml,
        access: BoardAccess {
            sysfs_root: root.path().to_path_buf(),
            gpu_clocks: GpuClocks::Lock,
            ..BoardAccess::default()
        },
    };
    let clock = MonotonicClock::new();
    let mut board = LinuxBoard::open(&options, clock).unwrap();
    assert_eq!(board.name, "nvml");
    let space = board
        .space(&KnobSet::paper(), 4, &LowerLimits::NONE)
        .unwrap();
    let g = space.position(Knob::Gpu).expect("the GPU is a knob");
    let levels = space.dims()[g].levels().to_vec();
    assert_eq!(levels.len(), 16);
    assert_eq!(gpu.calls(), ["reset"], "only checked so far");

    let e0 = board.energy_j(clock.now()).unwrap();
    let mut expected = vec!["reset".to_string()];
    for (i, &hz) in levels.iter().enumerate() {
        let config = space.min_config().with(g, i);
        board.apply(&space, &config, |_| false).unwrap();
        // The same config again writes nothing.
        board.apply(&space, &config, |_| false).unwrap();
        let mhz = hz / 1_000_000;
        assert_eq!(gpu.locked(), Some((mhz, mhz)));
        expected.push(format!("lock {mhz} {mhz}"));
    }
    assert_eq!(gpu.calls(), expected);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let e1 = board.energy_j(clock.now()).unwrap();
    // At 1980 MHz the fake draws 258 W: 50 ms is about 13 J.
    assert!(e1 - e0 > 5.0, "{e0} J then {e1} J");

    // The governed GPU (the dvfs baseline) is the driver's: no lock.
    board
        .apply(&space, &space.min_config(), |k| k == Knob::Gpu)
        .unwrap();
    assert_eq!(gpu.locked(), None);
    board.apply(&space, &space.max_config(), |_| false).unwrap();
    assert_eq!(gpu.locked(), Some((1980, 1980)));

    let restorer = board.restorer().expect("the lock is restorable");
    std::thread::spawn(move || restorer.restore().unwrap())
        .join()
        .unwrap();
    assert_eq!(gpu.locked(), None);
    let calls = gpu.calls().len();
    board.apply(&space, &space.min_config(), |_| false).unwrap();
    assert_eq!(gpu.locked(), None, "nothing is locked after the restore");
    board.restore().unwrap();
    drop(board);
    assert_eq!(gpu.calls().len(), calls, "restored once");
    assert!(!root.path().join("run/ecoedge/nvml.json").exists());
}
