//! The memory (EMC) clock knob on fake BPMP debugfs trees, behind a fake kernel
//! that, like the firmware, ignores a rate written while unlocked and rounds a
//! locked one to a possible rate: a wrong write order or an unchecked clamp
//! fails here.

use ecoedge_bsp_jetson::{EmcFreq, Error, RestoreGuard, Sysfs, open_knobs, report};
use ecoedge_core::board::FrequencyKnob;
use ecoedge_core::space::Knob;
use ecoedge_tests::sysfs::{FakeBoard, FakeKernel, ORIN_NX_EMC_KHZ, XAVIER_NX_EMC_KHZ};
use std::io::ErrorKind;
use std::sync::Arc;

const EMC: &str = "/sys/kernel/debug/bpmp/debug/clk/emc";
const RATES: &str = "/sys/kernel/debug/bpmp/debug/emc/possible_rates";
const ISO_CAP: &str = "/sys/kernel/nvpmodel_emc_cap/emc_iso_cap";

fn with_kernel(board: &FakeBoard) -> (Sysfs, Arc<FakeKernel>) {
    let kernel = Arc::new(FakeKernel::new(board));
    (Sysfs::new(board.root()).with_writer(kernel.clone()), kernel)
}

fn hz(khz: &[u32]) -> Vec<u32> {
    khz.iter().map(|k| k * 1000).collect()
}

fn pairs(v: &[(&str, u32)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(f, x)| (f.to_string(), x.to_string()))
        .collect()
}

/// The accepted writes to EMC files from the `from`-th write on, as
/// `(file name, value)` (the guard also rewrites CPU and GPU limits).
fn emc_writes(kernel: &FakeKernel, from: usize) -> Vec<(String, String)> {
    kernel.log()[from..]
        .iter()
        .filter(|w| w.accepted && w.path.starts_with(EMC))
        .map(|w| {
            (
                w.path.rsplit('/').next().unwrap().to_string(),
                w.value.clone(),
            )
        })
        .collect()
}

/// Every EMC file's contents, to compare before and after.
fn emc_files(b: &FakeBoard) -> Vec<String> {
    ["rate", "min_rate", "max_rate", "mrq_rate_locked"]
        .iter()
        .map(|f| b.read(&format!("{EMC}/{f}")))
        .chain([b.read(RATES), b.read(ISO_CAP)])
        .collect()
}

#[test]
fn found_on_every_bpmp_layout_with_levels_in_hz() {
    for (board, levels, cur) in [
        (
            FakeBoard::xavier_nx_jp4(),
            hz(&XAVIER_NX_EMC_KHZ),
            1_600_000_000,
        ),
        (
            FakeBoard::xavier_nx_jp5(),
            hz(&XAVIER_NX_EMC_KHZ),
            1_600_000_000,
        ),
        (
            FakeBoard::orin_nx_jp6(),
            hz(&ORIN_NX_EMC_KHZ),
            2_133_000_000,
        ),
    ] {
        let sysfs = Sysfs::new(board.root());
        let mut emc = EmcFreq::open(&sysfs).unwrap();
        assert_eq!(emc.knob(), Knob::Memory);
        assert_eq!(emc.levels(), &levels[..]);
        assert_eq!(emc.read_back().unwrap(), cur);
        assert!(!emc.locked().unwrap());
        assert_eq!(emc.files().dir, board.path(EMC));
        assert_eq!(emc.dimension().unwrap().len(), levels.len());
    }
    assert_eq!(hz(&XAVIER_NX_EMC_KHZ)[6], 1_600_000_000);
    assert_eq!(hz(&ORIN_NX_EMC_KHZ)[3], 3_199_000_000, "fits in u32");
}

#[test]
fn a_board_without_the_interface_has_none_and_says_why() {
    let b = FakeBoard::nano();
    let err = EmcFreq::open(&Sysfs::new(b.root())).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("debugfs") && msg.contains("bpmp/debug/clk/emc"),
        "{msg}"
    );
}

