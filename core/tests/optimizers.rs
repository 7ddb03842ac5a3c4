//! Optimizers on synthetic cost landscapes over the Xavier NX knob grid
//! (25 CPU x 15 GPU x 16 batch levels), driven window by window with hand-made
//! reports. Seeds are fixed, so every run is reproducible.

use ecoedge_core::load::Service;
use ecoedge_core::optimizer::{
    BaseOptimizer, Bayes, BayesSettings, Dvfs, EcoGd, EcoGdSettings, Grid, Linear, Mab, MabJoint,
    MabSettings, NAMES, NameError, Optimizer, RandomSearch, Repeat, by_name,
};
use ecoedge_core::space::{Config, ConfigError, Dimension, Knob, Space};
use ecoedge_core::window::WindowReport;

const CPU_KHZ: [u32; 25] = [
    115_200, 192_000, 268_800, 345_600, 422_400, 499_200, 576_000, 652_800, 729_600, 806_400,
    883_200, 960_000, 1_036_800, 1_113_600, 1_190_400, 1_267_200, 1_344_000, 1_420_800, 1_497_600,
    1_574_400, 1_651_200, 1_728_000, 1_804_800, 1_881_600, 1_907_200,
];
const GPU_HZ: [u32; 15] = [
    114_750_000,
    204_000_000,
    306_000_000,
    408_000_000,
    510_000_000,
    599_250_000,
    701_250_000,
    752_250_000,
    803_250_000,
    854_250_000,
    905_250_000,
    956_250_000,
    1_007_250_000,
    1_058_250_000,
    1_109_250_000,
];
const CPU: usize = 0;
const GPU: usize = 1;
const BATCH: usize = 2;

fn xavier() -> Space {
    Space::new(&[
        Dimension::new(Knob::Cpu, &CPU_KHZ).unwrap(),
        Dimension::new(Knob::Gpu, &GPU_HZ).unwrap(),
        Dimension::batch(16).unwrap(),
    ])
    .unwrap()
}

fn cfg(cpu: usize, gpu: usize, batch_index: usize) -> Config {
    Config::default()
        .with(CPU, cpu)
        .with(GPU, gpu)
        .with(BATCH, batch_index)
}

/// One measured window: the config the optimizer asked for and what it cost.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    config: Config,
    cost: f64,
}

/// Runs `windows` windows: the optimizer's config is measured with `cost(window,
/// config)` and the report handed back, as the controller does: a window whose
/// cost is above the optimizer's ceiling is abandoned at about the ceiling. Window
/// indices start at 1 (window 0 is the calibration).
fn drive<O: Optimizer>(
    opt: &mut O,
    space: &Space,
    windows: u32,
    mut cost: impl FnMut(u32, &Config) -> f64,
    mut after: impl FnMut(u32, &O),
) -> Vec<Window> {
    let mut config = opt.start(space);
    let mut out = Vec::new();
    for w in 1..=windows {
        assert!(
            space.within_limits(&config),
            "{} left the limits: {config:?}",
            opt.name()
        );
        let mut c = cost(w, &config);
        let ceiling = opt.ceiling().filter(|&ceiling| c > ceiling);
        c = ceiling.unwrap_or(c);
        out.push(Window { config, cost: c });
        let mut r = WindowReport::measured(w, config, c, 20.0);
        r.abandoned = ceiling.is_some();
        config = opt.step(space, &r);
        after(w, opt);
    }
    out
}

/// A smooth bowl, 1.0-ish at the maximum config, minimum `floor` at `opt`.
fn bowl(opt: Config, floor: f64) -> impl Fn(&Config) -> f64 {
    move |c: &Config| {
        let spans = [24.0, 14.0, 15.0];
        let mut sum = 0.0;
        for (dim, span) in spans.iter().enumerate() {
            let d = (c.index(dim) as f64 - opt.index(dim) as f64) / span;
            sum += d * d;
        }
        floor + sum
    }
}

/// Multiplicative noise `1 + amplitude * u`, u uniform in [-1, 1], seeded.
struct Noise(u64);

impl Noise {
    fn factor(&mut self, amplitude: f64) -> f64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        1.0 + amplitude * (2.0 * u - 1.0)
    }
}

/// The interior optimum of the bowl tests and its cost.
const BOWL_OPT: (usize, usize, usize) = (16, 9, 10);
const BOWL_FLOOR: f64 = 0.6;

