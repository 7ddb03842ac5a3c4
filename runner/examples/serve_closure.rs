//! Serving your own batch-inference function with EcoEdge.
//!
//! The function here is a stand-in that costs about 2 ms per batch plus 0.5 ms
//! per input, as a small DNN on a CPU would; EcoEdge queues the requests, forms
//! batches, measures energy and latency per window and lets EcoGD pick the batch
//! size (and the CPU clock where cpufreq is writable).
//!
//! ```text
//! cargo run -p ecoedge-runner --example serve_closure
//! ```

use std::time::Duration;

use ecoedge_core::controller::Settings;
use ecoedge_core::window::WindowSettings;
use ecoedge_runner::service::api::{Service, ServiceOptions};

fn main() -> anyhow::Result<()> {
    let options = ServiceOptions {
        settings: Settings {
            window: WindowSettings {
                requests: 64,
                warmup: 8,
                ..WindowSettings::default()
            },
            max_wait: Some(ecoedge_core::time::Duration::from_millis(20)),
            ..Settings::default()
        },
        ..ServiceOptions::default()
    };
    let mut service = Service::open(&options)?;
    for note in service.notes() {
        eprintln!("note: {note}");
    }
    let infer = |batch: Vec<[f32; 4]>| {
        std::thread::sleep(Duration::from_micros(2_000 + 500 * batch.len() as u64));
        batch
            .iter()
            .map(|x| x.iter().sum::<f32>())
            .collect::<Vec<f32>>()
    };
    let (sums, outcome) = service.serve(infer, |svc| {
        // One client sending a request every 2 ms for 3 seconds.
        let mut tickets = Vec::new();
        for i in 0..1500 {
            let x = i as f32;
            match svc.submit([x, x, x, x]) {
                Ok(t) => tickets.push(t),
                Err(e) => eprintln!("request {i}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        tickets
            .into_iter()
            .filter_map(|t| t.wait().ok())
            .collect::<Vec<f32>>()
    })?;
    let mean_latency_ms = outcome.served.iter().map(|s| s.latency_s()).sum::<f64>()
        / outcome.served.len().max(1) as f64
        * 1e3;
    let last = outcome.windows.last().map(|w| w.config);
    println!(
        "{} answers, {} windows, mean latency {mean_latency_ms:.1} ms, final batch {}",
        sums.len(),
        outcome.windows.len(),
        last.map_or(0, |c| outcome.space.batch_size(&c)),
    );
    Ok(())
}
