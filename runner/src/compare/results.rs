//! The results of a comparison: per-optimizer figures averaged over repeats
//! (the JSON schema of CLI.md), EcoGD's paired differences against every other
//! optimizer with 95 % confidence intervals, the headline drawn from them, and
//! the markdown tables.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Bin, RunFigures};
use crate::knobs::ConfigJson;
use crate::metrics::PhaseStats;

/// Min, max and standard deviation over repeats.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Standard deviation (population).
    pub std: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        Spread {
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            std: (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt(),
        }
    }
}

/// Spreads of the headline figures over repeats.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spreads {
    /// Of the overall mean cost.
    pub overall_mean_cost: Spread,
    /// Of the overall p99 cost.
    pub overall_p99_cost: Spread,
    /// Of the after-convergence mean cost.
    pub after_mean_cost: Spread,
}

/// One optimizer on one workload, means over repeats (CLI.md schema).
#[derive(Debug, Clone, Serialize)]
pub struct ResultJson {
    /// Workload spec.
    pub workload: String,
    /// Optimizer name.
    pub optimizer: String,
    /// Before convergence, over the repeats that had such a phase; null
    /// when every repeat settled at once ("n/a").
    pub during: Option<PhaseStats>,
    /// From convergence on.
    pub after: PhaseStats,
    /// Whole run.
    pub overall: PhaseStats,
    /// Overall mean cost above the per-window oracle's, mean over repeats;
    /// null when the oracle was not compared.
    pub regret: Option<f64>,
    /// Mean convergence window over repeats; null unless every repeat settled.
    pub converge_window: Option<f64>,
    /// Repeats that settled.
    pub converged_repeats: u32,
    /// Windows per run.
    pub windows: usize,
    /// Final config of repeat 0.
    pub final_config: ConfigJson,
    /// Spread over repeats.
    pub spread: Spreads,
    /// Mean cost per window, averaged over repeats (for plots).
    #[serde(skip)]
    pub series: Vec<f64>,
    /// Per bin of arrival time, over the repeats: requests served and their
    /// mean cost (for the plots against time).
    #[serde(skip)]
    pub timeline: Vec<Bin>,
}

/// A workload's reference baseline and bounds (means over its instances).
#[derive(Debug, Clone, Serialize)]
pub struct BaselineJson {
    /// Workload spec.
    pub workload: String,
    /// Instances of the workload (one per repeat when its arrivals are random).
    pub instances: u32,
    /// E0, joules per request.
    pub energy_j: f64,
    /// L0, seconds per request.
    pub latency_s: f64,
    /// Cost charged per refused or unserved request.
    pub penalty_cost: f64,
    /// The per-window oracle's mean cost: the lower bound of adaptive
    /// policies; null when the oracle was not compared.
    pub window_oracle_mean_cost: Option<f64>,
}

/// A mean over repeats with its 95 % confidence interval (Student's t); the
/// interval is null with a single repeat.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The mean.
    pub mean: f64,
    /// Lower and upper bound of the 95 % interval.
    pub ci95: Option<[f64; 2]>,
}

impl Estimate {
    /// The mean of `values` and its interval.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        let ci95 = (n >= 2).then(|| {
            let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
            let half = t975(n - 1) * (var / n as f64).sqrt();
            [mean - half, mean + half]
        });
        Estimate { mean, ci95 }
    }

    /// Which side of zero the interval lies on: `Some(true)` above,
    /// `Some(false)` below, `None` when it holds zero (or is unknown).
    pub fn sign(&self) -> Option<bool> {
        match self.ci95 {
            Some([lo, _]) if lo > 0.0 => Some(true),
            Some([_, hi]) if hi < 0.0 => Some(false),
            _ => None,
        }
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (a
/// two-sided 95 % interval). The standard table (to three decimals, exact
/// for df 1-30, interpolated in 1/df beyond, 1.960 in the limit): 34
/// published numbers are simpler to check than a statistics crate.
pub fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    const BEYOND: [(f64, f64); 4] = [(30.0, 2.042), (40.0, 2.021), (60.0, 2.000), (120.0, 1.980)];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let x = 1.0 / df as f64;
            let mut prev = (0.0, 1.960);
            for &(d, t) in BEYOND.iter().rev() {
                let p = (1.0 / d, t);
                if x <= p.0 {
                    return prev.1 + (x - prev.0) / (p.0 - prev.0) * (p.1 - prev.1);
                }
                prev = p;
            }
            2.042
        }
    }
}

