//! What a run reports: the summary JSON of CLI.md and the CSV logs.

use std::path::Path;

use anyhow::{Context, Result};
use ecoedge_core::cost::Baseline;
use ecoedge_core::space::{Config, Knob, Space};
use ecoedge_core::window::{WindowReport, WindowSettings};
use serde::Serialize;

use crate::metrics::PhaseStats;
use crate::record::Outcome;

/// What a summary says the run was.
#[derive(Debug, Clone)]
pub struct Meta {
    /// `sim`, `host` or `jetson`.
    pub board: String,
    /// Device model (`sim` only).
    pub device: Option<String>,
    /// DNN.
    pub model: String,
    /// Workload spec.
    pub workload: String,
    /// Optimizer name.
    pub optimizer: String,
    /// Seed.
    pub seed: u64,
}

/// Request counts: every request that arrived is in exactly one of the others.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Requests {
    /// Requests that arrived.
    pub arrived: u64,
    /// Requests served.
    pub served: u64,
    /// Requests refused by the full queue.
    pub refused: u64,
    /// Requests still waiting at the end (queued or in a partial batch).
    pub pending: u64,
}

/// Latency figures, seconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Energy per request.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Energy {
    /// Mean, joules.
    pub mean: f64,
    /// `total` or `active`.
    pub scope: &'static str,
    /// `measured` or `estimated`.
    pub source: &'static str,
}

/// Cost figures.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Cost {
    /// Mean per-request cost.
    pub mean: f64,
    /// 99th percentile per-request cost.
    pub p99: f64,
}

/// E0 and L0.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BaselineJson {
    /// Energy per request at the maximum config, joules.
    pub energy_j: f64,
    /// Latency per request at the maximum config, seconds.
    pub latency_s: f64,
}

/// A config in physical units (null where the board has no such knob or the OS
/// governor sets it).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ConfigJson {
    /// CPU clock, kHz.
    pub cpu_khz: Option<u32>,
    /// GPU clock, Hz.
    pub gpu_hz: Option<u32>,
    /// Memory (EMC) clock, Hz; left out of the JSON unless the run tunes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emc_hz: Option<u32>,
    /// Batch size.
    pub batch: u32,
}

impl ConfigJson {
    /// `config` in the units of `space`.
    pub fn new(space: &Space, config: &Config) -> Self {
        ConfigJson {
            cpu_khz: space.knob_value(config, Knob::Cpu),
            gpu_hz: space.knob_value(config, Knob::Gpu),
            emc_hz: space.knob_value(config, Knob::Memory),
            batch: space.batch_size(config),
        }
    }
}

/// The summary of `run` and `sim` (CLI.md).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `sim`, `host` or `jetson`.
    pub board: String,
    /// Device model (`sim` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// DNN.
    pub model: String,
    /// Workload spec.
    pub workload: String,
    /// Optimizer name.
    pub optimizer: String,
    /// Seed of every random stream.
    pub seed: u64,
    /// Request counts.
    pub requests: Requests,
    /// Latency.
    pub latency_s: Latency,
    /// Energy per request.
    pub energy_j_per_request: Energy,
    /// Cost against `baseline`.
    pub cost: Cost,
    /// The baseline costs are normalised by.
    pub baseline: Option<BaselineJson>,
    /// Windows closed (calibration included).
    pub windows: usize,
    /// The config at the end.
    pub final_config: ConfigJson,
}

impl Summary {
    /// Prints the summary for people; `span` says how long the run was.
    pub fn print(&self, span: &str) {
        let place = match &self.device {
            Some(d) => format!("{d} ({})", self.board),
            None => self.board.clone(),
        };
        println!(
            "{} on {place}, {} with {}, seed {}: {span}, {} windows",
            self.model, self.workload, self.optimizer, self.seed, self.windows
        );
        let r = self.requests;
        println!(
            "requests: {} arrived, {} served, {} refused, {} pending",
            r.arrived, r.served, r.refused, r.pending
        );
        let l = self.latency_s;
        println!(
            "latency:  mean {:.1} ms, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            l.mean * 1e3,
            l.p50 * 1e3,
            l.p95 * 1e3,
            l.p99 * 1e3
        );
        let e = self.energy_j_per_request;
        println!(
            "energy:   {:.2} mJ per request ({}, {})",
            e.mean * 1e3,
            e.scope,
            e.source
        );
        println!(
            "cost:     mean {:.3}, p99 {:.3} (1 = every knob at max)",
            self.cost.mean, self.cost.p99
        );
        let c = self.final_config;
        let mhz = |v: Option<u32>, per_mhz: u32| {
            v.map_or("-".to_string(), |v| format!("{} MHz", v / per_mhz))
        };
        let emc = c.emc_hz.map_or(String::new(), |v| {
            format!(", EMC {}", mhz(Some(v), 1_000_000))
        });
        println!(
            "final:    CPU {}, GPU {}{emc}, batch {}",
            mhz(c.cpu_khz, 1_000),
            mhz(c.gpu_hz, 1_000_000),
            c.batch
        );
    }
}

