//! The port example (`ecoedge_tests::generic_sbc`) on a fake Raspberry Pi 5:
//! discovery, the meter's units and integration, the knob's write order and
//! restore, and EcoGD tuning the board through the port on a virtual clock.
//!
//! Writes go through [`FakeKernel`], which refuses a minimum above the maximum
//! as pre-QoS kernels did: a wrong write order fails these tests.

use ecoedge_bsp_jetson::Writer;
use ecoedge_core::prelude::*;
use ecoedge_tests::generic_sbc::{
    self, CpufreqPolicy, Error, HwmonPower, INA2XX_NAMES, Kernel, SysfsWrite,
};
use ecoedge_tests::sysfs::{FakeBoard, FakeKernel, PI5_CPU_KHZ, PI5_INA226};
use std::fs;
use std::io;
use std::path::Path;

const POLICY: &str = "/sys/devices/system/cpu/cpufreq/policy0";
const MIN: &str = "scaling_min_freq";
const MAX: &str = "scaling_max_freq";
const GOVERNOR: &str = "scaling_governor";

/// The port's writes, through the fake kernel.
struct Fake<'a>(&'a FakeKernel);

impl SysfsWrite for Fake<'_> {
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.0.write(path, value)
    }
}

fn policy_file(b: &FakeBoard, file: &str) -> String {
    b.read(&format!("{POLICY}/{file}"))
}

fn writes(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(f, x)| (f.to_string(), x.to_string()))
        .collect()
}

