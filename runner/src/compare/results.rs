//! The results of a comparison: per-optimizer figures averaged over repeats
//! (the JSON schema of CLI.md), EcoGD's headline against the baselines, and
//! the markdown tables.

use std::fmt::Write as _;

use serde::Serialize;

use super::RunFigures;
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
    /// Before convergence.
    pub during: PhaseStats,
    /// From convergence on.
    pub after: PhaseStats,
    /// Whole run.
    pub overall: PhaseStats,
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
}

/// A workload's reference baseline.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineJson {
    /// Workload spec.
    pub workload: String,
    /// E0, joules per request.
    pub energy_j: f64,
    /// L0, seconds per request.
    pub latency_s: f64,
}

/// EcoGD's cost reductions against the baselines (overall phase).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Headline {
    /// Largest mean-cost reduction, percent.
    pub mean_cost_max_pct: f64,
    /// Average mean-cost reduction, percent.
    pub mean_cost_avg_pct: f64,
    /// Largest p99-cost reduction, percent.
    pub tail_cost_max_pct: f64,
    /// Average p99-cost reduction, percent.
    pub tail_cost_avg_pct: f64,
    /// Workload-baseline pairs compared.
    pub pairs: usize,
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
    /// Per workload and optimizer.
    pub results: Vec<ResultJson>,
    /// E0, L0 per workload.
    pub baselines: Vec<BaselineJson>,
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
    }
}

/// One optimizer's figures on one workload, averaged over its repeats.
pub fn aggregate(workload: &str, optimizer: &str, runs: &[RunFigures]) -> ResultJson {
    let stats = |f: &dyn Fn(&RunFigures) -> &PhaseStats| {
        mean_stats(&runs.iter().map(f).collect::<Vec<_>>())
    };
    let converged: Vec<usize> = runs.iter().filter_map(|r| r.converge_window).collect();
    let len = runs.iter().map(|r| r.series.len()).min().unwrap_or(0);
    let series = (0..len)
        .map(|i| runs.iter().map(|r| r.series[i]).sum::<f64>() / runs.len() as f64)
        .collect();
    let values = |f: &dyn Fn(&RunFigures) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    ResultJson {
        workload: workload.to_string(),
        optimizer: optimizer.to_string(),
        during: stats(&|r| &r.during),
        after: stats(&|r| &r.after),
        overall: stats(&|r| &r.overall),
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
    }
}

/// EcoGD's reductions against the baselines: every other optimizer but the
/// oracle and EcoGD's own variants (`ecogd:paper`).
pub fn headline(results: &[ResultJson]) -> Option<Headline> {
    let mut mean = Vec::new();
    let mut tail = Vec::new();
    for eco in results.iter().filter(|r| r.optimizer == "ecogd") {
        for other in results.iter().filter(|r| {
            r.workload == eco.workload
                && !r.optimizer.starts_with("ecogd")
                && r.optimizer != "oracle"
        }) {
            mean.push(100.0 * (1.0 - eco.overall.mean_cost / other.overall.mean_cost));
            tail.push(100.0 * (1.0 - eco.overall.p99_cost / other.overall.p99_cost));
        }
    }
    if mean.is_empty() {
        return None;
    }
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Some(Headline {
        mean_cost_max_pct: max(&mean),
        mean_cost_avg_pct: avg(&mean),
        tail_cost_max_pct: max(&tail),
        tail_cost_avg_pct: avg(&tail),
        pairs: mean.len(),
    })
}

/// The markdown table of one workload.
pub fn table(results: &[ResultJson], workload: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### {workload}\n");
    let _ = writeln!(
        s,
        "| optimizer | converged at | during mean | during p99 | after mean | after p99 | overall mean | overall p99 | energy/req (mJ) | latency mean (ms) | latency p99 (ms) | served | refused | final config (CPU MHz, GPU MHz, batch) |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in results.iter().filter(|r| r.workload == workload) {
        let c = r.final_config;
        let mhz = |v: Option<u32>, d: u32| v.map_or("gov".to_string(), |v| (v / d).to_string());
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} | {:.0} | {} | {} | {}, {}, {} |",
            r.optimizer,
            r.converge_window
                .map_or("-".to_string(), |w| format!("{w:.0}")),
            r.during.mean_cost,
            r.during.p99_cost,
            r.after.mean_cost,
            r.after.p99_cost,
            r.overall.mean_cost,
            r.overall.p99_cost,
            r.overall.mean_energy_j * 1e3,
            r.overall.mean_latency_s * 1e3,
            r.overall.p99_latency_s * 1e3,
            r.overall.served,
            r.overall.refused,
            mhz(c.cpu_khz, 1_000),
            mhz(c.gpu_hz, 1_000_000),
            c.batch,
        );
    }
    s
}

/// The paper's conclusion, in its words.
pub fn headline_text(h: &Headline) -> String {
    format!(
        "EcoGD lowers mean cost by up to {:.0}% ({:.0}% on average) and tail (p99) cost by up to {:.0}% ({:.0}% on average) against the baselines ({} workload-baseline pairs).",
        h.mean_cost_max_pct, h.mean_cost_avg_pct, h.tail_cost_max_pct, h.tail_cost_avg_pct, h.pairs
    )
}