impl Summary {
    /// The summary of `out`: costs against the run's own baseline, energy
    /// charged per `window.scope` and reported as coming from `source`.
    pub fn of(meta: Meta, out: &Outcome, window: &WindowSettings, source: &'static str) -> Self {
        let b = out
            .baseline
            .unwrap_or(Baseline::new(1.0, 1.0).expect("positive"));
        let s = PhaseStats::of(&out.served, &b, window.alpha, out.refused);
        let known = |x: f64| if out.baseline.is_some() { x } else { f64::NAN };
        Summary {
            board: meta.board,
            device: meta.device,
            model: meta.model,
            workload: meta.workload,
            optimizer: meta.optimizer,
            seed: meta.seed,
            requests: Requests {
                arrived: out.arrived,
                served: out.served.len() as u64,
                refused: out.refused,
                pending: out.arrived - out.refused - out.served.len() as u64,
            },
            latency_s: Latency {
                mean: s.mean_latency_s,
                p50: s.p50_latency_s,
                p95: s.p95_latency_s,
                p99: s.p99_latency_s,
            },
            energy_j_per_request: Energy {
                mean: s.mean_energy_j,
                scope: window.scope.name(),
                source,
            },
            cost: Cost {
                mean: known(s.mean_cost),
                p99: known(s.p99_cost),
            },
            baseline: out.baseline.map(|b| BaselineJson {
                energy_j: b.energy_j(),
                latency_s: b.latency_s(),
            }),
            windows: out.windows.len(),
            final_config: ConfigJson::new(&out.space, &out.final_config),
        }
    }
}

/// The live line a closed window prints on stderr: the config it measured,
/// energy per request, latency, cost, and the optimizer's move.
pub fn window_line(space: &Space, w: &WindowReport, next: &Config) -> String {
    let config = |c: &Config| {
        let c = ConfigJson::new(space, c);
        let mut parts = Vec::new();
        if let Some(v) = c.cpu_khz {
            parts.push(format!("cpu {} MHz", v / 1_000));
        }
        if let Some(v) = c.gpu_hz {
            parts.push(format!("gpu {} MHz", v / 1_000_000));
        }
        if let Some(v) = c.emc_hz {
            parts.push(format!("emc {} MHz", v / 1_000_000));
        }
        parts.push(format!("batch {}", c.batch));
        parts.join(", ")
    };
    let moved = if *next == w.config {
        "stays".to_string()
    } else {
        format!("-> {}", config(next))
    };
    format!(
        "window {:>4}: {} | {:.2} mJ/req, {:.1} ms, cost {:.3} | {moved}",
        w.index,
        config(&w.config),
        w.energy_j * 1e3,
        w.latency_s * 1e3,
        w.cost.mean
    )
}

/// One row of `requests.csv`.
#[derive(Debug, Serialize)]
struct RequestRow {
    arrival_s: f64,
    done_s: f64,
    latency_s: f64,
    energy_j: f64,
    window: u32,
}

/// One row of `windows.csv`.
#[derive(Debug, Serialize)]
struct WindowRow {
    window: u32,
    end_s: f64,
    cpu_khz: Option<u32>,
    gpu_hz: Option<u32>,
    /// Only in runs that tune the memory clock (every row alike).
    #[serde(skip_serializing_if = "Option::is_none")]
    emc_hz: Option<u32>,
    batch: u32,
    requests: u32,
    discarded: u32,
    energy_j: f64,
    latency_s: f64,
    latency_p95_s: f32,
    latency_p99_s: f32,
    cost_mean: f64,
    cost_p95: Option<f32>,
    cost_p99: Option<f32>,
    arrival_rate_hz: f64,
    abandoned: bool,
    /// The config's service, as the window measured it (what replay prices).
    batch_fixed_s: Option<f64>,
    batch_per_request_s: Option<f64>,
    active_w: Option<f64>,
    idle_w: Option<f64>,
}

/// Ends a run the way every command does: logs into `log_dir` if asked, then
/// the summary on stdout as JSON or for people (`span` says how long it ran).
pub fn emit(
    out: &Outcome,
    summary: &Summary,
    log_dir: Option<&Path>,
    json: bool,
    span: &str,
) -> Result<()> {
    if let Some(dir) = log_dir {
        write_logs(dir, out, summary)?;
    }
    if json {
        println!("{}", serde_json::to_string(summary)?);
    } else {
        summary.print(span);
    }
    Ok(())
}

/// Writes `requests.csv`, `windows.csv` and `summary.json` into `dir`.
pub fn write_logs(dir: &Path, out: &Outcome, summary: &Summary) -> Result<()> {
    let (space, served, windows) = (&out.space, &out.served, &out.windows);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create log directory {}", dir.display()))?;
    let path = dir.join("requests.csv");
    let mut w = csv::Writer::from_path(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    for s in served {
        w.serialize(RequestRow {
            arrival_s: s.arrival.as_secs_f64(),
            done_s: s.done.as_secs_f64(),
            latency_s: s.latency_s(),
            energy_j: s.energy_j,
            window: s.window,
        })?;
    }
    w.flush()?;
    let path = dir.join("windows.csv");
    let mut w = csv::Writer::from_path(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    for r in windows {
        let c = ConfigJson::new(space, &r.config);
        w.serialize(WindowRow {
            window: r.index,
            end_s: r.end.as_secs_f64(),
            cpu_khz: c.cpu_khz,
            gpu_hz: c.gpu_hz,
            emc_hz: c.emc_hz,
            batch: c.batch,
            requests: r.requests,
            discarded: r.discarded,
            energy_j: r.energy_j,
            latency_s: r.latency_s,
            latency_p95_s: r.latency_p95_s,
            latency_p99_s: r.latency_p99_s,
            cost_mean: r.cost.mean,
            cost_p95: r.cost.p95,
            cost_p99: r.cost.p99,
            arrival_rate_hz: r.arrival_rate_hz,
            abandoned: r.abandoned,
            batch_fixed_s: r.service.map(|s| s.fixed_s),
            batch_per_request_s: r.service.map(|s| s.per_request_s),
            active_w: r.service.map(|s| s.active_w),
            idle_w: r.service.and_then(|s| s.idle_w),
        })?;
    }
    w.flush()?;
    let path = dir.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(summary)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
