//! CPU and GPU knobs on fake trees behind a fake kernel that refuses
//! `min > max`, as pre-QoS kernels did: a wrong write order fails loudly here.

use ecoedge_bsp_jetson::{CpuFreq, Error, GpuFreq, Sysfs};
use ecoedge_core::board::FrequencyKnob;
use ecoedge_tests::sysfs::{FakeBoard, FakeKernel, ORIN_NX_GPU_HZ, XAVIER_NX_CPU_KHZ};
use std::io::ErrorKind;
use std::sync::Arc;

const POLICIES: [&str; 3] = ["policy0", "policy2", "policy4"];

fn with_kernel(board: &FakeBoard) -> (Sysfs, Arc<FakeKernel>) {
    let kernel = Arc::new(FakeKernel::new(board));
    (Sysfs::new(board.root()).with_writer(kernel.clone()), kernel)
}

fn pairs(v: &[(&str, u32)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(f, x)| (f.to_string(), x.to_string()))
        .collect()
}

fn cpu_limits(b: &FakeBoard, policy: &str) -> (String, String) {
    let d = format!("/sys/devices/system/cpu/cpufreq/{policy}");
    (
        b.read(&format!("{d}/scaling_min_freq")),
        b.read(&format!("{d}/scaling_max_freq")),
    )
}

#[test]
fn the_fake_kernel_refuses_min_above_max() {
    let b = FakeBoard::xavier_nx_jp5();
    b.file(
        "/sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq",
        "115200\n",
    );
    let (sysfs, kernel) = with_kernel(&b);
    let err = sysfs
        .write(
            &b.path("/sys/devices/system/cpu/cpufreq/policy0/scaling_min_freq"),
            "1907200",
        )
        .unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert!(!kernel.log()[0].accepted);
}

#[test]
fn lowering_writes_min_then_max_on_every_policy() {
    let b = FakeBoard::xavier_nx_jp5();
    let (sysfs, kernel) = with_kernel(&b);
    let mut cpu = CpuFreq::open(&sysfs).unwrap();
    cpu.set_level(0).unwrap();
    let one = [("scaling_min_freq", 115_200), ("scaling_max_freq", 115_200)];
    assert_eq!(kernel.accepted(), pairs(&[one, one, one].concat()));
    assert!(kernel.log().iter().all(|w| w.accepted));
    assert!(kernel.log()[2].path.contains("policy2"));
    assert_eq!(cpu.read_back().unwrap(), 115_200);
    for p in POLICIES {
        assert_eq!(cpu_limits(&b, p), ("115200".into(), "115200".into()));
    }
}

#[test]
fn raising_writes_max_then_min_and_moving_down_inside_min_first() {
    let b = FakeBoard::xavier_nx_jp5();
    let (sysfs, kernel) = with_kernel(&b);
    let mut cpu = CpuFreq::open(&sysfs).unwrap();
    cpu.set_level(0).unwrap();
    let before = kernel.log().len();
    cpu.set_level(24).unwrap();
    let up = [
        ("scaling_max_freq", 1_907_200),
        ("scaling_min_freq", 1_907_200),
    ];
    assert_eq!(kernel.accepted()[before..], pairs(&[up, up, up].concat()));
    assert_eq!(cpu.read_back().unwrap(), 1_907_200);
    let before = kernel.log().len();
    cpu.set_level(10).unwrap();
    let down = [("scaling_min_freq", 883_200), ("scaling_max_freq", 883_200)];
    assert_eq!(
        kernel.accepted()[before..],
        pairs(&[down, down, down].concat())
    );
    assert!(
        kernel.log().iter().all(|w| w.accepted),
        "{:?}",
        kernel.log()
    );
}

#[test]
fn gpu_pinning_orders_writes_the_same_way() {
    let b = FakeBoard::orin_nx_jp6();
    let (sysfs, kernel) = with_kernel(&b);
    let mut gpu = GpuFreq::open(&sysfs).unwrap();
    gpu.set_level(0).unwrap();
    gpu.set_level(6).unwrap();
    assert_eq!(
        kernel.accepted(),
        pairs(&[
            ("min_freq", 306_000_000),
            ("max_freq", 306_000_000),
            ("max_freq", 918_000_000),
            ("min_freq", 918_000_000),
        ])
    );
    assert_eq!(gpu.read_back().unwrap(), ORIN_NX_GPU_HZ[6]);
    assert!(
        kernel.log()[0]
            .path
            .starts_with("/sys/class/devfreq/17000000.gpu/")
    );
}