fn first_within(centers: &[f64], best: f64, tol: f64) -> Option<usize> {
    centers
        .iter()
        .position(|&c| c <= best * (1.0 + tol))
        .map(|i| i + 1)
}

#[test]
fn ecogd_descends_a_smooth_bowl_from_the_max_config() {
    let space = xavier();
    let (c, g, b) = BOWL_OPT;
    let f = bowl(cfg(c, g, b), BOWL_FLOOR);
    let mut gd = EcoGd::new(EcoGdSettings::default(), 1);
    let mut centers = Vec::new();
    let run = drive(
        &mut gd,
        &space,
        200,
        |_, c| f(c),
        |_, o| centers.push(f(&o.center())),
    );
    assert_eq!(run[0].config, space.max_config(), "starts at the maximum");
    let first = first_within(&centers, BOWL_FLOOR, 0.02);
    eprintln!("bowl: within 2% at window {first:?}, jumps {}", gd.jumps());
    assert!(
        first.is_some_and(|w| w <= 60),
        "within 2% at window {first:?}"
    );
    // It stays there: loop-escape jumps come back.
    assert!(centers[100..].iter().all(|&c| c <= BOWL_FLOOR * 1.02));
    assert!(gd.jumps() > 0, "staying put at the optimum counts loops");
}

#[test]
fn ecogd_descends_a_noisy_bowl() {
    let space = xavier();
    let (c, g, b) = BOWL_OPT;
    let f = bowl(cfg(c, g, b), BOWL_FLOOR);
    for seed in 1..=3 {
        let mut noise = Noise(seed);
        let mut gd = EcoGd::new(EcoGdSettings::default(), seed);
        let mut centers = Vec::new();
        drive(
            &mut gd,
            &space,
            300,
            |_, c| f(c) * noise.factor(0.05),
            |_, o| centers.push(f(&o.center())),
        );
        let first = first_within(&centers, BOWL_FLOOR, 0.05);
        let tail = centers[200..].iter().sum::<f64>() / 100.0;
        eprintln!("noisy bowl seed {seed}: within 5% at {first:?}, tail mean {tail:.4}");
        assert!(
            first.is_some_and(|w| w <= 100),
            "seed {seed}: within 5% at {first:?}"
        );
        assert!(tail <= BOWL_FLOOR * 1.05, "seed {seed}: tail mean {tail}");
    }
}

/// The optimum moves at window `MOVE` (the load dropped: lower clocks, smaller
/// batches); the arrival rate the reports carry drops with it.
fn moving_run(settings: EcoGdSettings) -> Option<usize> {
    const MOVE: u32 = 100;
    let space = xavier();
    let before = bowl(cfg(16, 9, 10), BOWL_FLOOR);
    let after = bowl(cfg(12, 6, 7), 0.5);
    let cost = |w: u32, c: &Config| if w < MOVE { before(c) } else { after(c) };
    let mut gd = EcoGd::new(settings, 3);
    let mut config = gd.start(&space);
    let mut centers = Vec::new();
    for w in 1..=250u32 {
        let rate = if w < MOVE { 20.0 } else { 11.0 };
        config = gd.step(
            &space,
            &WindowReport::measured(w, config, cost(w, &config), rate),
        );
        if w >= MOVE {
            centers.push(after(&gd.center()));
        }
    }
    first_within(&centers, 0.5, 0.05)
}

#[test]
fn ecogd_follows_a_moving_optimum() {
    let plain = moving_run(EcoGdSettings::default());
    let detect = moving_run(EcoGdSettings {
        rate_change: Some(0.3),
        ..EcoGdSettings::default()
    });
    eprintln!("moving optimum: within 5% after {plain:?} windows, with rate detection {detect:?}");
    assert!(plain.is_some_and(|w| w <= 60), "{plain:?}");
    assert!(detect.is_some_and(|w| w <= 60), "{detect:?}");
}

/// A bowl around `global` with a pit at `pit`: cheaper than all its neighbours and
/// corners, dearer than the global optimum.
fn pitted(global: Config, pit: Config) -> impl Fn(&Config) -> f64 {
    let base = bowl(global, 0.5);
    move |c: &Config| if *c == pit { base(c) - 0.1 } else { base(c) }
}