/// EcoGD against one other optimizer on one workload: per repeat (same seed,
/// same arrivals), the reduction `100 * (1 - ecogd / other)` in percent.
#[derive(Debug, Clone, Serialize)]
pub struct Paired {
    /// Workload spec.
    pub workload: String,
    /// The other optimizer.
    pub optimizer: String,
    /// Reduction of the overall mean cost, percent.
    pub mean_cost_pct: Estimate,
    /// Reduction of the overall p99 cost, percent.
    pub p99_cost_pct: Estimate,
    /// Repeats where EcoGD's mean cost was lower.
    pub wins: u32,
    /// Repeats compared.
    pub repeats: u32,
    /// Per-repeat mean-cost reductions (for the headline's averages).
    #[serde(skip)]
    pub by_repeat: Vec<f64>,
    /// Per-repeat p99-cost reductions.
    #[serde(skip)]
    pub p99_by_repeat: Vec<f64>,
}

/// EcoGD's overall cost reductions against the baselines, from the paired
/// differences. Baselines are every other optimizer but the oracle and
/// EcoGD's own variants (`ecogd:...`).
#[derive(Debug, Clone, Serialize)]
pub struct Headline {
    /// Largest mean-cost reduction of any workload-baseline pair, percent.
    pub mean_cost_max_pct: f64,
    /// Average mean-cost reduction over pairs, percent.
    pub mean_cost_avg_pct: f64,
    /// Its interval over repeats (each repeat's average over pairs).
    pub mean_cost_avg: Estimate,
    /// Average reduction against the best baseline of each workload (lowest
    /// mean cost over repeats), percent, with its interval.
    pub best_baseline_mean_cost: Estimate,
    /// Largest p99-cost reduction, percent.
    pub tail_cost_max_pct: f64,
    /// Average p99-cost reduction, percent.
    pub tail_cost_avg_pct: f64,
    /// Workload-baseline pairs compared.
    pub pairs: usize,
    /// Pairs where EcoGD's mean cost is higher beyond doubt (the interval
    /// lies below zero), as `workload vs optimizer`.
    pub losses: Vec<String>,
    /// Pairs whose interval holds zero: no difference shown.
    pub undecided: Vec<String>,
}

/// The `--json` document.
#[derive(Debug, Clone, Serialize)]
pub struct CompareJson {
    /// Device model.
    pub device: String,
    /// DNN.
    pub model: String,
    /// Energy weight.
    pub alpha: f64,
    /// Seed of repeat 0.
    pub seed: u64,
    /// Reruns.
    pub repeats: u32,
    /// Latency charged to each refused or unserved request, seconds.
    pub penalty_latency_s: f64,
    /// How the runs depart from the defaults (energy scope, limits, jitter,
    /// warm-up after clock changes), in words; empty for none.
    pub model_departures: String,
    /// Per workload and optimizer.
    pub results: Vec<ResultJson>,
    /// E0, L0 per workload.
    pub baselines: Vec<BaselineJson>,
    /// EcoGD against every other optimizer, paired by repeat.
    pub paired: Vec<Paired>,
    /// EcoGD against the baselines, when both were compared.
    pub headline: Option<Headline>,
}

fn mean_stats(s: &[&PhaseStats]) -> PhaseStats {
    let n = s.len().max(1) as f64;
    let m = |f: &dyn Fn(&PhaseStats) -> f64| s.iter().map(|x| f(x)).sum::<f64>() / n;
    let c = |f: &dyn Fn(&PhaseStats) -> u64| {
        (s.iter().map(|x| f(x)).sum::<u64>() as f64 / n).round() as u64
    };
    PhaseStats {
        mean_cost: m(&|x| x.mean_cost),
        p95_cost: m(&|x| x.p95_cost),
        p99_cost: m(&|x| x.p99_cost),
        mean_energy_j: m(&|x| x.mean_energy_j),
        mean_latency_s: m(&|x| x.mean_latency_s),
        p50_latency_s: m(&|x| x.p50_latency_s),
        p95_latency_s: m(&|x| x.p95_latency_s),
        p99_latency_s: m(&|x| x.p99_latency_s),
        served: c(&|x| x.served),
        refused: c(&|x| x.refused),
        unserved: c(&|x| x.unserved),
    }
}

