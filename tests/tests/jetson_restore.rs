//! The restore guard: clocks come back after a normal exit, a panic, an explicit
//! restore, SIGTERM and Ctrl-C, in an order the kernel accepts.

use ecoedge_bsp_jetson::{
    CpuFreq, Error, GpuFreq, RestoreGuard, StateDir, Sysfs, open_knobs, open_knobs_stored,
    restore_stored,
};
use ecoedge_core::board::FrequencyKnob;
use ecoedge_tests::sysfs::{FakeBoard, FakeKernel};
use std::io::ErrorKind;
use std::sync::Arc;

const GPU: &str = "/sys/devices/gpu.0/devfreq/17000000.gv11b";
const EMC: &str = "/sys/kernel/debug/bpmp/debug/clk/emc";

/// (governor, min, max) of every policy, then of the GPU, then the EMC's
/// (lock, rate, max).
fn state(b: &FakeBoard) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = ["policy0", "policy2", "policy4"]
        .iter()
        .map(|p| {
            let d = format!("/sys/devices/system/cpu/cpufreq/{p}");
            (
                b.read(&format!("{d}/scaling_governor")),
                b.read(&format!("{d}/scaling_min_freq")),
                b.read(&format!("{d}/scaling_max_freq")),
            )
        })
        .collect();
    out.push((
        b.read(&format!("{GPU}/governor")),
        b.read(&format!("{GPU}/min_freq")),
        b.read(&format!("{GPU}/max_freq")),
    ));
    out.push((
        b.read(&format!("{EMC}/mrq_rate_locked")),
        b.read(&format!("{EMC}/rate")),
        b.read(&format!("{EMC}/max_rate")),
    ));
    out
}

/// A board whose settings are not the defaults, so restoring them is visible.
fn tuned_board() -> FakeBoard {
    let b = FakeBoard::xavier_nx_jp5();
    let d = "/sys/devices/system/cpu/cpufreq/policy2";
    b.file(&format!("{d}/scaling_governor"), "ondemand\n");
    b.file(&format!("{d}/scaling_min_freq"), "345600\n");
    b.file(&format!("{d}/scaling_max_freq"), "1497600\n");
    b.file(&format!("{GPU}/min_freq"), "306000000\n");
    b
}

fn pin_everything(sysfs: &Sysfs) {
    let mut cpu = CpuFreq::open(sysfs).unwrap();
    let mut gpu = GpuFreq::open(sysfs).unwrap();
    cpu.set_level(24).unwrap();
    gpu.set_level(0).unwrap();
    sysfs
        .write(&sysfs.path(format!("{GPU}/governor")), "userspace")
        .unwrap();
}

#[test]
fn restores_after_a_normal_exit() {
    let b = tuned_board();
    let before = state(&b);
    let kernel = Arc::new(FakeKernel::new(&b));
    let sysfs = Sysfs::new(b.root()).with_writer(kernel.clone());
    let guard = RestoreGuard::save(&sysfs).unwrap();
    assert_eq!(guard.saved().len(), 4);
    pin_everything(&sysfs);
    assert_ne!(state(&b), before);
    drop(guard);
    assert_eq!(state(&b), before);
    assert!(
        kernel.log().iter().all(|w| w.accepted),
        "{:?}",
        kernel.log()
    );
}

#[test]
fn restores_after_a_panic() {
    let b = tuned_board();
    let before = state(&b);
    let kernel = Arc::new(FakeKernel::new(&b));
    let sysfs = Sysfs::new(b.root()).with_writer(kernel.clone());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = RestoreGuard::save(&sysfs).unwrap();
        pin_everything(&sysfs);
        panic!("inference crashed");
    }));
    assert!(result.is_err());
    assert_eq!(state(&b), before);
    assert!(
        kernel.log().iter().all(|w| w.accepted),
        "{:?}",
        kernel.log()
    );
}

#[test]
fn restores_once_even_if_asked_twice() {
    let b = tuned_board();
    let before = state(&b);
    let kernel = Arc::new(FakeKernel::new(&b));
    let sysfs = Sysfs::new(b.root()).with_writer(kernel.clone());
    let guard = RestoreGuard::save(&sysfs).unwrap();
    pin_everything(&sysfs);
    guard.restore().unwrap();
    assert_eq!(state(&b), before);
    let writes = kernel.log().len();
    guard.restore().unwrap();
    drop(guard);
    assert_eq!(kernel.log().len(), writes);
}

#[test]
fn a_failing_clock_does_not_stop_the_others_from_being_restored() {
    let b = tuned_board();
    let before = state(&b);
    let kernel = Arc::new(FakeKernel::new(&b));
    let sysfs = Sysfs::new(b.root()).with_writer(kernel.clone());
    let guard = RestoreGuard::save(&sysfs).unwrap();
    pin_everything(&sysfs);
    kernel.fail(
        "/sys/devices/system/cpu/cpufreq/policy0/scaling_min_freq",
        ErrorKind::PermissionDenied,
    );
    let err = guard.restore().unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }));
    assert!(err.to_string().contains("policy0/scaling_min_freq"));
    assert_eq!(state(&b)[1..], before[1..]);
}