#[test]
fn pattern_moves_descend_the_bowl_in_fewer_windows() {
    let space = xavier();
    let (c, g, b) = BOWL_OPT;
    let f = bowl(cfg(c, g, b), BOWL_FLOOR);
    let reach = |pattern: bool| {
        let mut gd = EcoGd::new(
            EcoGdSettings {
                pattern,
                ..EcoGdSettings::default()
            },
            1,
        );
        let mut centers = Vec::new();
        drive(
            &mut gd,
            &space,
            200,
            |_, c| f(c),
            |_, o| centers.push(f(&o.center())),
        );
        first_within(&centers, BOWL_FLOOR, 0.02).expect("reaches the floor")
    };
    let (with, without) = (reach(true), reach(false));
    eprintln!("bowl within 2%: window {with} with pattern moves, {without} without");
    assert!(with * 3 <= without * 2, "{with} vs {without}");
}

/// The original loop escape moves two steps away and descends from there, so
/// it leaves a pit whose rim is higher than the pit itself; probing jumps
/// (the default) move only where the probe is cheaper at once, so they stay
/// in such a pit: the price of not paying for every vain escape on a
/// stationary load.
#[test]
fn ecogd_escapes_a_local_minimum_by_jumping() {
    let space = xavier();
    let global = cfg(8, 5, 6);
    let pit = cfg(18, 10, 12);
    let f = pitted(global, pit);
    assert!(f(&pit) > f(&global));
    for dim in 0..3 {
        for delta in [-1, 1] {
            assert!(
                f(&space.step(&pit, dim, delta).unwrap()) > f(&pit),
                "pit is a local minimum"
            );
        }
    }
    let start = EcoGdSettings {
        start: Some(pit),
        probe_jumps: false,
        ..EcoGdSettings::default()
    };
    // Without jumps (max_loops unreachable) it stays in the pit.
    let mut stuck = EcoGd::new(
        EcoGdSettings {
            max_loops: u32::MAX,
            ..start
        },
        5,
    );
    let mut near_pit = 0;
    drive(
        &mut stuck,
        &space,
        300,
        |_, c| f(c),
        |w, o| {
            near_pit += usize::from(w > 200 && o.center().distance(&pit) <= 2);
        },
    );
    assert_eq!(near_pit, 100, "it circles the pit");
    assert_eq!(stuck.jumps(), 0);
    for seed in [5, 6, 7] {
        let mut gd = EcoGd::new(start, seed);
        // Jumps taken while circling the pit (the center within 2 steps of it).
        let (mut jumps_at_pit, mut jumps, mut previous) = (0, 0, start.start.unwrap());
        drive(
            &mut gd,
            &space,
            400,
            |_, c| f(c),
            |_, o| {
                if o.jumps() > jumps && previous.distance(&pit) <= 2 {
                    jumps_at_pit += 1;
                }
                jumps = o.jumps();
                previous = o.center();
            },
        );
        eprintln!(
            "pit seed {seed}: jumps {}, final {:?} cost {:.4}",
            gd.jumps(),
            gd.center(),
            f(&gd.center())
        );
        assert!(jumps_at_pit >= 1, "seed {seed}: the escape is a loop jump");
        assert!(
            f(&gd.center()) <= f(&global) * 1.02,
            "seed {seed}: final cost {}",
            f(&gd.center())
        );
        let mut probing = EcoGd::new(
            EcoGdSettings {
                probe_jumps: true,
                ..start
            },
            seed,
        );
        drive(&mut probing, &space, 400, |_, c| f(c), |_, _| {});
        assert!(probing.jumps() > 10, "seed {seed}");
        assert!(
            probing.center().distance(&pit) <= 2,
            "seed {seed}: {:?}",
            probing.center()
        );
    }
}

#[test]
fn ecogd_jump_learn_takes_longer_strides() {
    let space = xavier();
    let (c, g, b) = BOWL_OPT;
    let f = bowl(cfg(c, g, b), BOWL_FLOOR);
    let mut gd = EcoGd::new(
        EcoGdSettings {
            jump_learn: Some(100.0),
            ..EcoGdSettings::default()
        },
        1,
    );
    let run = drive(&mut gd, &space, 30, |_, c| f(c), |_, _| {});
    let max_stride = run
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0].config, w[1].config);
            a.index(CPU)
                .abs_diff(b.index(CPU))
                .max(a.index(GPU).abs_diff(b.index(GPU)))
        })
        .max()
        .unwrap();
    assert!((2..=5).contains(&max_stride), "stride {max_stride}");
}