#[test]
fn the_power_modes_cap_and_max_rate_bound_the_levels() {
    let b = FakeBoard::xavier_nx_jp5();
    b.file(ISO_CAP, "1331200000\n");
    let emc = EmcFreq::open(&Sysfs::new(b.root())).unwrap();
    assert_eq!(emc.levels(), &hz(&XAVIER_NX_EMC_KHZ)[..6]);
    // A cap of 0 means none; max_rate then bounds (Orin boots capped at 2133).
    let o = FakeBoard::orin_nx_jp6();
    o.file(&format!("{EMC}/max_rate"), "2133000000\n");
    let emc = EmcFreq::open(&Sysfs::new(o.root())).unwrap();
    assert_eq!(emc.levels(), &hz(&ORIN_NX_EMC_KHZ)[..3]);
    // No emc_iso_cap file at all (nvpmodel's driver absent): max_rate alone.
    std::fs::remove_file(o.path(ISO_CAP)).unwrap();
    let emc = EmcFreq::open(&Sysfs::new(o.root())).unwrap();
    assert_eq!(emc.files().iso_cap, None);
    assert_eq!(emc.levels().len(), 3);
}

#[test]
fn a_list_in_hertz_gives_the_same_levels() {
    // Not seen on a board: what a firmware printing Hz without a unit would give.
    let b = FakeBoard::xavier_nx_jp5();
    let listed: Vec<String> = hz(&XAVIER_NX_EMC_KHZ)
        .iter()
        .rev()
        .map(u32::to_string)
        .collect();
    b.file(RATES, &format!("{}\n", listed.join(" ")));
    let emc = EmcFreq::open(&Sysfs::new(b.root())).unwrap();
    assert_eq!(emc.levels(), &hz(&XAVIER_NX_EMC_KHZ)[..]);
}

#[test]
fn more_than_64_levels_is_an_error_not_a_truncation() {
    let b = FakeBoard::orin_nx_jp6();
    let many: Vec<String> = (0..65)
        .map(|i| (204_000 + i * 10_000).to_string())
        .collect();
    b.file(RATES, &format!("{} (kHz)\n", many.join(" ")));
    let err = EmcFreq::open(&Sysfs::new(b.root())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooManyLevels {
                count: 65,
                max: 64,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("possible_rates"), "{err}");
    // 64 is fine.
    b.file(RATES, &format!("{} (kHz)\n", many[..64].join(" ")));
    assert_eq!(
        EmcFreq::open(&Sysfs::new(b.root())).unwrap().levels().len(),
        64
    );
}

#[test]
fn no_possible_rate_in_range_is_an_error_naming_the_file() {
    let b = FakeBoard::xavier_nx_jp5();
    b.file(RATES, "2133000 3199000 (kHz)\n");
    let err = EmcFreq::open(&Sysfs::new(b.root())).unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err}");
    assert!(err.to_string().contains("possible_rates"), "{err}");
}

#[test]
fn the_fake_firmware_ignores_an_unlocked_rate_and_rounds_a_locked_one() {
    let b = FakeBoard::xavier_nx_jp5();
    let (sysfs, kernel) = with_kernel(&b);
    let rate = b.path(&format!("{EMC}/rate"));
    sysfs.write(&rate, "204000000").unwrap();
    assert_eq!(b.read(&format!("{EMC}/rate")), "1600000000");
    let lock = b.path(&format!("{EMC}/mrq_rate_locked"));
    assert!(sysfs.write(&lock, "2").is_err());
    sysfs.write(&lock, "1").unwrap();
    sysfs.write(&rate, "700000000").unwrap();
    assert_eq!(b.read(&format!("{EMC}/rate")), "665600000");
    sysfs.write(&rate, "3199000000").unwrap();
    assert_eq!(b.read(&format!("{EMC}/rate")), "1600000000", "clamped");
    assert_eq!(kernel.log().iter().filter(|w| !w.accepted).count(), 1);
}