/// One optimizer's figures on one workload, averaged over its repeats.
pub fn aggregate(workload: &str, optimizer: &str, runs: &[RunFigures]) -> ResultJson {
    let stats = |f: &dyn Fn(&RunFigures) -> &PhaseStats| {
        mean_stats(&runs.iter().map(f).collect::<Vec<_>>())
    };
    let during: Vec<&PhaseStats> = runs.iter().filter_map(|r| r.during.as_ref()).collect();
    let regrets: Vec<f64> = runs.iter().filter_map(|r| r.regret).collect();
    let converged: Vec<usize> = runs.iter().filter_map(|r| r.converge_window).collect();
    let len = runs.iter().map(|r| r.series.len()).min().unwrap_or(0);
    let series = (0..len)
        .map(|i| runs.iter().map(|r| r.series[i]).sum::<f64>() / runs.len() as f64)
        .collect();
    let values = |f: &dyn Fn(&RunFigures) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    let bins = runs.iter().map(|r| r.timeline.len()).min().unwrap_or(0);
    let timeline = (0..bins)
        .map(|i| {
            let served: f64 = runs.iter().map(|r| r.timeline[i].served).sum();
            let cost: f64 = runs
                .iter()
                .map(|r| r.timeline[i].served * r.timeline[i].mean_cost)
                .sum();
            Bin {
                served: served / runs.len() as f64,
                mean_cost: if served > 0.0 { cost / served } else { 0.0 },
            }
        })
        .collect();
    ResultJson {
        workload: workload.to_string(),
        optimizer: optimizer.to_string(),
        during: (!during.is_empty()).then(|| mean_stats(&during)),
        after: stats(&|r| &r.after),
        overall: stats(&|r| &r.overall),
        regret: (!regrets.is_empty() && regrets.len() == runs.len())
            .then(|| regrets.iter().sum::<f64>() / regrets.len() as f64),
        converge_window: (converged.len() == runs.len() && !runs.is_empty())
            .then(|| converged.iter().sum::<usize>() as f64 / converged.len() as f64),
        converged_repeats: converged.len() as u32,
        windows: runs.first().map_or(0, |r| r.windows),
        final_config: runs[0].final_config,
        spread: Spreads {
            overall_mean_cost: Spread::of(&values(&|r| r.overall.mean_cost)),
            overall_p99_cost: Spread::of(&values(&|r| r.overall.p99_cost)),
            after_mean_cost: Spread::of(&values(&|r| r.after.mean_cost)),
        },
        series,
        timeline,
    }
}

/// True for the optimizers EcoGD's headline is measured against.
fn is_baseline(optimizer: &str) -> bool {
    !optimizer.starts_with("ecogd") && optimizer != "oracle"
}

/// EcoGD against every other optimizer, workload by workload, paired by
/// repeat; `runs` holds each (workload, optimizer)'s runs in repeat order.
pub fn paired(runs: &[(String, String, Vec<RunFigures>)]) -> Vec<Paired> {
    let mut out = Vec::new();
    for (workload, _, eco) in runs.iter().filter(|(_, o, _)| o == "ecogd") {
        for (_, other, theirs) in runs
            .iter()
            .filter(|(w, o, _)| w == workload && o != "ecogd")
        {
            let reduction = |f: &dyn Fn(&RunFigures) -> f64| -> Vec<f64> {
                eco.iter()
                    .zip(theirs)
                    .map(|(e, t)| 100.0 * (1.0 - f(e) / f(t)))
                    .collect()
            };
            let by_repeat = reduction(&|r| r.overall.mean_cost);
            let p99_by_repeat = reduction(&|r| r.overall.p99_cost);
            out.push(Paired {
                workload: workload.clone(),
                optimizer: other.clone(),
                mean_cost_pct: Estimate::of(&by_repeat),
                p99_cost_pct: Estimate::of(&p99_by_repeat),
                wins: by_repeat.iter().filter(|&&d| d > 0.0).count() as u32,
                repeats: by_repeat.len() as u32,
                by_repeat,
                p99_by_repeat,
            });
        }
    }
    out
}

