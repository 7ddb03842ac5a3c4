//! `GET /metrics`: the service's counters, histograms and gauges in the
//! Prometheus (OpenMetrics) text format, with the official `prometheus-client`
//! crate. Every metric is an atomic that the HTTP handlers and the serving
//! loop update without a lock, so a scrape never blocks serving; encoding
//! takes only the registry's read of those atomics.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// How an inference request ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered with outputs.
    Served,
    /// Refused: queue full, or the service shutting down (503).
    Refused,
    /// The engine failed on its batch (500).
    Failed,
    /// Not a valid request for this model (400).
    Invalid,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Served,
        Outcome::Refused,
        Outcome::Failed,
        Outcome::Invalid,
    ];

    fn label(self) -> OutcomeLabel {
        let outcome = match self {
            Outcome::Served => "served",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Invalid => "invalid",
        };
        OutcomeLabel { outcome }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric `serve` exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<OutcomeLabel, Counter>,
    latency: Histogram,
    batch_size: Histogram,
    queue_depth: Gauge,
    energy: Counter<f64, AtomicU64>,
    power: FloatGauge,
    energy_per_request: FloatGauge,
    cpu_hz: FloatGauge,
    gpu_hz: FloatGauge,
    emc_hz: FloatGauge,
    batch_setting: Gauge,
    window_cost: FloatGauge,
    windows: Counter,
}

/// Latency buckets, seconds: 1 ms to 30 s, roughly three per decade.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

impl Metrics {
    /// The metrics of a service running `model` on `board`.
    pub fn new(model: &str, board: &str, max_batch: u32) -> Self {
        let mut registry = Registry::with_prefix("ecoedge");
        let requests = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "requests",
            "Inference requests by outcome: served, refused (503: queue full or shutting down), failed (500: engine error), invalid (400)",
            requests.clone(),
        );
        // Every outcome from the start: a series that appears only on its
        // first event hides it from `rate()` and from alerts on it.
        for outcome in Outcome::ALL {
            drop(requests.get_or_create(&outcome.label()));
        }
        let latency = Histogram::new(LATENCY_BUCKETS);
        registry.register_with_unit(
            "request_latency",
            "Arrival to answer of served requests",
            Unit::Seconds,
            latency.clone(),
        );
        let batch_size = Histogram::new((1..=max_batch).map(f64::from));
        registry.register(
            "batch_size",
            "Samples per inference batch run",
            batch_size.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Samples waiting in the queue and the batch buffer",
            queue_depth.clone(),
        );
        let energy = Counter::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "energy",
            "Energy the board's meter measured since the service started",
            Unit::Joules,
            energy.clone(),
        );
        let power = FloatGauge::default();
        registry.register_with_unit(
            "power",
            "Mean board power over the last batch",
            Unit::Other("watts".into()),
            power.clone(),
        );
        let energy_per_request = FloatGauge::default();
        registry.register_with_unit(
            "energy_per_request",
            "Mean energy per request of the last closed window",
            Unit::Joules,
            energy_per_request.clone(),
        );
        let cpu_hz = FloatGauge::default();
        registry.register_with_unit(
            "cpu_frequency",
            "CPU clock set by the optimizer (0: not a knob of this board)",
            Unit::Other("hertz".into()),
            cpu_hz.clone(),
        );
        let gpu_hz = FloatGauge::default();
        registry.register_with_unit(
            "gpu_frequency",
            "GPU clock set by the optimizer (0: not a knob of this board)",
            Unit::Other("hertz".into()),
            gpu_hz.clone(),
        );
        let emc_hz = FloatGauge::default();
        registry.register_with_unit(
            "memory_frequency",
            "Memory (EMC) clock set by the optimizer (0: not tuned)",
            Unit::Other("hertz".into()),
            emc_hz.clone(),
        );
        let batch_setting = Gauge::default();
        registry.register(
            "batch_size_setting",
            "Batch size set by the optimizer",
            batch_setting.clone(),
        );
        let window_cost = FloatGauge::default();
        registry.register(
            "window_cost",
            "Mean cost alpha*E/E0 + (1-alpha)*L/L0 of the last closed window",
            window_cost.clone(),
        );
        let windows = Counter::default();
        registry.register("windows", "Measurement windows closed", windows.clone());
        registry.register(
            "build",
            "Build and run information",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("model", model.to_string()),
                ("board", board.to_string()),
            ]),
        );
        Metrics {
            registry,
            requests,
            latency,
            batch_size,
            queue_depth,
            energy,
            power,
            energy_per_request,
            cpu_hz,
            gpu_hz,
            emc_hz,
            batch_setting,
            window_cost,
            windows,
        }
    }

    /// Counts a request that ended as `outcome`.
    pub fn request(&self, outcome: Outcome) {
        self.requests.get_or_create(&outcome.label()).inc();
    }

    /// Requests counted as `outcome` so far.
    pub fn requests(&self, outcome: Outcome) -> u64 {
        self.requests.get_or_create(&outcome.label()).get()
    }

    /// A served request's latency.
    pub fn latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    /// A batch run: its size, the energy it and the idle time before it
    /// took, and the mean power over it.
    pub fn batch(&self, size: usize, energy_j: f64, power_w: f64) {
        self.batch_size.observe(size as f64);
        self.energy.inc_by(energy_j.max(0.0));
        self.power.set(power_w);
    }

    /// Samples waiting.
    pub fn queue_depth(&self, waiting: usize) {
        self.queue_depth.set(waiting as i64);
    }

    /// The knob settings in force: clocks in Hz (`None`: not a knob) and the batch size.
    pub fn config(
        &self,
        cpu_hz: Option<f64>,
        gpu_hz: Option<f64>,
        emc_hz: Option<f64>,
        batch: u32,
    ) {
        self.cpu_hz.set(cpu_hz.unwrap_or(0.0));
        self.gpu_hz.set(gpu_hz.unwrap_or(0.0));
        self.emc_hz.set(emc_hz.unwrap_or(0.0));
        self.batch_setting.set(i64::from(batch));
    }

    /// A closed window's energy per request and mean cost.
    pub fn window(&self, energy_per_request_j: f64, cost: f64) {
        self.windows.inc();
        self.energy_per_request.set(energy_per_request_j);
        self.window_cost.set(cost);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric_with_its_unit() {
        let m = Metrics::new("mlp", "host", 16);
        m.request(Outcome::Served);
        m.request(Outcome::Served);
        m.request(Outcome::Refused);
        m.latency(0.015);
        m.batch(4, 0.5, 12.0);
        m.config(Some(1.2e9), None, None, 4);
        m.window(0.01, 0.7);
        let text = m.encode();
        for line in [
            "ecoedge_requests_total{outcome=\"served\"} 2",
            "ecoedge_requests_total{outcome=\"refused\"} 1",
            "ecoedge_requests_total{outcome=\"failed\"} 0",
            "ecoedge_request_latency_seconds_count 1",
            "ecoedge_batch_size_count 1",
            "ecoedge_energy_joules_total 0.5",
            "ecoedge_power_watts 12.0",
            "ecoedge_cpu_frequency_hertz 1200000000.0",
            "ecoedge_batch_size_setting 4",
            "ecoedge_window_cost 0.7",
            "ecoedge_windows_total 1",
            "ecoedge_energy_per_request_joules 0.01",
            "ecoedge_build_info{version=",
        ] {
            assert!(text.contains(line), "missing `{line}` in:\n{text}");
        }
        assert_eq!(m.requests(Outcome::Served), 2);
    }
}