#[test]
fn ecogd_respects_lower_limits() {
    let cpu = Dimension::new(Knob::Cpu, &CPU_KHZ)
        .unwrap()
        .with_lower_limit(4)
        .unwrap();
    let gpu = Dimension::new(Knob::Gpu, &GPU_HZ)
        .unwrap()
        .with_lower_limit(4)
        .unwrap();
    let batch = Dimension::batch(16).unwrap().with_lower_limit(3).unwrap();
    let space = Space::new(&[cpu, gpu, batch]).unwrap();
    // The unconstrained optimum is below the limits: EcoGD ends at the corner of them.
    let f = bowl(cfg(0, 0, 0), 0.3);
    let mut gd = EcoGd::new(EcoGdSettings::default(), 2);
    let mut at_min = 0;
    drive(
        &mut gd,
        &space,
        300,
        |_, c| f(c),
        |w, o| {
            at_min += usize::from(w > 200 && o.center() == space.min_config());
        },
    );
    // Between loop-escape jumps (every 11 windows there) it sits at the limits.
    assert!(
        at_min >= 50,
        "{at_min} of the last 100 centers at the limits"
    );
}

#[test]
fn grid_measures_every_other_level_then_keeps_the_best() {
    let space = xavier();
    let f = bowl(cfg(16, 9, 10), 0.6);
    let mut grid = Grid::new();
    assert_eq!(Grid::grid_size(&space), 12 * 7 * 8);
    let run = drive(&mut grid, &space, 672 + 50, |_, c| f(c), |_, _| {});
    let explored: std::collections::BTreeSet<Config> =
        run[..672].iter().map(|w| w.config).collect();
    assert_eq!(explored.len(), 672, "each grid config once");
    assert!(explored.iter().all(|c| (0..3).all(|d| c.index(d) % 2 == 1)));
    let best = *explored
        .iter()
        .min_by(|a, b| f(a).total_cmp(&f(b)))
        .unwrap();
    assert_eq!(best, cfg(15, 9, 9));
    assert!(
        run[672..].iter().all(|w| w.config == best),
        "then sticks at the best"
    );
    assert!(grid.done());
}

#[test]
fn linear_sweeps_batch_then_cpu_then_gpu_from_the_best() {
    let space = xavier();
    let f = bowl(cfg(16, 9, 10), 0.6);
    for repeat in [Repeat::OnePass, Repeat::Forever] {
        let mut linear = Linear::new(repeat);
        // Three lines: the base, then every level below it (the base is the
        // top level of every knob at first).
        let lines: usize = 16 + 25 + 15;
        let run = drive(
            &mut linear,
            &space,
            lines as u32 + 40,
            |_, c| f(c),
            |_, _| {},
        );
        let line = |from: usize, len: usize| &run[from..from + len];
        // Batch: CPU and GPU at maximum, from batch 16 down.
        for (i, w) in line(0, 16).iter().enumerate() {
            assert_eq!(w.config, cfg(24, 14, 15 - i));
        }
        // CPU at the best batch of that line, from the base down.
        for (i, w) in line(16, 25).iter().enumerate() {
            assert_eq!(w.config, cfg(24 - i, 14, 10));
        }
        for (i, w) in line(41, 15).iter().enumerate() {
            assert_eq!(w.config, cfg(16, 14 - i, 10));
        }
        match repeat {
            Repeat::OnePass => {
                assert!(run[lines..].iter().all(|w| w.config == cfg(16, 9, 10)));
                assert!(linear.done());
            }
            Repeat::Forever => {
                // The batch line again: the base, down to batch 1, then up.
                let again: Vec<Config> = line(lines, 16).iter().map(|w| w.config).collect();
                let mut expected = vec![cfg(16, 9, 10)];
                expected.extend((0..10).rev().map(|b| cfg(16, 9, b)));
                expected.extend((11..16).map(|b| cfg(16, 9, b)));
                assert_eq!(again, expected, "the batch sweep again, from the best");
                assert_eq!(linear.sweeps(), 4);
            }
        }
    }
}