fn t_ms(ms: u64) -> Instant {
    Instant::from_micros(ms * 1_000)
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

#[test]
fn discovery_finds_the_ina226_among_other_hwmon_devices() {
    let b = FakeBoard::raspberry_pi5();
    let kernel = FakeKernel::new(&b);
    let board = generic_sbc::discover(b.root(), Fake(&kernel)).unwrap();
    assert_eq!(
        board.meter.name(),
        "ina226",
        "cpu_thermal and pwmfan skipped"
    );
    assert_eq!(board.meter.dir(), b.path(PI5_INA226));
    assert_eq!(board.meter.update_interval_ms(), Some(35));
    assert_eq!(board.cpu.dir(), b.path(POLICY));
    assert_eq!(board.cpu.levels(), &PI5_CPU_KHZ);
    let dim = board.cpu.dimension().unwrap();
    assert_eq!((dim.knob(), dim.len()), (Knob::Cpu, 10));
    assert!(kernel.log().is_empty(), "discovery writes nothing");

    let bare = FakeBoard::empty();
    bare.hwmon_device(
        "/sys/devices/virtual/thermal/thermal_zone0",
        0,
        "cpu_thermal",
        &[("temp1_input", 40_000)],
    );
    let err = HwmonPower::find(bare.root(), &INA2XX_NAMES).unwrap_err();
    assert!(matches!(err, Error::NoSensor { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("no hwmon device named ina219 ina220 ina226"),
        "{err}"
    );
}

#[test]
fn the_meter_integrates_microwatts_into_joules() {
    let b = FakeBoard::raspberry_pi5();
    let mut m = HwmonPower::find(b.root(), &["ina226"]).unwrap();
    // 5100 mV x 540 mA = 2 754 000 uW = 2.754 W.
    assert_eq!(m.energy_j(t_ms(1_000)).unwrap(), 0.0, "counts from here");
    assert!(close(m.energy_j(t_ms(3_000)).unwrap(), 2.754 * 2.0));
    // A linear ramp to 5.1 W over 1 s read at its ends: the trapezoid is exact.
    b.ina226_reading(PI5_INA226, 5100, 1000);
    let ramp = 2.754 * 2.0 + (2.754 + 5.1) / 2.0;
    assert!(close(m.energy_j(t_ms(4_000)).unwrap(), ramp));

    let err = m.energy_j(t_ms(3_999)).unwrap_err();
    assert!(matches!(err, Error::ClockWentBack { .. }), "{err}");
    assert!(close(m.energy_j(t_ms(4_000)).unwrap(), ramp), "unchanged");

    // The limitation: power fell back to 2.754 W at 4.9 s, unseen until 5 s.
    // True energy 5.1 * 0.9 + 2.754 * 0.1 = 4.8654 J; the meter counts the
    // trapezoid, 3.927 J. Reading at every change of load avoids it.
    b.ina226_reading(PI5_INA226, 5100, 540);
    let got = m.energy_j(t_ms(5_000)).unwrap() - ramp;
    assert!(close(got, (5.1 + 2.754) / 2.0), "{got}");
}

#[test]
fn lowering_writes_min_first_and_raising_max_first() {
    let b = FakeBoard::raspberry_pi5();
    let kernel = FakeKernel::new(&b);
    let mut cpu = CpufreqPolicy::open(b.root(), 0, Fake(&kernel)).unwrap();
    cpu.set_level(0).unwrap();
    cpu.set_level(9).unwrap();
    cpu.set_level(4).unwrap();
    assert_eq!(
        kernel.accepted(),
        writes(&[
            (MIN, "1500000"),
            (MAX, "1500000"),
            (MAX, "2400000"),
            (MIN, "2400000"),
            (MIN, "1900000"),
            (MAX, "1900000"),
        ])
    );
    assert_eq!(kernel.log().len(), 6, "nothing refused");
    assert_eq!(cpu.read_back().unwrap(), 1_900_000);
    assert!(matches!(
        cpu.set_level(10),
        Err(Error::LevelOutOfRange {
            index: 10,
            levels: 10
        })
    ));
    // The other order would have been refused.
    let max = b.path(&format!("{POLICY}/{MAX}"));
    let refused = kernel.write(&max, "1500000").unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(22), "EINVAL");

    drop(cpu);
    let log = kernel.accepted();
    assert_eq!(
        log[log.len() - 3..],
        writes(&[(GOVERNOR, "ondemand"), (MIN, "1500000"), (MAX, "2400000")]),
        "restored on drop, lowering the minimum first"
    );
}

#[test]
fn hand_over_frees_the_full_range_and_drop_restores_what_was_found() {
    let b = FakeBoard::raspberry_pi5();
    // The user capped the clock at 2 GHz before EcoEdge started.
    b.file(&format!("{POLICY}/{MAX}"), "2000000\n");
    b.file(&format!("{POLICY}/scaling_cur_freq"), "2000000\n");
    let kernel = FakeKernel::new(&b);
    let mut cpu = CpufreqPolicy::open(b.root(), 0, Fake(&kernel)).unwrap();

    cpu.set_level(9).unwrap();
    assert_eq!(cpu.read_back().unwrap(), 2_400_000);
    cpu.hand_over().unwrap();
    assert_eq!(
        kernel.accepted(),
        writes(&[
            (MAX, "2400000"),
            (MIN, "2400000"),
            (GOVERNOR, "ondemand"),
            (MIN, "1500000"),
            (MAX, "2400000"),
        ]),
        "above the cap: maximum first; handed over: the whole cpuinfo range"
    );
    assert_eq!(policy_file(&b, GOVERNOR), "ondemand");

    // A power daemon switches the governor while EcoEdge runs.
    b.file(&format!("{POLICY}/{GOVERNOR}"), "performance\n");
    cpu.set_level(2).unwrap();
    drop(cpu);
    assert_eq!(policy_file(&b, GOVERNOR), "ondemand");
    assert_eq!(policy_file(&b, MIN), "1500000");
    assert_eq!(policy_file(&b, MAX), "2000000", "the cap is back");
    assert_eq!(kernel.log().len(), 10, "nothing refused");
}

#[test]
fn a_driver_without_a_level_table_is_refused_clearly() {
    let b = FakeBoard::raspberry_pi5();
    fs::remove_file(b.path(&format!("{POLICY}/scaling_available_frequencies"))).unwrap();
    let err = CpufreqPolicy::open(b.root(), 0, Kernel).unwrap_err();
    match &err {
        Error::NoLevelTable { path } => {
            assert!(path.ends_with("policy0/scaling_available_frequencies"))
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains("publishes no level table"),
        "{err}"
    );
}

#[test]
fn the_plain_writer_writes_in_place_and_creates_nothing() {
    let b = FakeBoard::raspberry_pi5();
    let mut cpu = CpufreqPolicy::open(b.root(), 0, Kernel).unwrap();
    cpu.set_level(3).unwrap();
    assert_eq!(policy_file(&b, MIN), "1800000");
    assert_eq!(policy_file(&b, MAX), "1800000");
    let missing = b.path(&format!("{POLICY}/scaling_setspeed_typo"));
    let err = Kernel.write(&missing, "1").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(!missing.exists());
    drop(cpu);
    assert_eq!(policy_file(&b, MIN), "1500000");
    assert_eq!(policy_file(&b, MAX), "2400000");
}

/// A small model of the Pi 5 running a model: batch service time falls as the
/// clock rises, and the power drawn at the 5.1 V input is idle power plus a
/// dynamic part growing with the cube of the clock (voltage rises with it).
mod pi5 {
    /// Supply voltage, mV.
    pub const BUS_MV: u32 = 5100;
    /// Idle current, mA (2.75 W).
    pub const IDLE_MA: u32 = 540;
    /// Extra current with all cores busy at the top clock, mA (+4.2 W).
    const BUSY_EXTRA_MA: f64 = 824.0;
    const TOP_KHZ: u64 = 2_400_000;

    /// Microseconds to serve a batch of `n` at `khz`: 4 ms + 3 ms per request at
    /// the top clock, scaled by the clock.
    pub fn service_us(khz: u32, n: usize) -> u64 {
        (4_000 + 3_000 * n as u64) * TOP_KHZ / u64::from(khz)
    }

    /// Current while serving at `khz`, mA.
    pub fn busy_ma(khz: u32) -> u32 {
        let r = f64::from(khz) / TOP_KHZ as f64;
        IDLE_MA + (BUSY_EXTRA_MA * r * r * r).round() as u32
    }
}

/// The fake board's power steps to `ma` at `now_us`. The meter is read on both
/// sides of the step (the sensor's value before it and after it), so the
/// trapezoid between readings is exact and the expected joules are closed-form.
fn power_step(b: &FakeBoard, meter: &mut HwmonPower, now_us: u64, ma: u32) -> u64 {
    let now = Instant::from_micros(now_us);
    meter.energy_j(now).unwrap();
    let uw = b.ina226_reading(PI5_INA226, pi5::BUS_MV, ma);
    meter.energy_j(now).unwrap();
    uw
}

#[test]
fn ecogd_tunes_the_fake_pi5_through_the_port() {
    const GAP_US: u64 = 20_000;
    const WINDOWS: u64 = 40;
    const WINDOW: u32 = 48;

    let b = FakeBoard::raspberry_pi5();
    let kernel = FakeKernel::new(&b);
    let mut board = generic_sbc::discover(b.root(), Fake(&kernel)).unwrap();
    let space = generic_sbc::space(&board.cpu, 16).unwrap();
    let settings = Settings {
        window: WindowSettings {
            requests: WINDOW,
            warmup: 16,
            ..WindowSettings::default()
        },
        max_wait: Some(Duration::from_millis(400)),
        ..Settings::default()
    };
    let ecogd = EcoGd::new(EcoGdSettings::default(), 7);
    let mut ctl: Controller<u32, EcoGd, 16> =
        Controller::new(space.clone(), settings, ecogd).unwrap();

    // Every config applied, and the writes it must cause: lowering (or
    // staying) writes the minimum first, raising the maximum first.
    let mut expected = Vec::new();
    let mut max_khz = 2_400_000;
    let mut apply = |config: &Config, cpu: &mut CpufreqPolicy<Fake<'_>>| {
        let khz = space.value(config, 0).unwrap();
        let (lo, hi) = ((MIN, khz.to_string()), (MAX, khz.to_string()));
        expected.extend(if khz > max_khz { [hi, lo] } else { [lo, hi] });
        max_khz = khz;
        let read = generic_sbc::apply(&space, config, cpu).unwrap();
        assert_eq!(read, Some(khz), "the clock follows the pin");
    };
    apply(&ctl.config(), &mut board.cpu);

    let mut queue: RingQueue<u32, 64> = RingQueue::new();
    let mut batch = heapless::Vec::new();
    let (mut now, mut next) = (0u64, 0u64);
    let (mut busy_j, mut busy_us, mut charged_j) = (0.0, 0u64, 0.0);
    let mut windows = Vec::new();
    while ctl.served() < WINDOWS * u64::from(WINDOW) {
        while next <= now {
            queue.push(Instant::from_micros(next), 0).unwrap();
            next += GAP_US;
        }
        let energy_j = board.meter.energy_j(Instant::from_micros(now)).unwrap();
        let n = ctl
            .poll_batch(Instant::from_micros(now), energy_j, &mut queue, &mut batch)
            .unwrap();
        if n == 0 {
            // Sleep until the next arrival or the partial-batch deadline.
            now = ctl.poll_timeout().map_or(next, |t| t.as_micros().min(next));
            continue;
        }
        // The model runs at the clock the board reports.
        let khz = board.cpu.read_back().unwrap();
        let service = pi5::service_us(khz, n);
        let uw = power_step(&b, &mut board.meter, now, pi5::busy_ma(khz));
        busy_j += uw as f64 * 1e-6 * service as f64 * 1e-6;
        busy_us += service;
        now += service;
        let energy_j = board.meter.energy_j(Instant::from_micros(now)).unwrap();
        let done = ctl
            .handle_batch_done(Instant::from_micros(now), energy_j)
            .unwrap();
        power_step(&b, &mut board.meter, now, pi5::IDLE_MA);
        charged_j += done.energy_j * done.served as f64;
        windows.extend(done.window);
        if let Some(config) = done.apply {
            apply(&config, &mut board.cpu);
        }
    }

    // The meter's joules are the powers written, integrated.
    let idle_w = f64::from(pi5::BUS_MV * pi5::IDLE_MA) * 1e-6;
    let want_j = busy_j + idle_w * (now - busy_us) as f64 * 1e-6;
    let meter_j = board.meter.energy_j(Instant::from_micros(now)).unwrap();
    assert!(
        close(meter_j, want_j),
        "meter {meter_j} J, written {want_j} J"
    );
    assert!(
        close(charged_j, meter_j),
        "the controller charged {charged_j} J of {meter_j} J"
    );

    // The knob wrote exactly the pins, in the safe order, all accepted.
    assert!(kernel.log().iter().all(|w| w.accepted));
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(f, v)| (f.to_string(), v))
        .collect();
    assert_eq!(kernel.accepted(), expected);

    // EcoGD took the CPU off its maximum and settled below it.
    let cpu_khz = |w: &WindowReport| space.value(&w.config, 0).unwrap();
    assert_eq!(windows.len() as u64, WINDOWS);
    assert_eq!(
        cpu_khz(&windows[0]),
        2_400_000,
        "calibration at the maximum"
    );
    let tail = &windows[windows.len() * 3 / 4..];
    let below = tail.iter().filter(|w| cpu_khz(w) < 2_400_000).count();
    assert!(
        below * 4 >= tail.len() * 3,
        "only {below} of the last {} windows ran below 2.4 GHz: {:?}",
        tail.len(),
        tail.iter().map(cpu_khz).collect::<Vec<_>>()
    );
    let last = windows.last().unwrap();
    assert!(
        last.cost.mean < 1.0,
        "cheaper than the baseline: {}",
        last.cost.mean
    );

    // Dropping the board puts back what discovery found.
    let before = kernel.log().len();
    drop(board);
    assert_eq!(policy_file(&b, GOVERNOR), "ondemand");
    assert_eq!(policy_file(&b, MIN), "1500000");
    assert_eq!(policy_file(&b, MAX), "2400000");
    assert_eq!(kernel.log().len(), before + 3);
}

#[test]
fn the_port_needs_nothing_but_the_core_and_std() {
    let code = include_str!("../src/generic_sbc.rs")
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//"));
    for line in code {
        if let Some(path) = line.strip_prefix("use ") {
            let root = path.split("::").next().unwrap_or("");
            assert!(
                ["std", "core", "ecoedge_core"].contains(&root),
                "the port imports {line}"
            );
        }
        assert!(!line.contains("crate::"), "the port reaches into {line}");
    }
}