#[test]
fn hand_over_restores_governor_and_full_range() {
    let b = FakeBoard::xavier_nx_jp4();
    let (sysfs, kernel) = with_kernel(&b);
    let mut cpu = CpuFreq::open(&sysfs).unwrap();
    let mut gpu = GpuFreq::open(&sysfs).unwrap();
    cpu.set_level(3).unwrap();
    gpu.set_level(2).unwrap();
    // Someone switched to userspace meanwhile.
    b.file(
        "/sys/devices/system/cpu/cpufreq/policy2/scaling_governor",
        "userspace\n",
    );
    b.file(
        "/sys/devices/gpu.0/devfreq/17000000.gv11b/governor",
        "userspace\n",
    );
    cpu.hand_over().unwrap();
    gpu.hand_over().unwrap();
    assert_eq!(cpu.governors().unwrap(), vec!["schedutil"; 3]);
    for p in POLICIES {
        assert_eq!(cpu_limits(&b, p), ("115200".into(), "1907200".into()));
    }
    assert_eq!(gpu.governor().unwrap(), "nvhost_podgov");
    let g = "/sys/devices/gpu.0/devfreq/17000000.gv11b";
    assert_eq!(b.read(&format!("{g}/min_freq")), "114750000");
    assert_eq!(b.read(&format!("{g}/max_freq")), "1109250000");
    assert!(
        kernel.log().iter().all(|w| w.accepted),
        "{:?}",
        kernel.log()
    );
}

#[test]
fn hand_over_falls_back_to_the_governor_found_at_open() {
    let b = FakeBoard::empty();
    b.cpu_policy(0, &[0], &XAVIER_NX_CPU_KHZ, "ondemand");
    b.file(
        "/sys/devices/system/cpu/cpufreq/policy0/scaling_available_governors",
        "ondemand userspace\n",
    );
    let (sysfs, _kernel) = with_kernel(&b);
    let mut cpu = CpuFreq::open(&sysfs).unwrap();
    b.file(
        "/sys/devices/system/cpu/cpufreq/policy0/scaling_governor",
        "userspace\n",
    );
    cpu.hand_over().unwrap();
    assert_eq!(cpu.governors().unwrap(), vec!["ondemand"]);
}

#[test]
fn a_level_past_the_table_is_refused_before_any_write() {
    let b = FakeBoard::nano();
    let (sysfs, kernel) = with_kernel(&b);
    let mut cpu = CpuFreq::open(&sysfs).unwrap();
    assert!(matches!(
        cpu.set_level(15),
        Err(Error::LevelOutOfRange {
            index: 15,
            levels: 15
        })
    ));
    assert!(kernel.log().is_empty());
}

#[test]
fn a_failing_second_write_is_undone_and_earlier_policies_rolled_back() {
    let b = FakeBoard::xavier_nx_jp5();
    let (sysfs, kernel) = with_kernel(&b);
    let mut cpu = CpuFreq::open(&sysfs).unwrap();
    kernel.fail(
        "/sys/devices/system/cpu/cpufreq/policy2/scaling_max_freq",
        ErrorKind::Other,
    );
    let err = cpu.set_level(5).unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert!(
        err.to_string().contains("policy2/scaling_max_freq"),
        "{err}"
    );
    // Nothing half-applied: every policy has its old limits.
    for p in POLICIES {
        assert_eq!(
            cpu_limits(&b, p),
            ("115200".into(), "1907200".into()),
            "{p}"
        );
    }
    let d = "/sys/devices/system/cpu/cpufreq";
    let expected = [
        (format!("{d}/policy0/scaling_min_freq"), "499200"),
        (format!("{d}/policy0/scaling_max_freq"), "499200"),
        (format!("{d}/policy2/scaling_min_freq"), "499200"),
        // policy2's max is refused; its min gets its old value back ...
        (format!("{d}/policy2/scaling_min_freq"), "115200"),
        // ... and policy0 is rolled back (inside its range: min first).
        (format!("{d}/policy0/scaling_min_freq"), "115200"),
        (format!("{d}/policy0/scaling_max_freq"), "1907200"),
    ];
    let accepted: Vec<(String, String)> = kernel
        .log()
        .into_iter()
        .filter(|w| w.accepted)
        .map(|w| (w.path, w.value))
        .collect();
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(p, v)| (p, v.to_string()))
        .collect();
    assert_eq!(accepted, expected);
    assert_eq!(kernel.log().iter().filter(|w| !w.accepted).count(), 1);
}