/// Drives linear search where a config keeps up only with batches of at least 6
/// and a CPU index of at least 10 (utilisation is decided by the reports'
/// service figures), on the bowl; overloaded configs cost 50.
fn linear_with_overload(repeat: Repeat, windows: u32) -> (Linear, Vec<Window>) {
    let space = xavier();
    let f = bowl(cfg(16, 9, 10), 0.6);
    let keeps_up = |c: &Config| c.index(BATCH) >= 5 && c.index(CPU) >= 10;
    let mut linear = Linear::new(repeat);
    let mut config = linear.start(&space);
    let mut run = Vec::new();
    for w in 1..=windows {
        let cost = if keeps_up(&config) { f(&config) } else { 50.0 };
        run.push(Window { config, cost });
        let mut r = WindowReport::measured(w, config, cost, 20.0);
        // 20 requests a second; a batch takes 0.04 s per request when the config
        // keeps up, 0.06 s when it does not.
        let per_request = if keeps_up(&config) { 0.04 } else { 0.06 };
        let batch = space.batch_size(&config) as f64;
        r.service = Some(Service {
            fixed_s: per_request * batch,
            per_request_s: 0.0,
            active_w: 10.0,
            idle_w: Some(5.0),
        });
        config = linear.step(&space, &r);
    }
    (linear, run)
}

#[test]
fn linear_never_walks_past_a_config_that_cannot_keep_up() {
    let (linear, run) = linear_with_overload(Repeat::OnePass, 200);
    let configs: Vec<Config> = run.iter().map(|w| w.config).collect();
    // Batch line: 16 down to 6 keep up, batch 5 does not: the walk stops there.
    let mut expected: Vec<Config> = (4..16).rev().map(|b| cfg(24, 14, b)).collect();
    // CPU line from the best batch (index 10): down to index 10, 9 is overloaded.
    expected.push(cfg(24, 14, 10));
    expected.extend((9..24).rev().map(|c| cfg(c, 14, 10)));
    // GPU line from the best CPU (index 16): every level keeps up.
    expected.push(cfg(16, 14, 10));
    expected.extend((0..14).rev().map(|g| cfg(16, g, 10)));
    assert_eq!(&configs[..expected.len()], &expected[..]);
    assert!(
        configs[expected.len()..]
            .iter()
            .all(|&c| c == cfg(16, 9, 10))
    );
    assert_eq!(
        linear.overloads(),
        2,
        "one overloaded window per blocked walk"
    );
    assert!(linear.done());
    // For ever: no line ever measures more than one overloaded config, and the
    // base never becomes one.
    let (linear, run) = linear_with_overload(Repeat::Forever, 600);
    let overloaded = run.iter().filter(|w| w.cost == 50.0).count() as u32;
    assert_eq!(overloaded, linear.overloads());
    assert!(overloaded <= linear.sweeps() + 1, "{overloaded}");
    assert!(linear.base().index(BATCH) >= 5 && linear.base().index(CPU) >= 10);
}

