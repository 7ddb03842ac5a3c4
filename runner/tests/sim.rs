//! The simulator board: conservation of requests, refusal under overload,
//! determinism, the batch rules, governors, and the load-dependence of the best
//! config (a calibration target of SIMULATOR.md that needs the whole simulator).

use ecoedge_core::cost::{Alpha, Baseline};
use ecoedge_core::optimizer::{Fixed, by_name};
use ecoedge_core::space::Knob;
use ecoedge_core::time::Duration;
use ecoedge_runner::metrics::{PhaseStats, Unserved};
use ecoedge_runner::record::Outcome;
use ecoedge_runner::sim::model::{DnnKind, XavierNx};
use ecoedge_runner::sim::oracle::{best_per_window, best_static, reference_baseline};
use ecoedge_runner::sim::{SimSetup, Stop, simulate, space_of};
use ecoedge_runner::workload::Workload;

fn resnet() -> XavierNx {
    XavierNx::new(DnnKind::Resnet50)
}

fn setup(workload: &str, stop: Stop) -> SimSetup {
    let mut s = SimSetup::new(Workload::parse(workload).unwrap(), 1);
    s.stop = stop;
    s
}

fn fixed(model: &XavierNx, idx: [usize; 3], s: &SimSetup) -> Outcome {
    let space = space_of(model, s).unwrap();
    simulate(model, Fixed::new(space.config(&idx).unwrap()), s).unwrap()
}

fn conserved(out: &Outcome) {
    let pending = out.arrived - out.refused - out.served.len() as u64;
    // At most a partial batch and a full queue can be left.
    assert!(pending <= 16 + 1023, "pending {pending}");
    for s in &out.served {
        assert!(s.done > s.arrival);
    }
}

#[test]
fn every_request_is_served_refused_or_pending() {
    let m = resnet();
    let out = fixed(&m, [24, 14, 3], &setup("poisson:20", Stop::Windows(20)));
    conserved(&out);
    assert_eq!(out.refused, 0);
    assert_eq!(out.windows.len(), 20);
    // Batch 4 at max clocks takes 12 + 2 + 3 + 38 + 3 + 5.3 ms ~ 63 ms.
    let min_latency = out
        .served
        .iter()
        .map(|s| s.latency_s())
        .fold(f64::MAX, f64::min);
    assert!((0.055..0.07).contains(&min_latency), "{min_latency}");
}

