//! The power sampler: trapezoid integration on virtual time against exact
//! integrals, and the sampling thread driven by a virtual clock.

use ecoedge_bsp_jetson::ina3221::{Address, Channel, Ina3221};
use ecoedge_bsp_jetson::sampler::{Clock, PowerSource};
use ecoedge_bsp_jetson::{
    EnergyIntegrator, Ina3221Rail, MonotonicClock, PowerMonitor, Sampler, SamplerConfig,
    SamplerError, Sysfs,
};
use ecoedge_core::board::EnergyMeter;
use ecoedge_core::time::Instant;
use ecoedge_tests::ina3221_sim::{Ina3221Sim, SharedSim};
use ecoedge_tests::sysfs::FakeBoard;
use std::f64::consts::TAU;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A board under inference: 5 W idle, 15 W while a batch runs (30 ms of every
/// 50 ms), with a 1 W ripple at 37 Hz on top.
fn power(t: f64) -> f64 {
    let busy = (t % 0.05) < 0.03;
    (if busy { 15.0 } else { 5.0 }) + (TAU * 37.0 * t).sin()
}

/// The exact integral of [`power`] from 0 to `t`.
fn exact_energy(t: f64) -> f64 {
    let cycles = (t / 0.05).floor();
    let rest = t - cycles * 0.05;
    let steps = cycles * (15.0 * 0.03 + 5.0 * 0.02)
        + if rest < 0.03 {
            15.0 * rest
        } else {
            15.0 * 0.03 + 5.0 * (rest - 0.03)
        };
    steps + (1.0 - (TAU * 37.0 * t).cos()) / (TAU * 37.0)
}

#[test]
fn integrates_a_known_waveform_within_one_percent() {
    // Samples every 1 ms with a deterministic jitter of up to +-0.3 ms, as a
    // thread woken by a timer produces them.
    let mut integrator = EnergyIntegrator::new(10_000);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for k in 0..=3_000u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let jitter = (seed % 601) as i64 - 300;
        let us = (k * 1_000).saturating_add_signed(if k == 0 { 0 } else { jitter });
        integrator.push(Instant::from_micros(us), power(us as f64 * 1e-6));
    }
    // Intervals that start and end between samples, as batches do.
    for (from_us, to_us) in [
        (12_345, 87_654),
        (100_250, 1_100_750),
        (1_500_001, 2_999_999),
        (0, 3_000_000),
    ] {
        let got = integrator
            .energy_between(Instant::from_micros(from_us), Instant::from_micros(to_us))
            .unwrap();
        let want = exact_energy(to_us as f64 * 1e-6) - exact_energy(from_us as f64 * 1e-6);
        let err = (got - want).abs() / want;
        assert!(
            err < 0.01,
            "{from_us}..{to_us} us: {got} J vs {want} J ({:.3} %)",
            err * 100.0
        );
    }
}

/// A clock the test moves by hand.
#[derive(Debug, Clone, Default)]
struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    fn advance(&self, us: u64) {
        self.0.fetch_add(us, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.0.load(Ordering::SeqCst))
    }
}

/// Power as a function of the virtual clock; counts its reads; fails after
/// `fail_after` reads.
struct Waveform {
    clock: VirtualClock,
    reads: Arc<AtomicUsize>,
    fail_after: usize,
    interval: Option<Duration>,
}

impl PowerSource for Waveform {
    type Error = String;
    fn power_w(&mut self) -> Result<f64, String> {
        if self.reads.fetch_add(1, Ordering::SeqCst) >= self.fail_after {
            return Err("i2c bus 7 timed out".into());
        }
        Ok(2.0 + self.clock.now().as_secs_f64())
    }
    fn update_interval(&self) -> Option<Duration> {
        self.interval
    }
}

/// Waits (real time, bounded) until `cond` holds.
fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..5_000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("condition not reached in 5 s");
}

#[test]
fn the_thread_samples_on_the_shared_clock_and_stops_on_drop() {
    let clock = VirtualClock::default();
    let reads = Arc::new(AtomicUsize::new(0));
    let source = Waveform {
        clock: clock.clone(),
        reads: reads.clone(),
        fail_after: usize::MAX,
        interval: None,
    };
    let mut sampler = Sampler::start(source, clock.clone(), SamplerConfig::default()).unwrap();
    assert_eq!(sampler.period(), Duration::from_millis(1));
    // Power 2 W + t: step the virtual clock 1 ms at a time for 100 ms.
    for k in 1..=100u64 {
        clock.advance(1_000);
        wait_for(|| sampler.stats().samples > k);
    }
    let e = sampler.energy_j(Instant::from_micros(100_000)).unwrap();
    let want = 2.0 * 0.1 + 0.1 * 0.1 / 2.0;
    assert!((e - want).abs() / want < 1e-3, "{e} vs {want}");
    // Between samples, interpolated; never decreasing.
    let mid = sampler.energy_j(Instant::from_micros(50_500)).unwrap();
    assert_eq!(mid, e, "energy_j never goes back");
    let between = sampler
        .energy_between(Instant::from_micros(50_500), Instant::from_micros(100_000))
        .unwrap();
    assert!(
        (between - (2.0 * 0.0495 + (0.01 - 0.050_5f64.powi(2)) / 2.0)).abs() < 1e-6,
        "{between}"
    );
    drop(sampler);
    let after = reads.load(Ordering::SeqCst);
    clock.advance(10_000);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(reads.load(Ordering::SeqCst), after, "the thread is gone");
}

