//! The paper's qualitative verdicts on its baselines, checked in the simulator:
//! resnet50 on the Xavier NX model at `fixed:50ms` and `fixed:90ms`, seeds 1-3
//! (development seeds), 1000 windows (the default of synthetic workloads: grid
//! search needs 672 to finish exploring), every optimizer judged against the
//! workload's `E0, L0` and its best static config (the oracle), as `compare` does.
//!
//! Thresholds, fixed before the final results were looked at (the figures of
//! each seed are averaged over the three seeds before a threshold applies):
//!
//! - **near-optimal**: after-convergence mean cost within 10 % of the static
//!   oracle's ([`NEAR`]). 10 %: the convergence rule of ECOGD.md itself calls a
//!   run settled within +-10 % of its final level, so a finer verdict would
//!   judge the rule's own tolerance.
//! - **suboptimal**: after-convergence mean cost more than 10 % above the
//!   oracle's (the complement of near-optimal).
//! - **overhead** of a run: its *excess cost during convergence*, the sum over
//!   the windows before its convergence window of (window mean cost - oracle
//!   mean cost); for a run that never settles, over the windows before its last
//!   20 % (the phases of `compare`). In units of "windows at the oracle's cost".
//! - **high overhead**: at least twice EcoGD's excess ([`HIGH`]): a factor that
//!   noise (a few percent per window) cannot produce, and that the paper's
//!   figures show many times over.
//! - **low overhead**: at most half the excess of the cheaper of the two
//!   high-overhead baselines, grid and bayes ([`LOW`]): the paper calls linear
//!   search cheap *compared with* exhaustive and model-based search.
//! - **in between** (MAB): its whole-run mean cost above EcoGD's and below the
//!   worse of grid's and bayes's.
//! - DVFS: **suboptimal** as above, at batch 8 (`dvfs`) and 16 (`dvfs:16`); and
//!   batch 16 with **lower mean energy and higher mean latency** per request
//!   than batch 8 (whole run; the governors settle at once).
//!
//! Where a verdict does not hold in this simulator the test asserts what does
//! and says why in the test's doc comment; nothing is tuned to make one pass.
//! Two do not hold as stated: linear search is *not* suboptimal here, and
//! batch 16's lower energy holds only in the paper's energy scope (`active`).
//! Run with `--nocapture` for the table of figures.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use ecoedge_core::cost::EnergyScope;
use ecoedge_runner::compare::{Penalty, RunFigures};
use ecoedge_runner::sim::model::{DnnKind, XavierNx};
use ecoedge_runner::sim::named::simulate_named;
use ecoedge_runner::sim::oracle::{best_static, reference_baseline};
use ecoedge_runner::sim::{SimSetup, Stop};
use ecoedge_runner::workload::Workload;
use rayon::prelude::*;

/// Relative distance to the oracle that separates near-optimal from suboptimal.
const NEAR: f64 = 0.10;
/// High overhead: at least this many times EcoGD's excess cost.
const HIGH: f64 = 2.0;
/// Low overhead: at most this share of the cheaper high-overhead baseline's.
const LOW: f64 = 0.5;

const SEEDS: [u64; 3] = [1, 2, 3];
const WORKLOADS: [&str; 2] = ["fixed:50ms", "fixed:90ms"];
const OPTIMIZERS: [&str; 10] = [
    "ecogd",
    "grid",
    "linear",
    "dvfs",
    "dvfs:16",
    "mab",
    "mab-joint",
    "bayes",
    // The governors' energy as the paper measured it: while batches run.
    "dvfs@active",
    "dvfs:16@active",
];
const WINDOWS: u32 = 1000;

/// One optimizer's figures on one workload, averaged over [`SEEDS`].
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    /// Excess cost during convergence (see the module doc).
    excess: f64,
    /// After-convergence mean cost.
    after: f64,
    /// Whole-run mean cost, energy (J) and latency (s) per request.
    overall: f64,
    energy_j: f64,
    latency_s: f64,
}

struct Verdicts {
    /// Oracle mean cost per workload.
    oracle: BTreeMap<&'static str, f64>,
    /// (workload, optimizer) -> figures.
    figures: BTreeMap<(&'static str, &'static str), Figures>,
}