/// The headline from the paired differences against the baselines; `None`
/// when EcoGD met none.
pub fn headline(paired: &[Paired]) -> Option<Headline> {
    let pairs: Vec<&Paired> = paired
        .iter()
        .filter(|p| is_baseline(&p.optimizer))
        .collect();
    let repeats = pairs.iter().map(|p| p.by_repeat.len()).min()?;
    if repeats == 0 {
        return None;
    }
    // Each repeat's average over pairs, so the interval is over independent seeds.
    let per_repeat = |sel: &dyn Fn(&Paired) -> &Vec<f64>, ps: &[&Paired]| -> Vec<f64> {
        (0..repeats)
            .map(|r| ps.iter().map(|p| sel(p)[r]).sum::<f64>() / ps.len() as f64)
            .collect()
    };
    // The best baseline of a workload has the smallest reduction on average:
    // the lowest mean cost relative to EcoGD's.
    let mut best: Vec<&Paired> = Vec::new();
    for p in &pairs {
        match best.iter_mut().find(|b| b.workload == p.workload) {
            Some(b) if p.mean_cost_pct.mean < b.mean_cost_pct.mean => *b = p,
            Some(_) => {}
            None => best.push(p),
        }
    }
    let label = |p: &Paired| format!("{} vs {}", p.workload, p.optimizer);
    let max =
        |f: &dyn Fn(&Paired) -> f64| pairs.iter().map(|p| f(p)).fold(f64::NEG_INFINITY, f64::max);
    let avg =
        |f: &dyn Fn(&Paired) -> f64| pairs.iter().map(|p| f(p)).sum::<f64>() / pairs.len() as f64;
    Some(Headline {
        mean_cost_max_pct: max(&|p| p.mean_cost_pct.mean),
        mean_cost_avg_pct: avg(&|p| p.mean_cost_pct.mean),
        mean_cost_avg: Estimate::of(&per_repeat(&|p| &p.by_repeat, &pairs)),
        best_baseline_mean_cost: Estimate::of(&per_repeat(&|p| &p.by_repeat, &best)),
        tail_cost_max_pct: max(&|p| p.p99_cost_pct.mean),
        tail_cost_avg_pct: avg(&|p| p.p99_cost_pct.mean),
        pairs: pairs.len(),
        losses: pairs
            .iter()
            .filter(|p| p.mean_cost_pct.sign() == Some(false))
            .map(|p| label(p))
            .collect(),
        undecided: pairs
            .iter()
            .filter(|p| p.mean_cost_pct.sign().is_none())
            .map(|p| label(p))
            .collect(),
    })
}

/// A reduction and its interval, as the tables print it.
fn reduction_text(e: &Estimate) -> String {
    match e.ci95 {
        Some([lo, hi]) => format!("{:+.1}% [{lo:+.1}, {hi:+.1}]", e.mean),
        None => format!("{:+.1}%", e.mean),
    }
}

/// The markdown table of one workload; `paired` gives the column of EcoGD's
/// reduction against each row.
pub fn table(results: &[ResultJson], paired: &[Paired], workload: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### {workload}\n");
    let _ = writeln!(
        s,
        "| optimizer | converged at | during mean | during p99 | after mean | after p99 | overall mean | overall p99 | regret | EcoGD's reduction (95% CI) | energy/req (mJ) | latency mean (ms) | latency p99 (ms) | served | refused | unserved | final config (CPU MHz, GPU MHz, batch) |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let na = || "n/a".to_string();
    for r in results.iter().filter(|r| r.workload == workload) {
        let c = r.final_config;
        let mhz = |v: Option<u32>, d: u32| v.map_or("gov".to_string(), |v| (v / d).to_string());
        let during = |f: fn(&PhaseStats) -> f64| {
            r.during
                .as_ref()
                .map_or_else(na, |d| format!("{:.3}", f(d)))
        };
        let vs = paired
            .iter()
            .find(|p| p.workload == workload && p.optimizer == r.optimizer)
            .map_or_else(|| "-".to_string(), |p| reduction_text(&p.mean_cost_pct));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {}, {}, {} |",
            r.optimizer,
            r.converge_window
                .map_or("-".to_string(), |w| format!("{w:.0}")),
            during(|d| d.mean_cost),
            during(|d| d.p99_cost),
            r.after.mean_cost,
            r.after.p99_cost,
            r.overall.mean_cost,
            r.overall.p99_cost,
            r.regret.map_or_else(na, |g| format!("{g:.3}")),
            vs,
            r.overall.mean_energy_j * 1e3,
            r.overall.mean_latency_s * 1e3,
            r.overall.p99_latency_s * 1e3,
            r.overall.served,
            r.overall.refused,
            r.overall.unserved,
            mhz(c.cpu_khz, 1_000),
            mhz(c.gpu_hz, 1_000_000),
            c.batch,
        );
    }
    s
}