#[test]
fn overload_fills_the_queue_and_refusals_are_counted() {
    let m = resnet();
    // Lowest clocks, batch 1: ~330 ms per request against one every 10 ms.
    let out = fixed(
        &m,
        [0, 0, 0],
        &setup("fixed:10ms", Stop::Duration(Duration::from_secs(60))),
    );
    conserved(&out);
    assert!(out.refused > 4_000, "refused {}", out.refused);
    assert_eq!(out.arrived, 6_000);
    // After the last arrival the queue drains; only a partial batch could stay.
    assert_eq!(out.arrived, out.refused + out.served.len() as u64);
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let m = resnet();
    let run = |seed: u64| {
        let mut s = setup("trace:twitter", Stop::Duration(Duration::from_secs(600)));
        let space = space_of(&m, &s).unwrap();
        s.seed = seed;
        let out = simulate(&m, by_name("ecogd", &space, seed).unwrap(), &s).unwrap();
        (
            out.served.len(),
            out.windows
                .iter()
                .map(|w| (w.config, w.energy_j))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn max_wait_bounds_latency_at_low_load() {
    let m = resnet();
    let mut s = setup("fixed:500ms", Stop::Windows(3));
    s.settings.window.requests = 32;
    s.settings.window.warmup = 0;
    let full = fixed(&m, [24, 14, 15], &s);
    s.settings.max_wait = Some(Duration::from_millis(100));
    let waited = fixed(&m, [24, 14, 15], &s);
    let worst = |o: &Outcome| o.served.iter().map(|r| r.latency_s()).fold(0.0, f64::max);
    // Full batches of 16 at one request per 500 ms wait 7.5 s for the first.
    assert!(worst(&full) > 7.5);
    // With a 100 ms maximum wait each request leaves alone after 100 ms.
    assert!(worst(&waited) < 0.2, "{}", worst(&waited));
}

#[test]
fn dvfs_governors_lower_idle_power_at_light_load() {
    let m = resnet();
    let s = setup("fixed:90ms", Stop::Windows(10));
    let space = space_of(&m, &s).unwrap();
    let dvfs = simulate(&m, by_name("dvfs", &space, 1).unwrap(), &s).unwrap();
    let pinned = fixed(&m, [24, 14, 7], &s);
    let b = Baseline::new(1.0, 1.0).unwrap();
    let after = |o: &Outcome| {
        PhaseStats::of(
            o.served.iter().filter(|r| r.window >= 2),
            &b,
            Alpha::default(),
            Unserved::default(),
        )
    };
    let (d, p) = (after(&dvfs), after(&pinned));
    assert!(
        d.mean_energy_j < 0.9 * p.mean_energy_j,
        "dvfs {} J vs pinned {} J",
        d.mean_energy_j,
        p.mean_energy_j
    );
    assert!(
        d.mean_latency_s > p.mean_latency_s,
        "governors ramp up after load arrives"
    );
    assert_eq!(
        dvfs.space.knob_value(&dvfs.final_config, Knob::Batch),
        Some(8)
    );
}

/// `dvfs:16` starts from the calibration config (every knob at its maximum,
/// batch 16): the config does not change when calibration ends, but the clocks
/// must still go to the governors.
#[test]
fn dvfs_at_the_calibration_batch_still_hands_clocks_to_the_governors() {
    let m = resnet();
    let s = setup("fixed:90ms", Stop::Windows(6));
    let space = space_of(&m, &s).unwrap();
    let dvfs = simulate(&m, by_name("dvfs:16", &space, 1).unwrap(), &s).unwrap();
    let pinned = fixed(&m, [24, 14, 15], &s);
    let b = Baseline::new(1.0, 1.0).unwrap();
    let after = |o: &Outcome| {
        PhaseStats::of(
            o.served.iter().filter(|r| r.window >= 2),
            &b,
            Alpha::default(),
            Unserved::default(),
        )
    };
    let (d, p) = (after(&dvfs), after(&pinned));
    assert!(
        d.mean_energy_j < 0.9 * p.mean_energy_j,
        "dvfs:16 {} J vs pinned {} J",
        d.mean_energy_j,
        p.mean_energy_j
    );
    // The run ends as a batch completes, when the governors have ramped the
    // clocks up for it: the final config is theirs, often the maximum.
    assert_eq!(space.batch_size(&dvfs.final_config), 16);
}

#[test]
fn frequency_transitions_are_charged() {
    let m = resnet();
    let mut s = setup("fixed:50ms", Stop::Windows(4));
    // A given baseline skips calibration: the fixed config is set at time 0.
    s.settings.baseline = Some(Baseline::new(1.0, 1.0).unwrap());
    s.transition = Duration::ZERO;
    let instant = fixed(&m, [0, 0, 0], &s);
    s.transition = Duration::from_millis(200);
    let slow = fixed(&m, [0, 0, 0], &s);
    // With a 200 ms transition the first batches still run at the max clocks.
    assert!(slow.served[0].latency_s() < instant.served[0].latency_s());
}

#[test]
fn the_best_config_moves_with_load() {
    let m = resnet();
    let best = |w: &str| {
        let s = setup(w, Stop::Windows(20));
        let b = reference_baseline(&m, &s).unwrap();
        best_static(&m, &s, &b).unwrap().config
    };
    let (c50, c90) = (best("fixed:50ms"), best("fixed:90ms"));
    let clocks = |c: ecoedge_core::space::Config| c.index(0) + c.index(1);
    assert!(clocks(c90) < clocks(c50), "50 ms: {c50:?}, 90 ms: {c90:?}");
}

#[test]
fn the_oracle_beats_every_knob_at_max() {
    let m = resnet();
    let s = setup("bursty:10@500ms", Stop::Windows(20));
    let b = reference_baseline(&m, &s).unwrap();
    let best = best_static(&m, &s, &b).unwrap();
    assert!(best.mean_cost < 0.9, "{best:?}");
    let max = fixed(&m, [24, 14, 15], &s.noiseless());
    let max_cost = PhaseStats::of(&max.served, &b, Alpha::default(), Unserved::default()).mean_cost;
    assert!(
        (max_cost - 1.0).abs() < 0.02,
        "max config costs {max_cost} against its own baseline"
    );
}

/// The static oracle prices every config by replay and simulates only the
/// cheapest: on a trace its answer must be the best of an exhaustive
/// simulation of every config (over a space small enough to simulate whole).
#[test]
fn the_static_oracle_finds_the_best_of_an_exhaustive_simulation() {
    let m = resnet();
    let mut s = setup("trace:azure", Stop::Duration(Duration::from_secs(900)));
    s.knobs = "cpu,batch".parse().unwrap();
    let b = reference_baseline(&m, &s).unwrap();
    let best = best_static(&m, &s, &b).unwrap();
    let space = space_of(&m, &s).unwrap();
    let quiet = SimSetup {
        settings: ecoedge_core::controller::Settings {
            baseline: Some(b),
            ..s.settings
        },
        ..s.noiseless()
    };
    let mut all: Vec<(bool, f64, ecoedge_core::space::Config)> = space
        .configs()
        .map(|c| {
            let out = simulate(&m, Fixed::new(c), &quiet).unwrap();
            let cost = PhaseStats::of(&out.served, &b, Alpha::default(), Unserved::default());
            (out.refused > 0, cost.mean_cost, c)
        })
        .collect();
    assert_eq!(all.len(), 25 * 16);
    all.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
    assert_eq!((best.config, best.mean_cost), (all[0].2, all[0].1));
}

/// The per-window oracle prices configs by the core's replay with the model's
/// exact figures: on a periodic load, where every window is alike, it must
/// agree with the static oracle's simulated cost (the two code paths check
/// each other); on a trace, whose load changes, it must be lower (choosing per
/// window is worth something), and every window must have its answer.
#[test]
fn the_per_window_oracle_agrees_with_the_simulator_and_bounds_adaptive_policies() {
    let m = resnet();
    for w in ["fixed:90ms", "bursty:10@500ms"] {
        let s = setup(w, Stop::Windows(10));
        let b = reference_baseline(&m, &s).unwrap();
        let fixed = best_static(&m, &s, &b).unwrap();
        let per_window = best_per_window(&m, &s, &b).unwrap();
        assert_eq!(per_window.windows.len(), 10, "{w}");
        let gap = per_window.mean_cost / fixed.mean_cost - 1.0;
        assert!(gap.abs() < 0.02, "{w}: {per_window:?} against {fixed:?}");
    }
    let s = setup("trace:twitter", Stop::Duration(Duration::from_secs(1800)));
    let b = reference_baseline(&m, &s).unwrap();
    let fixed = best_static(&m, &s, &b).unwrap();
    let per_window = best_per_window(&m, &s, &b).unwrap();
    assert!(
        per_window.mean_cost < 0.95 * fixed.mean_cost,
        "{} against {}",
        per_window.mean_cost,
        fixed.mean_cost
    );
    let configs: std::collections::BTreeSet<_> =
        per_window.windows.iter().map(|w| w.config).collect();
    assert!(configs.len() > 1, "one config for every window of a trace");
    let arrivals: usize = per_window.windows.iter().map(|w| w.requests).sum();
    let out = fixed_at(&m, fixed.config, &s);
    assert!(arrivals as u64 <= out.arrived && arrivals as u64 > out.arrived * 9 / 10);
}

fn fixed_at(model: &XavierNx, config: ecoedge_core::space::Config, s: &SimSetup) -> Outcome {
    simulate(model, Fixed::new(config), &s.noiseless()).unwrap()
}

#[test]
fn ecogd_searches_the_memory_clock_as_a_fourth_knob() {
    let m = XavierNx::new(DnnKind::BertTiny);
    let mut s = setup("fixed:90ms", Stop::Windows(150));
    s.knobs = "cpu,gpu,batch,emc".parse().unwrap();
    let space = space_of(&m, &s).unwrap();
    let knobs: Vec<Knob> = space.dims().iter().map(|d| d.knob()).collect();
    assert_eq!(knobs, [Knob::Cpu, Knob::Gpu, Knob::Memory, Knob::Batch]);
    let four = simulate(&m, by_name("ecogd", &space, 1).unwrap(), &s).unwrap();
    conserved(&four);
    let emc = space.position(Knob::Memory).unwrap();
    let levels: std::collections::BTreeSet<usize> =
        four.windows.iter().map(|w| w.config.index(emc)).collect();
    assert!(levels.len() > 2, "EcoGD tried memory levels {levels:?}");
    let top = space.dims()[emc].max_index();
    assert!(
        four.final_config.index(emc) < top,
        "{:?}",
        four.final_config
    );
    // Light load: the board idles most of the time, so a lower memory clock
    // pays; with the memory clock as a knob the run costs less than without.
    let mut three = s.clone();
    three.knobs = Default::default();
    let space3 = space_of(&m, &three).unwrap();
    let three = simulate(&m, by_name("ecogd", &space3, 1).unwrap(), &three).unwrap();
    let b = reference_baseline(&m, &s).unwrap();
    let cost = |o: &Outcome| {
        PhaseStats::of(
            o.served.iter().filter(|r| r.window >= 100),
            &b,
            Alpha::default(),
            Unserved::default(),
        )
        .mean_cost
    };
    assert!(
        cost(&four) < cost(&three),
        "{} vs {}",
        cost(&four),
        cost(&three)
    );
}

/// The sensitivity variant: batches after a clock change run slower, and
/// only after a change (a fixed config changes its clocks once, at start).
#[test]
fn a_clock_warmup_slows_the_batches_after_each_clock_change_only() {
    let model = resnet();
    let mean_latency = |optimizer: &str, warmup: &str| {
        let mut s = setup("fixed:90ms", Stop::Windows(30));
        s.clock_warmup = warmup.parse().unwrap();
        let space = space_of(&model, &s).unwrap();
        let out = simulate(&model, by_name(optimizer, &space, 1).unwrap(), &s).unwrap();
        conserved(&out);
        out.served.iter().map(|r| r.latency_s()).sum::<f64>() / out.served.len() as f64
    };
    let (random, random_warm) = (
        mean_latency("random", "0@0"),
        mean_latency("random", "3@100"),
    );
    assert!(
        random_warm > 1.1 * random,
        "clocks change every window: {random} s, then {random_warm} s"
    );
    let (fixed, fixed_warm) = (
        mean_latency("fixed:max", "0@0"),
        mean_latency("fixed:max", "3@100"),
    );
    assert!(
        fixed_warm < 1.01 * fixed,
        "one change, at start: {fixed} s, then {fixed_warm} s"
    );
    for bad in ["3", "x@50", "3@-1", "3@5000"] {
        assert!(
            bad.parse::<ecoedge_runner::sim::ClockWarmup>().is_err(),
            "{bad}"
        );
    }
}