impl Verdicts {
    fn get(&self, workload: &'static str, optimizer: &'static str) -> Figures {
        self.figures[&(workload, optimizer)]
    }
}

fn excess(run: &RunFigures, oracle: f64) -> f64 {
    let n = run.series.len();
    let split = run.converge_window.unwrap_or(n - (n / 5).max(1).min(n));
    run.series[..split].iter().map(|c| c - oracle).sum()
}

fn verdicts() -> &'static Verdicts {
    static V: OnceLock<Verdicts> = OnceLock::new();
    V.get_or_init(|| {
        let started = Instant::now();
        let model = XavierNx::new(DnnKind::Resnet50);
        let prepared: Vec<(&'static str, SimSetup, f64)> = WORKLOADS
            .par_iter()
            .map(|&w| {
                let mut setup = SimSetup::new(Workload::parse(w).unwrap(), SEEDS[0]);
                setup.stop = Stop::Windows(WINDOWS);
                let baseline = reference_baseline(&model, &setup).unwrap();
                let oracle = best_static(&model, &setup, &baseline).unwrap();
                setup.settings.baseline = Some(baseline);
                (w, setup, oracle.mean_cost)
            })
            .collect();
        eprintln!("oracles: {:.1} s", started.elapsed().as_secs_f64());
        let tasks: Vec<(usize, &'static str, u64)> = (0..prepared.len())
            .flat_map(|w| {
                OPTIMIZERS
                    .iter()
                    .flat_map(move |&o| SEEDS.iter().map(move |&s| (w, o, s)))
            })
            .collect();
        let runs: Vec<(usize, &'static str, RunFigures, f64)> = tasks
            .par_iter()
            .map(|&(w, o, seed)| {
                let t = Instant::now();
                let (_, setup, _) = &prepared[w];
                let mut setup = setup.clone();
                setup.seed = seed;
                let name = match o.strip_suffix("@active") {
                    Some(name) => {
                        setup.settings.window.scope = EnergyScope::Active;
                        name
                    }
                    None => o,
                };
                let out = simulate_named(&model, name, &setup).unwrap();
                let baseline = setup.settings.baseline.unwrap();
                let alpha = setup.settings.window.alpha;
                let penalty = Penalty::default().cost(&baseline, alpha);
                let figures = RunFigures::of(&out, &baseline, alpha, penalty);
                (w, o, figures, t.elapsed().as_secs_f64())
            })
            .collect();
        let mut oracle = BTreeMap::new();
        let mut figures = BTreeMap::new();
        for (w, (name, _, oracle_cost)) in prepared.iter().enumerate() {
            oracle.insert(*name, *oracle_cost);
            for o in OPTIMIZERS {
                let mine: Vec<&(usize, &str, RunFigures, f64)> =
                    runs.iter().filter(|r| r.0 == w && r.1 == o).collect();
                let k = mine.len() as f64;
                let mean = |f: &dyn Fn(&RunFigures) -> f64| {
                    mine.iter().map(|r| f(&r.2)).sum::<f64>() / k
                };
                let f = Figures {
                    excess: mean(&|r| excess(r, *oracle_cost)),
                    after: mean(&|r| r.after.mean_cost),
                    overall: mean(&|r| r.overall.mean_cost),
                    energy_j: mean(&|r| r.overall.mean_energy_j),
                    latency_s: mean(&|r| r.overall.mean_latency_s),
                };
                let seconds: f64 = mine.iter().map(|r| r.3).sum();
                let settled: Vec<String> = mine
                    .iter()
                    .map(|r| r.2.converge_window.map_or("-".into(), |c| c.to_string()))
                    .collect();
                eprintln!(
                    "{name:>10} {o:>9}: excess {:>8.1} after {:.3} ({:+5.1} % of oracle {:.3}) \
                     overall {:.3} energy {:.0} mJ latency {:.0} ms, settled at {settled:?} ({seconds:.1} s)",
                    f.excess,
                    f.after,
                    100.0 * (f.after / oracle_cost - 1.0),
                    oracle_cost,
                    f.overall,
                    1e3 * f.energy_j,
                    1e3 * f.latency_s,
                );
                figures.insert((*name, o), f);
            }
        }
        eprintln!("all runs: {:.1} s", started.elapsed().as_secs_f64());
        Verdicts { oracle, figures }
    })
}

fn near_optimal(v: &Verdicts, w: &'static str, o: &'static str) -> bool {
    v.get(w, o).after <= (1.0 + NEAR) * v.oracle[w]
}

fn high_overhead(v: &Verdicts, w: &'static str, o: &'static str) -> bool {
    v.get(w, o).excess >= HIGH * v.get(w, "ecogd").excess
}

#[test]
fn grid_is_near_optimal_after_convergence_with_high_overhead() {
    let v = verdicts();
    for w in WORKLOADS {
        let g = v.get(w, "grid");
        assert!(near_optimal(v, w, "grid"), "{w}: {g:?}");
        assert!(high_overhead(v, w, "grid"), "{w}: {g:?}");
    }
}

#[test]
fn bayes_is_near_optimal_after_convergence_with_high_overhead() {
    let v = verdicts();
    for w in WORKLOADS {
        let b = v.get(w, "bayes");
        assert!(near_optimal(v, w, "bayes"), "{w}: {b:?}");
        assert!(high_overhead(v, w, "bayes"), "{w}: {b:?}");
    }
}

/// Low overhead holds. *Suboptimal does not*: linear search settles 1-7 %
/// above the oracle (seeds 1-3: +1.8 % at fixed:50ms, +6.3 % at fixed:90ms),
/// inside the 10 % of near-optimal. The simulator's cost landscape has one
/// basin and its knobs barely interact (a batch of 1 or 2 is best at every
/// clock, and the best GPU clock hardly moves with the CPU clock), so one sweep
/// per knob from the maximum config ends next to the optimum. One knob at a
/// time falls short where knobs interact, which the analytic device model does
/// not give (see SIMULATOR.md: service time is a sum of per-domain parts). What
/// is asserted: low overhead, and an after-convergence cost above the oracle's.
#[test]
fn linear_has_low_overhead_but_is_not_suboptimal_here() {
    let v = verdicts();
    for w in WORKLOADS {
        let l = v.get(w, "linear");
        let cheaper = v.get(w, "grid").excess.min(v.get(w, "bayes").excess);
        assert!(l.excess <= LOW * cheaper, "{w}: {l:?}, {cheaper}");
        assert!(l.after > v.oracle[w], "{w}: {l:?}");
        // The paper's verdict, which fails here (see the doc comment).
        assert!(near_optimal(v, w, "linear"), "{w}: {l:?}");
    }
}

/// Suboptimal and the latency order hold. The energy order holds with the
/// paper's energy scope (`active`: energy drawn while batches run) and reverses
/// with ours (`total`, the default: idle draw between batches included): batch
/// 16 keeps the board busy less per request (it amortises the per-batch cost),
/// so each request carries more idle time at about 3.5-5 W, which outweighs the
/// active energy saved (seeds 1-3, fixed:50ms: active 187 against 200 mJ, total
/// 292 against 272 mJ).
#[test]
fn dvfs_is_suboptimal_and_batch_16_trades_latency_for_active_energy() {
    let v = verdicts();
    for w in WORKLOADS {
        let (b8, b16) = (v.get(w, "dvfs"), v.get(w, "dvfs:16"));
        assert!(!near_optimal(v, w, "dvfs"), "{w}: {b8:?}");
        assert!(!near_optimal(v, w, "dvfs:16"), "{w}: {b16:?}");
        assert!(b16.latency_s > b8.latency_s, "{w}: {b8:?} {b16:?}");
        let (a8, a16) = (v.get(w, "dvfs@active"), v.get(w, "dvfs:16@active"));
        assert!(a16.energy_j < a8.energy_j, "{w}: {a8:?} {a16:?}");
        // With idle energy charged, the order reverses (see the doc comment).
        assert!(b16.energy_j > b8.energy_j, "{w}: {b8:?} {b16:?}");
    }
}

#[test]
fn mab_is_in_between() {
    let v = verdicts();
    for w in WORKLOADS {
        let worst = v.get(w, "grid").overall.max(v.get(w, "bayes").overall);
        for o in ["mab", "mab-joint"] {
            let m = v.get(w, o);
            assert!(m.overall > v.get(w, "ecogd").overall, "{w} {o}: {m:?}");
            assert!(m.overall < worst, "{w} {o}: {m:?}, {worst}");
        }
    }
}