#[test]
fn pinning_locks_first_then_writes_the_rate_and_reads_it_back() {
    let b = FakeBoard::orin_nx_jp6();
    let (sysfs, kernel) = with_kernel(&b);
    let mut emc = EmcFreq::open(&sysfs).unwrap();
    emc.set_level(0).unwrap();
    assert_eq!(
        kernel.accepted(),
        pairs(&[("mrq_rate_locked", 1), ("rate", 204_000_000)])
    );
    assert_eq!(emc.read_back().unwrap(), 204_000_000);
    assert!(emc.locked().unwrap());
    // Already locked: only the rate.
    let before = kernel.log().len();
    emc.set_level(3).unwrap();
    assert_eq!(
        kernel.accepted()[before..],
        pairs(&[("rate", 3_199_000_000)])
    );
    assert_eq!(emc.read_back().unwrap(), 3_199_000_000);
    assert!(
        kernel.log()[0]
            .path
            .starts_with("/sys/kernel/debug/bpmp/debug/clk/emc/")
    );
}

#[test]
fn hand_over_unlocks_for_the_bandwidth_manager() {
    let b = FakeBoard::xavier_nx_jp4();
    let (sysfs, kernel) = with_kernel(&b);
    let mut emc = EmcFreq::open(&sysfs).unwrap();
    emc.set_level(2).unwrap();
    emc.hand_over().unwrap();
    assert!(!emc.locked().unwrap());
    assert_eq!(
        kernel.accepted().last().unwrap(),
        &pairs(&[("mrq_rate_locked", 0)])[0]
    );
}

#[test]
fn a_level_past_the_table_is_refused_before_any_write() {
    let b = FakeBoard::xavier_nx_jp5();
    let (sysfs, kernel) = with_kernel(&b);
    let mut emc = EmcFreq::open(&sysfs).unwrap();
    assert!(matches!(
        emc.set_level(7),
        Err(Error::LevelOutOfRange {
            index: 7,
            levels: 7
        })
    ));
    assert!(kernel.log().is_empty());
}

#[test]
fn a_rate_that_does_not_take_is_reported_and_the_lock_undone() {
    let b = FakeBoard::xavier_nx_jp5();
    let (sysfs, kernel) = with_kernel(&b);
    let mut emc = EmcFreq::open(&sysfs).unwrap();
    kernel.fail(&format!("{EMC}/rate"), ErrorKind::Other);
    let err = emc.set_level(1).unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert!(err.to_string().contains("clk/emc/rate"), "{err}");
    assert_eq!(
        kernel.accepted(),
        pairs(&[("mrq_rate_locked", 1), ("mrq_rate_locked", 0)])
    );
    assert!(!emc.locked().unwrap());
}

#[test]
fn a_rate_clamped_by_a_new_power_mode_is_a_verify_error_and_the_old_rate_returns() {
    let b = FakeBoard::xavier_nx_jp5();
    let (sysfs, _kernel) = with_kernel(&b);
    let mut emc = EmcFreq::open(&sysfs).unwrap();
    emc.set_level(4).unwrap();
    // nvpmodel switches to a mode capping the EMC at 1331.2 MHz meanwhile.
    b.file(ISO_CAP, "1331200000\n");
    let err = emc.set_level(6).unwrap_err();
    assert!(
        matches!(&err, Error::Verify { wanted, got, .. } if wanted == "1600000000" && got == "1331200000"),
        "{err}"
    );
    assert_eq!(
        emc.read_back().unwrap(),
        1_065_600_000,
        "the old rate is back"
    );
    assert!(emc.locked().unwrap());
}

#[test]
fn a_denied_write_names_the_file_and_says_run_as_root() {
    let b = FakeBoard::orin_nx_jp6();
    let (sysfs, kernel) = with_kernel(&b);
    let mut emc = EmcFreq::open(&sysfs).unwrap();
    kernel.fail(
        &format!("{EMC}/mrq_rate_locked"),
        ErrorKind::PermissionDenied,
    );
    let err = emc.set_level(0).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("clk/emc/mrq_rate_locked") && msg.contains("run as root"),
        "{msg}"
    );
    assert!(kernel.accepted().is_empty());
}