/// The child side of the signal tests: pin everything, then signal ourselves.
/// The guard's thread must restore and exit with 128 + signal.
fn child(root: &str, signal: i32) {
    let sysfs = Sysfs::new(root);
    let mut knobs = open_knobs(&sysfs).unwrap().watch_signals().unwrap();
    knobs.cpu.set_level(0).unwrap();
    knobs.gpu.as_mut().unwrap().set_level(0).unwrap();
    knobs.emc.as_mut().unwrap().set_level(0).unwrap();
    // SAFETY: raise has no preconditions.
    unsafe { libc::raise(signal) };
    std::thread::sleep(std::time::Duration::from_secs(10));
    panic!("still alive after signal {signal}");
}

#[test]
fn restores_and_exits_on_sigterm_and_ctrl_c() {
    const CHILD: &str = "ECOEDGE_TEST_SIGNAL_CHILD";
    if let Ok(spec) = std::env::var(CHILD) {
        let (sig, root) = spec.split_once(':').unwrap();
        return child(root, sig.parse().unwrap());
    }
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let b = tuned_board();
        let before = state(&b);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "restores_and_exits_on_sigterm_and_ctrl_c",
                "--nocapture",
            ])
            .env(CHILD, format!("{signal}:{}", b.root().display()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "signal {signal}: {text}");
        assert_eq!(state(&b), before, "signal {signal}");
    }
}

/// Writes like the kernel with a thermal cap on the devfreq maximum (the
/// GPU's `max_freq`, by whichever path): a value above `cap` reads back as
/// `cap`.
struct CappingKernel {
    cap: u64,
}

impl ecoedge_bsp_jetson::Writer for CappingKernel {
    fn write(&self, path: &std::path::Path, value: &str) -> std::io::Result<()> {
        let stored = match value.parse::<u64>() {
            Ok(v) if path.ends_with("max_freq") && v > self.cap => self.cap.to_string(),
            _ => value.to_string(),
        };
        ecoedge_bsp_jetson::FileWriter.write(path, &stored)
    }
}

#[test]
fn a_capped_maximum_is_reported_and_the_pinned_values_are_never_written_back() {
    let b = tuned_board();
    let before = state(&b);
    // A thermal cap holds the GPU's maximum at 800 MHz: pinning it at its
    // lowest level passes, putting its maximum back does not.
    let sysfs = Sysfs::new(b.root()).with_writer(Arc::new(CappingKernel { cap: 800_000_000 }));
    let guard = RestoreGuard::save(&sysfs).unwrap();
    pin_everything(&sysfs);
    let pinned = b.read(&format!("{GPU}/min_freq"));
    let err = guard.restore().unwrap_err();
    assert!(
        matches!(&err, Error::Verify { got, .. } if got == "800000000"),
        "{err}"
    );
    let after = state(&b);
    assert_eq!(after[3].0, before[3].0, "GPU governor back");
    assert_eq!(after[3].1, before[3].1, "GPU minimum back, not {pinned}");
    assert_eq!(
        after[3].2, "800000000",
        "GPU maximum as high as the cap allows"
    );
    assert_eq!(after[..3], before[..3], "the CPU clusters back");
}

/// The child side of the store test: hold the board with a store, pin
/// everything, and die without restoring (as SIGKILL or an abort would).
fn dying_child(root: &str) {
    let sysfs = Sysfs::new(root);
    let state = StateDir::new(sysfs.path(ecoedge_bsp_jetson::state::DEFAULT_DIR));
    let (mut knobs, _) = open_knobs_stored(&sysfs, &state).unwrap();
    knobs.cpu.set_level(0).unwrap();
    knobs.gpu.as_mut().unwrap().set_level(0).unwrap();
    knobs.emc.as_mut().unwrap().set_level(0).unwrap();
    // SAFETY: _exit has no preconditions; it skips every destructor.
    unsafe { libc::_exit(9) };
}

#[test]
fn the_next_start_restores_what_a_killed_process_left_pinned() {
    const CHILD: &str = "ECOEDGE_TEST_DYING_CHILD";
    if let Ok(root) = std::env::var(CHILD) {
        return dying_child(&root);
    }
    let b = tuned_board();
    let before = state(&b);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_next_start_restores_what_a_killed_process_left_pinned",
        ])
        .env(CHILD, b.root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(state(&b), before, "the child died with the clocks pinned");
    let sysfs = Sysfs::new(b.root());
    let state_dir = StateDir::new(sysfs.path(ecoedge_bsp_jetson::state::DEFAULT_DIR));
    let (knobs, recovered) = open_knobs_stored(&sysfs, &state_dir).unwrap();
    let recovered = recovered.expect("the dead process's store was found");
    assert_ne!(recovered.pid, std::process::id());
    assert_eq!(state(&b), before, "restored before saving anew");
    // While this process holds the board, a second one is refused.
    match open_knobs_stored(&sysfs, &state_dir) {
        Err(Error::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(knobs);
    assert_eq!(
        state_dir.read_store().unwrap(),
        None,
        "the store goes with the restore"
    );
    assert_eq!(restore_stored(&sysfs, &state_dir).unwrap(), None);
}