#[test]
fn linear_is_deterministic_and_stays_within_limits() {
    let cpu = Dimension::new(Knob::Cpu, &CPU_KHZ)
        .unwrap()
        .with_lower_limit(4)
        .unwrap();
    let gpu = Dimension::new(Knob::Gpu, &GPU_HZ)
        .unwrap()
        .with_lower_limit(4)
        .unwrap();
    let batch = Dimension::batch(16).unwrap().with_lower_limit(3).unwrap();
    let limited = Space::new(&[cpu, gpu, batch]).unwrap();
    let f = bowl(cfg(2, 9, 1), 0.6);
    let runs: Vec<Vec<Config>> = (0..2)
        .map(|_| {
            let mut noise = Noise(5);
            let mut linear = Linear::new(Repeat::Forever);
            // `drive` asserts every config is within the limits.
            drive(
                &mut linear,
                &limited,
                300,
                |_, c| f(c) * noise.factor(0.05),
                |_, _| {},
            )
            .iter()
            .map(|w| w.config)
            .collect()
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert!(std::mem::size_of::<Linear>() <= 64);
}

#[test]
fn dvfs_governs_clocks_and_fixes_the_batch() {
    let space = xavier();
    for (batch, index) in [(8, 7), (16, 15)] {
        let mut dvfs = Dvfs::new(batch);
        assert!(dvfs.governed(Knob::Cpu) && dvfs.governed(Knob::Gpu));
        assert!(!dvfs.governed(Knob::Batch));
        let run = drive(&mut dvfs, &space, 20, |w, _| f64::from(w), |_, _| {});
        assert!(run.iter().all(|w| w.config.index(BATCH) == index));
        assert_eq!(space.batch_size(&run[0].config), batch);
    }
}

#[test]
fn mab_exploits_about_ninety_percent() {
    let space = xavier();
    let f = bowl(cfg(16, 9, 10), 0.6);
    let mut mab = Mab::new(MabSettings::default(), 11);
    let run = drive(&mut mab, &space, 1010, |_, c| f(c), |_, _| {});
    let d = mab.decisions();
    // 1010 steps: the start and 9 steps are the hot start of 10 random configs.
    assert_eq!(d.exploits + d.explorations, 1001);
    assert!((870..=930).contains(&d.exploits), "{d:?}");
    // Round-robin: after the hot start, each window changes at most one knob, in turn.
    for (i, w) in run[10..].windows(2).enumerate() {
        let changed: Vec<usize> = (0..3)
            .filter(|&k| w[0].config.index(k) != w[1].config.index(k))
            .collect();
        assert!(
            changed.iter().all(|&k| k == (i + 1) % 3),
            "window {i}: {changed:?}"
        );
    }
    // Exploitation settles on good levels.
    let tail = run[900..].iter().map(|w| w.cost).sum::<f64>() / 110.0;
    assert!(tail < 0.8, "tail mean cost {tail}");

    let mut joint = MabJoint::new(MabSettings::default(), 12);
    let run = drive(&mut joint, &space, 1010, |_, c| f(c), |_, _| {});
    let d = joint.decisions();
    assert_eq!(d.exploits + d.explorations, 1001);
    assert!((870..=930).contains(&d.exploits), "{d:?}");
    let best = run[..10]
        .iter()
        .map(|w| w.cost)
        .fold(f64::INFINITY, f64::min);
    assert!(run[10..].iter().filter(|w| w.cost <= best).count() >= 870);
}

#[test]
fn bayes_beats_random_at_the_same_budget() {
    let space = xavier();
    let f = bowl(cfg(16, 9, 10), 0.6);
    let budget = 35;
    let seeds = [1, 2, 3];
    let best_of = |run: &[Window]| run.iter().map(|w| w.cost).fold(f64::INFINITY, f64::min);
    let mut bayes_sum = 0.0;
    let mut random_sum = 0.0;
    for seed in seeds {
        let mut bayes = Bayes::new(BayesSettings::default(), seed);
        bayes_sum += best_of(&drive(&mut bayes, &space, budget, |_, c| f(c), |_, _| {}));
        // The start and 9 steps are the 10 random configs.
        assert_eq!(bayes.model_steps(), budget - 9);
        let mut random = RandomSearch::new(seed);
        random_sum += best_of(&drive(&mut random, &space, budget, |_, c| f(c), |_, _| {}));
    }
    let (b, r) = (bayes_sum / 3.0, random_sum / 3.0);
    eprintln!("best cost after {budget} windows: bayes {b:.4}, random {r:.4}");
    assert!(b < r, "bayes {b} random {r}");
    assert!(b < 0.6 * 1.02, "bayes {b}");
}

#[test]
fn names_build_every_optimizer() {
    let space = xavier();
    for name in NAMES {
        let name = match name {
            "dvfs:BATCH" => "dvfs:16",
            "fixed:CPU,GPU,BATCH" => "fixed:0,14,16",
            n => n,
        };
        let opt = by_name(name, &space, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = name.split(':').next().unwrap();
        assert_eq!(opt.name(), expected, "{name}");
    }
    let mut fixed = by_name("fixed:0,14,16", &space, 0).unwrap();
    assert_eq!(fixed.start(&space), cfg(0, 14, 15));
    let mut max = by_name("fixed:max", &space, 0).unwrap();
    assert_eq!(max.start(&space), space.max_config());
    let mut dvfs = by_name("dvfs", &space, 0).unwrap();
    assert!(dvfs.governed(Knob::Gpu));
    assert_eq!(space.batch_size(&dvfs.start(&space)), 8);
    assert!(
        by_name("linear:forever", &space, 0)
            .is_ok_and(|o| matches!(o.inner(), BaseOptimizer::Linear(_)))
    );
    // The same seed gives the same run.
    let runs: Vec<Vec<Config>> = (0..2)
        .map(|_| {
            let mut o = by_name("mab-joint", &space, 9).unwrap();
            drive(
                &mut o,
                &space,
                50,
                |_, c| bowl(cfg(16, 9, 10), 0.6)(c),
                |_, _| {},
            )
            .iter()
            .map(|w| w.config)
            .collect()
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
}

/// EcoGD's additions by name: its own settings for `ecogd`, the wrapper for
/// the others, refused where they mean nothing.
#[test]
fn additions_by_name() {
    let space = xavier();
    let settings = |name: &str| match by_name(name, &space, 1).unwrap().inner() {
        BaseOptimizer::EcoGd(gd) => *gd.settings(),
        _ => panic!("{name} is not EcoGD"),
    };
    assert_eq!(
        settings("ecogd:paper+replay+abandon+pattern+scan+probe"),
        settings("ecogd")
    );
    assert_eq!(settings("ecogd+replay"), settings("ecogd"));
    let paper = settings("ecogd:paper");
    let replay = settings("ecogd:paper+replay");
    assert!(replay.replay && !replay.pattern && !replay.scan && replay.abandon_above.is_none());
    assert!(settings("ecogd:paper+scan").scan && !paper.scan);
    assert!(settings("ecogd:paper+probe").probe_jumps && !paper.probe_jumps);
    assert_eq!(
        EcoGdSettings {
            replay: false,
            ..replay
        },
        paper
    );
    for name in [
        "grid+replay",
        "bayes+replay+abandon",
        "dvfs:16+abandon",
        "mab+abandon",
    ] {
        let o = by_name(name, &space, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(o.assist().replay, name.contains("replay"), "{name}");
        assert_eq!(o.assist().abandon, name.contains("abandon"), "{name}");
    }
    for bad in [
        "grid+pattern",
        "bayes+scan",
        "mab+probe",
        "fixed:max+replay",
        "ecogd+fast",
        "grid+",
    ] {
        assert!(
            matches!(by_name(bad, &space, 1), Err(NameError::Malformed(_))),
            "{bad}"
        );
    }
}

/// With `+abandon`, a baseline's unmeasured probes run under 1.5 times the
/// best fresh cost, and a probe cut there counts at that ceiling; without
/// additions the wrapper changes nothing.
#[test]
fn abandonment_for_any_optimizer() {
    let space = xavier();
    let f = bowl(cfg(12, 7, 7), 0.5);
    let plain = drive(
        &mut by_name("grid", &space, 1).unwrap(),
        &space,
        60,
        |_, c| f(c),
        |_, _| {},
    );
    let bare = drive(&mut Grid::new(), &space, 60, |_, c| f(c), |_, _| {});
    assert_eq!(plain, bare, "no additions: the optimizer itself");
    let mut grid = by_name("grid+abandon", &space, 1).unwrap();
    let mut ceilings = Vec::new();
    let windows = drive(
        &mut grid,
        &space,
        60,
        |_, c| f(c),
        |_, o| ceilings.push(o.ceiling()),
    );
    // After window i, the fresh costs are those of windows i-19..=i (20).
    let fresh = |i: usize| &windows[i.saturating_sub(19)..=i];
    for (i, ceiling) in ceilings.iter().enumerate() {
        let Some(next) = windows.get(i + 1).map(|w| w.config) else {
            continue;
        };
        let known = fresh(i).iter().any(|w| w.config == next);
        let best = fresh(i)
            .iter()
            .map(|w| w.cost)
            .fold(f64::INFINITY, f64::min);
        match ceiling {
            Some(c) => {
                assert!(!known, "window {i}: a fresh config got a ceiling");
                assert!(
                    (c - 1.5 * best).abs() < 1e-12,
                    "window {i}: {c} for best {best}"
                );
                assert!(windows[i + 1].cost <= c + 1e-12, "cut at the ceiling");
            }
            None => assert!(known, "window {i}: a probe without a ceiling"),
        }
    }
    assert!(ceilings.iter().flatten().count() > 20, "{ceilings:?}");
}

#[test]
fn fixed_configs_are_checked_against_levels_not_limits() {
    let cpu = Dimension::new(Knob::Cpu, &CPU_KHZ)
        .unwrap()
        .with_lower_limit(4)
        .unwrap();
    let gpu = Dimension::new(Knob::Gpu, &GPU_HZ)
        .unwrap()
        .with_lower_limit(4)
        .unwrap();
    let batch = Dimension::batch(16).unwrap().with_lower_limit(3).unwrap();
    let limited = Space::new(&[cpu, gpu, batch]).unwrap();
    let mut low = by_name("fixed:0,0,1", &limited, 0).unwrap();
    assert_eq!(low.start(&limited), cfg(0, 0, 0));
}

#[test]
fn bad_names_are_typed_errors() {
    let space = xavier();
    let err = |name: &str| by_name(name, &space, 0).unwrap_err();
    let unknown = err("sgd");
    assert!(matches!(&unknown, NameError::Unknown(n) if n.as_str() == "sgd"));
    assert_eq!(
        unknown.to_string(),
        "unknown optimizer `sgd` (expected one of: ecogd, ecogd:paper, grid, linear, linear:forever, \
         dvfs, dvfs:BATCH, mab, mab-joint, bayes, random, fixed:CPU,GPU,BATCH, fixed:max), \
         each optionally with +replay, +abandon"
    );
    let long = err(&"x".repeat(100));
    assert!(matches!(long, NameError::Unknown(n) if n.len() == 32));
    for malformed in [
        "fixed:",
        "fixed:1,2",
        "fixed:1,2,3,4",
        "fixed:a,b,c",
        "fixed:-1,0,1",
        "dvfs:x",
    ] {
        assert!(
            matches!(err(malformed), NameError::Malformed(_)),
            "{malformed}"
        );
    }
    assert!(
        err("fixed:1,2")
            .to_string()
            .starts_with("malformed optimizer, expected fixed:CPU,GPU,BATCH")
    );
    assert_eq!(
        err("fixed:25,0,1"),
        NameError::Config(ConfigError::OutOfRange {
            knob: Knob::Cpu,
            index: 25,
            levels: 25
        })
    );
    assert_eq!(
        err("fixed:0,15,1"),
        NameError::Config(ConfigError::OutOfRange {
            knob: Knob::Gpu,
            index: 15,
            levels: 15
        })
    );
    assert_eq!(
        err("fixed:0,0,17"),
        NameError::Config(ConfigError::UnknownLevel {
            knob: Knob::Batch,
            value: 17
        })
    );
    assert_eq!(
        err("fixed:0,0,17").to_string(),
        "fixed config: 17 is not a batch level of this board"
    );
    assert_eq!(
        err("dvfs:0"),
        NameError::Config(ConfigError::UnknownLevel {
            knob: Knob::Batch,
            value: 0
        })
    );
    let no_gpu = Space::new(&[
        Dimension::new(Knob::Cpu, &CPU_KHZ).unwrap(),
        Dimension::batch(4).unwrap(),
    ])
    .unwrap();
    let e = by_name("fixed:0,0,1", &no_gpu, 0).unwrap_err();
    assert_eq!(e, NameError::MissingKnob(Knob::Gpu));
    assert_eq!(
        e.to_string(),
        "fixed:CPU,GPU,BATCH needs a gpu knob, and this board has none"
    );
}

#[test]
fn every_optimizer_survives_odd_reports_and_tiny_spaces() {
    let tiny = Space::new(&[Dimension::batch(1).unwrap()]).unwrap();
    let empty = Space::default();
    for space in [xavier(), tiny, empty] {
        // Every name without a placeholder: those fit any space.
        for name in NAMES.iter().filter(|n| !n.contains(char::is_uppercase)) {
            let mut o = by_name(name, &space, 4).unwrap();
            let mut c = o.start(&space);
            for (w, cost) in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e300, 0.5]
                .into_iter()
                .cycle()
                .take(40)
                .enumerate()
            {
                assert!(space.within_limits(&c), "{name}");
                c = o.step(&space, &WindowReport::measured(w as u32, c, cost, f64::NAN));
            }
            // A report of a config outside the space is ignored, not trusted.
            let _ = o.step(
                &space,
                &WindowReport::measured(99, cfg(60, 60, 60), 0.0, 1.0),
            );
        }
    }
}
