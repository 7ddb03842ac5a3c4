//! What a run reports: the summary JSON of CLI.md and the CSV logs.

use std::path::Path;

use anyhow::{Result, bail};
use ecoedge_core::space::{Config, Knob, Space};
use ecoedge_core::window::{WindowReport, WindowSettings};
use serde::Serialize;

use crate::board::MeterStats;
use crate::knobs::ConfigJson;
use crate::logs;
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
    /// Requests served: run, and answered with their outputs.
    pub served: u64,
    /// Requests run but answered with an error (the engine failed on them).
    pub failed: u64,
    /// Requests refused (a full queue, or the service shutting down).
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
    /// How the board's meter fared (`run` and `serve`; the simulator's
    /// meter does not fail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meter: Option<MeterStats>,
    /// The inference engine and what became of the GPU clock (`run` and
    /// `serve`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineJson>,
    /// Why the service stopped before serving everything, when it did: the
    /// figures cover what was served until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// The summary's `engine` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineJson {
    /// `tract` or `ort`.
    pub name: String,
    /// ONNX Runtime's execution provider; `cpu` for tract.
    pub ep: String,
    /// The GPU clock: `searched`; `pinned` at its lowest level, as inference
    /// ran on the CPU; or `untouched`, not a knob of this run.
    pub gpu_clock: &'static str,
}

impl EngineJson {
    /// What `space` made of the GPU clock, for an engine `name` on `ep`.
    pub fn new(name: String, ep: String, space: &Space) -> Self {
        let gpu_clock = match space.position(Knob::Gpu).map(|d| space.dims()[d].len()) {
            Some(1) => "pinned",
            Some(_) => "searched",
            None => "untouched",
        };
        EngineJson {
            name,
            ep,
            gpu_clock,
        }
    }
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
            "requests: {} arrived, {} served, {} failed, {} refused, {} pending",
            r.arrived, r.served, r.failed, r.refused, r.pending
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
        if self.baseline.is_some() {
            println!(
                "cost:     mean {:.3}, p99 {:.3} (1 = every knob at max)",
                self.cost.mean, self.cost.p99
            );
        } else {
            println!("cost:     unknown (no calibration window closed: no baseline)");
        }
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
        if let Some(e) = &self.engine {
            println!("engine:   {} ({}), GPU clock {}", e.name, e.ep, e.gpu_clock);
        }
        if let Some(m) = self.meter {
            println!(
                "meter:    {} samples, {} errors, {:.3} s of gaps",
                m.samples, m.errors, m.gaps_s
            );
        }
        if let Some(why) = &self.stopped {
            println!("stopped:  {why}");
        }
    }
}

impl Summary {
    /// The summary of `out`: costs against the run's own baseline, energy
    /// charged per `window.scope` and reported as coming from `source`.
    pub fn of(meta: Meta, out: &Outcome, window: &WindowSettings, source: &'static str) -> Self {
        let s = out.tally.stats(out.refused);
        Summary {
            board: meta.board,
            device: meta.device,
            model: meta.model,
            workload: meta.workload,
            optimizer: meta.optimizer,
            seed: meta.seed,
            requests: Requests {
                arrived: out.arrived,
                served: s.served - out.failed,
                failed: out.failed,
                refused: out.refused,
                pending: out.arrived - out.refused - s.served,
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
                mean: s.mean_cost,
                p99: s.p99_cost,
            },
            baseline: out.baseline.map(|b| BaselineJson {
                energy_j: b.energy_j(),
                latency_s: b.latency_s(),
            }),
            windows: out.windows_closed,
            final_config: ConfigJson::new(&out.space, &out.final_config),
            meter: None,
            engine: None,
            stopped: out.stopped.clone(),
        }
    }
}

/// `config` in words, each knob of `space` in its unit: `cpu 1190 MHz, gpu
/// 114 MHz, batch 4`.
pub fn config_text(space: &Space, config: &Config) -> String {
    let c = ConfigJson::new(space, config);
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
}

/// The live line a closed window prints on stderr: the config it measured,
/// energy per request, latency, cost, and the optimizer's move.
pub fn window_line(space: &Space, w: &WindowReport, next: &Config) -> String {
    let moved = if *next == w.config {
        "stays".to_string()
    } else {
        format!("-> {}", config_text(space, next))
    };
    format!(
        "window {:>4}: {} | {:.2} mJ/req, {:.1} ms, cost {:.3} | {moved}",
        w.index,
        config_text(space, &w.config),
        w.energy_j * 1e3,
        w.latency_s * 1e3,
        w.cost.mean
    )
}

/// Ends a run the way every command does: the summary into `log_dir` if
/// asked (next to the logs the run wrote), then on stdout as JSON or for
/// people (`span` says how long it ran); an error if the logs are incomplete.
pub fn emit(
    out: &Outcome,
    summary: &Summary,
    log_dir: Option<&Path>,
    json: bool,
    span: &str,
) -> Result<()> {
    if let Some(dir) = log_dir {
        logs::write_summary(dir, &(serde_json::to_string_pretty(summary)? + "\n"))?;
    }
    if json {
        println!("{}", serde_json::to_string(summary)?);
    } else {
        summary.print(span);
    }
    if let Some(why) = &out.stopped {
        bail!("stopped early (summary and logs written): {why}");
    }
    if let Some(e) = &out.log_error {
        bail!("the logs are incomplete: {e}");
    }
    Ok(())
}