#[test]
fn a_denied_write_names_the_file_and_says_run_as_root() {
    let b = FakeBoard::orin_nx_jp6();
    let (sysfs, kernel) = with_kernel(&b);
    let mut gpu = GpuFreq::open(&sysfs).unwrap();
    kernel.fail(
        "/sys/class/devfreq/17000000.gpu/min_freq",
        ErrorKind::PermissionDenied,
    );
    let err = gpu.set_level(0).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("17000000.gpu/min_freq") && msg.contains("run as root"),
        "{msg}"
    );
    assert!(
        kernel.accepted().is_empty(),
        "nothing to undo: nothing was written"
    );
}

/// The kernel itself denies the write: the knob runs in a child process as user
/// `nobody` on a tree of ordinary 0644/0444 files (root would bypass file modes,
/// and the tests run as root). Not as root: runs in this process.
#[test]
fn the_kernel_denying_a_write_names_the_file_and_says_run_as_root() {
    const CHILD: &str = "ECOEDGE_TEST_UNPRIVILEGED_ROOT";
    if let Ok(root) = std::env::var(CHILD) {
        return expect_denied(std::path::Path::new(&root));
    }
    let b = FakeBoard::xavier_nx_jp5();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(b.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for p in POLICIES {
        for f in ["scaling_governor", "scaling_min_freq", "scaling_max_freq"] {
            let path = b.path(&format!("/sys/devices/system/cpu/cpufreq/{p}/{f}"));
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return expect_denied(b.root());
    }
    use std::os::unix::process::CommandExt;
    // The test binary may sit where `nobody` cannot reach it (a checkout under
    // /root): run a copy from a directory anyone can enter.
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.path().join("test-binary");
    std::fs::copy(std::env::current_exe().unwrap(), &bin).unwrap();
    let out = std::process::Command::new(&bin)
        .args([
            "--exact",
            "the_kernel_denying_a_write_names_the_file_and_says_run_as_root",
            "--nocapture",
        ])
        .env(CHILD, b.root())
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
    assert_eq!(
        cpu_limits(&b, "policy0"),
        ("115200".into(), "1907200".into())
    );
}

fn expect_denied(root: &std::path::Path) {
    // Opening the knobs the safe way fails before changing anything.
    let err = ecoedge_bsp_jetson::open_knobs(&Sysfs::new(root)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{msg}");
    assert!(
        msg.contains("policy0/scaling_") && msg.contains("run as root"),
        "{msg}"
    );
    // A knob opened without the check fails at its first write, naming the file.
    let mut cpu = CpuFreq::open(&Sysfs::new(root)).unwrap();
    let err = cpu.set_level(0).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{msg}");
    assert!(
        msg.contains("policy0/scaling_min_freq") && msg.contains("run as root"),
        "{msg}"
    );
}

#[test]
fn a_link_out_of_the_tree_is_never_written_through() {
    let b = FakeBoard::xavier_nx_jp5();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "1907200\n").unwrap();
    let max = b.path("/sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq");
    std::fs::remove_file(&max).unwrap();
    std::os::unix::fs::symlink(&victim, &max).unwrap();
    let sysfs = Sysfs::new(b.root());
    let err = sysfs.write(&max, "115200").unwrap_err();
    assert!(matches!(err, Error::OutsideRoot { .. }), "{err}");
    assert!(
        err.to_string().contains("outside the board's root"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "1907200\n");
    // Links inside the tree (sysfs is full of them) are followed as before.
    let gpu = b.path("/sys/class/devfreq/17000000.gv11b/governor");
    sysfs.write(&gpu, "userspace").unwrap();
    assert_eq!(
        b.read("/sys/devices/gpu.0/devfreq/17000000.gv11b/governor"),
        "userspace"
    );
}