#[test]
fn a_dead_or_dying_sensor_is_a_clear_error() {
    let clock = VirtualClock::default();
    let dead = Waveform {
        clock: clock.clone(),
        reads: Arc::default(),
        fail_after: 0,
        interval: None,
    };
    let err = Sampler::start(dead, clock.clone(), SamplerConfig::default()).unwrap_err();
    assert_eq!(err, SamplerError::Sensor("i2c bus 7 timed out".into()));

    let dying = Waveform {
        clock: clock.clone(),
        reads: Arc::default(),
        fail_after: 1,
        interval: None,
    };
    let mut sampler = Sampler::start(dying, clock.clone(), SamplerConfig::default()).unwrap();
    clock.advance(200_000);
    wait_for(|| sampler.stats().errors > 0);
    let err = sampler.energy_j(clock.now()).unwrap_err();
    assert!(err.to_string().contains("i2c bus 7 timed out"), "{err}");
}

#[test]
fn an_ina3221_channel_over_i2c_meters_the_energy_its_registers_imply() {
    // Module input at 5.08 V, 6 mV over 5 milliohm (1.2 A): 6.096 W; then
    // 5.0 V, 10 mV (2 A): 10 W. Both exact in the chip's LSBs.
    let (p_a, p_b) = (5.08 * 1.2, 5.0 * 2.0);
    let sim = SharedSim::new(Ina3221Sim::new(0x40));
    sim.with(|s| s.set_inputs(0, 0.006, 5.08));
    let ina = Ina3221::new(sim.clone(), Address::Gnd, [5_000; 3]).unwrap();
    let rail = Ina3221Rail::continuous(ina, Channel::Ch1, |_| panic!("converting")).unwrap();
    let clock = VirtualClock::default();
    let mut sampler = Sampler::start(rail, clock.clone(), SamplerConfig::default()).unwrap();
    // The chip's power-on cycle (3 x 2.2 ms), not the default 1 ms.
    let p_us = 6_600;
    assert_eq!(sampler.period(), Duration::from_micros(p_us));
    // Samples 0..=10 read A, 11..=20 read B: the inputs change while the
    // sampling thread waits for the clock.
    for k in 1..=20u64 {
        if k == 11 {
            sim.with(|s| s.set_inputs(0, 0.010, 5.0));
        }
        clock.advance(p_us);
        wait_for(|| sampler.stats().samples > k);
    }
    let p = p_us as f64 * 1e-6;
    let at = |periods: f64| Instant::from_micros((periods * p_us as f64) as u64);
    let e = sampler.energy_j(at(5.5)).unwrap();
    assert!((e - 5.5 * p * p_a).abs() < 1e-9, "{e}");
    // Ten periods at A, the step as one trapezoid, nine at B.
    let want = p * (10.0 * p_a + (p_a + p_b) / 2.0 + 9.0 * p_b);
    let e = sampler.energy_j(at(20.0)).unwrap();
    assert!((e - want).abs() < 1e-9, "{e} J vs {want} J");
    assert_eq!(sampler.stats().errors, 0);
    drop(sampler);
    assert!(
        sim.with(|s| s.config_writes.is_empty()),
        "a converting chip is not reconfigured"
    );
}

#[test]
fn never_samples_faster_than_the_sensor_updates() {
    let clock = VirtualClock::default();
    let source = Waveform {
        clock: clock.clone(),
        reads: Arc::default(),
        fail_after: usize::MAX,
        interval: Some(Duration::from_millis(6)),
    };
    let sampler = Sampler::start(source, clock, SamplerConfig::default()).unwrap();
    assert_eq!(sampler.period(), Duration::from_millis(6));
}

#[test]
fn samples_a_real_sysfs_rail_on_the_wall_clock() {
    let b = FakeBoard::xavier_nx_jp4();
    let source = PowerMonitor::discover(&Sysfs::new(b.root()))
        .unwrap()
        .module_input_power()
        .unwrap();
    let clock = MonotonicClock::new();
    let mut sampler = Sampler::start(source, clock, SamplerConfig::default()).unwrap();
    wait_for(|| sampler.stats().samples >= 20);
    let now = clock.now();
    let e = sampler.energy_j(now).unwrap();
    // 4.846 W held constant since the first sample, which came right at start.
    let want = 4.846 * now.as_secs_f64();
    assert!(
        (e - want).abs() <= 4.846 * 0.002 + want * 0.01,
        "{e} J vs {want} J"
    );
    assert_eq!(sampler.stats().errors, 0);
}