/// One table of every optimizer's overall mean cost on every workload, with
/// the average over workloads: the ablation at a glance.
pub fn summary_table(results: &[ResultJson], workloads: &[String]) -> String {
    let mut s = String::from("### Overall mean cost\n\n| optimizer |");
    for w in workloads {
        let _ = write!(s, " {w} |");
    }
    s.push_str(" average |\n|---|");
    s.push_str(&"---|".repeat(workloads.len() + 1));
    s.push('\n');
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !names.contains(&r.optimizer.as_str()) {
            names.push(&r.optimizer);
        }
    }
    for name in names {
        let costs: Vec<Option<f64>> = workloads
            .iter()
            .map(|w| {
                results
                    .iter()
                    .find(|r| &r.workload == w && r.optimizer == name)
                    .map(|r| r.overall.mean_cost)
            })
            .collect();
        let _ = write!(s, "| {name} |");
        for c in &costs {
            match c {
                Some(c) => {
                    let _ = write!(s, " {c:.3} |");
                }
                None => s.push_str(" - |"),
            }
        }
        let known: Vec<f64> = costs.iter().flatten().copied().collect();
        let _ = writeln!(
            s,
            " {:.3} |",
            known.iter().sum::<f64>() / known.len().max(1) as f64
        );
    }
    s
}

/// The conclusion, with its uncertainty and every loss named.
pub fn headline_text(h: &Headline) -> String {
    let ci = |e: &Estimate| {
        e.ci95.map_or(String::new(), |[lo, hi]| {
            format!(" (95% CI {lo:.0} to {hi:.0})")
        })
    };
    let mut s = format!(
        "EcoGD lowers mean cost by {:.0}% on average{} and by up to {:.0}% against the baselines ({} workload-baseline pairs); against the best baseline of each workload by {:.0}%{}. Tail (p99) cost: up to {:.0}% lower ({:.0}% on average).",
        h.mean_cost_avg.mean,
        ci(&h.mean_cost_avg),
        h.mean_cost_max_pct,
        h.pairs,
        h.best_baseline_mean_cost.mean,
        ci(&h.best_baseline_mean_cost),
        h.tail_cost_max_pct,
        h.tail_cost_avg_pct,
    );
    if !h.losses.is_empty() {
        let _ = write!(s, " EcoGD loses to: {}.", h.losses.join(", "));
    }
    if !h.undecided.is_empty() {
        let _ = write!(s, " No difference shown: {}.", h.undecided.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_table_and_tend_to_normal() {
        assert_eq!(t975(1), 12.706);
        assert_eq!(t975(9), 2.262);
        assert_eq!(t975(30), 2.042);
        assert!((t975(40) - 2.021).abs() < 1e-12);
        assert!((t975(120) - 1.980).abs() < 1e-12);
        let mut last = t975(1);
        for df in 2..2000 {
            let t = t975(df);
            assert!(t <= last && t > 1.96, "df {df}: {t}");
            last = t;
        }
    }

    #[test]
    fn estimates_cover_the_mean_with_students_interval() {
        // Mean 2, sample sd 1, n 4: half-width 3.182 * 1/2.
        let e = Estimate::of(&[1.0, 2.0, 3.0, 2.0]);
        assert_eq!(e.mean, 2.0);
        let [lo, hi] = e.ci95.unwrap();
        let sd = (2.0f64 / 3.0).sqrt();
        assert!((hi - lo - 2.0 * 3.182 * sd / 2.0).abs() < 1e-9, "{lo} {hi}");
        assert_eq!(e.sign(), Some(true));
        assert_eq!(Estimate::of(&[-1.0, 1.0]).sign(), None);
        assert_eq!(Estimate::of(&[-3.0, -2.0, -2.5]).sign(), Some(false));
        assert_eq!(Estimate::of(&[5.0]).ci95, None);
    }
}