#[test]
fn the_guard_puts_every_emc_file_back_after_pinning() {
    let b = FakeBoard::xavier_nx_jp5();
    let before = emc_files(&b);
    let (sysfs, kernel) = with_kernel(&b);
    let guard = RestoreGuard::save(&sysfs).unwrap();
    let saved = guard.saved_emc().unwrap();
    assert_eq!((saved.locked, saved.rate), (false, 1_600_000_000));
    let mut emc = EmcFreq::open(&sysfs).unwrap();
    emc.set_level(0).unwrap();
    assert_ne!(emc_files(&b), before);
    let pinned = kernel.log().len();
    drop(guard);
    assert_eq!(emc_files(&b), before);
    // Rate first, while still locked (it would not take unlocked), then unlock.
    assert_eq!(
        emc_writes(&kernel, pinned),
        pairs(&[("rate", 1_600_000_000), ("mrq_rate_locked", 0)])
    );
    assert!(
        kernel.log().iter().all(|w| w.accepted),
        "{:?}",
        kernel.log()
    );
}

#[test]
fn a_pinned_emc_is_pinned_again_at_its_rate_even_after_hand_over() {
    // jetson_clocks ran before us: locked at the maximum.
    let b = FakeBoard::orin_nx_jp6();
    b.file(&format!("{EMC}/mrq_rate_locked"), "1\n");
    b.file(&format!("{EMC}/rate"), "3199000000\n");
    let before = emc_files(&b);
    let (sysfs, kernel) = with_kernel(&b);
    let guard = RestoreGuard::save(&sysfs).unwrap();
    let mut emc = EmcFreq::open(&sysfs).unwrap();
    emc.set_level(1).unwrap();
    emc.hand_over().unwrap();
    let done = kernel.log().len();
    guard.restore().unwrap();
    assert_eq!(emc_files(&b), before);
    assert_eq!(
        emc_writes(&kernel, done),
        pairs(&[("mrq_rate_locked", 1), ("rate", 3_199_000_000)])
    );
}

#[test]
fn an_untouched_emc_is_not_written_on_restore() {
    let b = FakeBoard::xavier_nx_jp4();
    let (sysfs, kernel) = with_kernel(&b);
    // The bandwidth manager moves the unlocked rate meanwhile: not ours to undo.
    let guard = RestoreGuard::save(&sysfs).unwrap();
    b.file(&format!("{EMC}/rate"), "800000000\n");
    guard.restore().unwrap();
    assert_eq!(emc_writes(&kernel, 0), vec![]);
    assert_eq!(b.read(&format!("{EMC}/rate")), "800000000");
}

#[test]
fn open_knobs_opens_the_emc_and_the_board_works_without_one() {
    let b = FakeBoard::xavier_nx_jp5();
    let mut knobs = open_knobs(&Sysfs::new(b.root())).unwrap();
    let emc = knobs.emc.as_mut().unwrap();
    emc.set_level(0).unwrap();
    assert_eq!(b.read(&format!("{EMC}/rate")), "204000000");
    drop(knobs);
    assert_eq!(b.read(&format!("{EMC}/rate")), "1600000000");
    assert_eq!(b.read(&format!("{EMC}/mrq_rate_locked")), "0");

    let nano = FakeBoard::nano();
    let mut knobs = open_knobs(&Sysfs::new(nano.root())).unwrap();
    assert!(knobs.emc.is_none());
    assert!(knobs.guard.saved_emc().is_none());
    knobs.cpu.set_level(0).unwrap();
    knobs.gpu.as_mut().unwrap().set_level(0).unwrap();
}

#[test]
fn the_report_shows_levels_rate_and_interface() {
    let b = FakeBoard::xavier_nx_jp5();
    let r = report(b.root()).unwrap();
    let emc = r.emc.unwrap();
    assert_eq!(emc.path, EMC);
    assert_eq!(emc.rates_path, RATES);
    assert_eq!(emc.levels_hz, hz(&XAVIER_NX_EMC_KHZ));
    assert_eq!(
        (emc.cur_hz, emc.min_hz, emc.max_hz),
        (1_600_000_000, 204_000_000, 1_600_000_000)
    );
    assert_eq!(emc.iso_cap_hz, Some(1_600_000_000));
    assert!(!emc.locked);
    let json = serde_json::to_value(report(b.root()).unwrap()).unwrap();
    assert_eq!(json["emc"]["levels_hz"][0], 204_000_000);

    let o = report(FakeBoard::orin_nx_jp6().root()).unwrap();
    assert_eq!(o.emc.unwrap().iso_cap_hz, None, "a cap of 0 is no cap");

    let n = report(FakeBoard::nano().root()).unwrap();
    assert!(n.emc.is_none());
    assert!(
        n.notes.iter().any(|s| s.contains("EMC clock")),
        "{:?}",
        n.notes
    );
}

/// Gives the whole tree to `nobody`, so a child running as `nobody` may write
/// what the test does not lock down (root may write anything, so permission
/// tests need a user the kernel checks).
fn give_to_nobody(dir: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; lchown has no other precondition.
    assert_eq!(unsafe { libc::lchown(c.as_ptr(), 65534, 65534) }, 0);
    if dir.is_dir() && !dir.is_symlink() {
        for e in std::fs::read_dir(dir).unwrap() {
            give_to_nobody(&e.unwrap().path());
        }
    }
}

/// Runs this test binary's `test` as `nobody` with `env` set to `root`, after
/// handing it the tree; returns its output. Only meaningful as root.
fn run_as_nobody(test: &str, env: &str, root: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.path().join("test-binary");
    std::fs::copy(std::env::current_exe().unwrap(), &bin).unwrap();
    let out = std::process::Command::new(&bin)
        .args(["--exact", test, "--nocapture"])
        .env(env, root)
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the child did not run the test:\n{text}"
    );
    text
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The kernel refuses the EMC lock file (read-only, checked by a user the
/// kernel checks): opening the knobs fails before any change, naming it.
#[test]
fn a_read_only_emc_file_stops_open_knobs_before_any_change() {
    const CHILD: &str = "ECOEDGE_TEST_EMC_READ_ONLY_ROOT";
    if let Ok(root) = std::env::var(CHILD) {
        let err = open_knobs(&Sysfs::new(&root)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::PermissionDenied { .. }), "{msg}");
        assert!(
            msg.contains("clk/emc/mrq_rate_locked") && msg.contains("run as root"),
            "{msg}"
        );
        return;
    }
    if !is_root() {
        return; // The tree would be ours: nothing to refuse without chown.
    }
    use std::os::unix::fs::PermissionsExt;
    let b = FakeBoard::xavier_nx_jp5();
    let before = emc_files(&b);
    give_to_nobody(b.root());
    let lock = b.path(&format!("{EMC}/mrq_rate_locked"));
    std::fs::set_permissions(lock, std::fs::Permissions::from_mode(0o444)).unwrap();
    run_as_nobody(
        "a_read_only_emc_file_stops_open_knobs_before_any_change",
        CHILD,
        b.root(),
    );
    assert_eq!(emc_files(&b), before);
}

/// debugfs is root's (mode 0700): a user who cannot enter it gets the board
/// without an EMC knob, not an error.
#[test]
fn a_debugfs_the_user_cannot_enter_means_no_emc_knob() {
    const CHILD: &str = "ECOEDGE_TEST_EMC_CLOSED_DEBUGFS_ROOT";
    if let Ok(root) = std::env::var(CHILD) {
        let mut knobs = open_knobs(&Sysfs::new(&root)).unwrap();
        assert!(knobs.emc.is_none());
        knobs.cpu.set_level(0).unwrap();
        assert!(
            report(std::path::Path::new(&root))
                .unwrap()
                .notes
                .iter()
                .any(|n| n.contains("EMC clock"))
        );
        return;
    }
    if !is_root() {
        return;
    }
    let b = FakeBoard::xavier_nx_jp5();
    give_to_nobody(b.root());
    let debug = b.path("/sys/kernel/debug");
    std::fs::set_permissions(&debug, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let c = std::ffi::CString::new(debug.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 0, 0) }, 0);
    run_as_nobody(
        "a_debugfs_the_user_cannot_enter_means_no_emc_knob",
        CHILD,
        b.root(),
    );
    // The child's knobs were restored when it dropped them.
    assert_eq!(
        b.read("/sys/devices/system/cpu/cpufreq/policy0/scaling_min_freq"),
        "115200"
    );
}
