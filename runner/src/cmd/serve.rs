//! `ecoedge serve`: the inference service, KServe v2 over HTTP (CLI.md).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use ecoedge_bsp_jetson::MonotonicClock;
use ecoedge_bsp_jetson::sampler::Clock;

use super::service::{ServiceArgs, model_path, stop_on_signals};
use crate::capacity::QUEUE;
use crate::inference::Engine;
use crate::report;
use crate::serve::http::{App, router};
use crate::serve::metrics::Metrics;
use crate::serve::{SharedQueue, serve_queue};

/// Arguments of `ecoedge serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port, said on stderr).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Most samples waiting before requests are refused with 503.
    #[arg(long, default_value_t = (QUEUE - 1) as u32)]
    pub queue: u32,
    /// Largest request body, e.g. 64MiB (bigger ones get 400).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub max_body: usize,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// `64MiB`, `512KiB`, `1000`: a size in bytes.
fn parse_size(s: &str) -> Result<usize, String> {
    let (n, scale) = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)]
        .iter()
        .find_map(|(unit, scale)| s.strip_suffix(unit).map(|n| (n, *scale)))
        .unwrap_or((s, 1));
    n.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("size `{s}`: expected a positive number of bytes, KiB, MiB or GiB"))
}

/// The model's name in URLs: the built-in name, or the ONNX file's stem.
fn model_name(model: &str, path: &Path) -> String {
    if ecoedge_models::Builtin::from_name(model).is_some() {
        return model.to_string();
    }
    path.file_stem()
        .map_or_else(|| model.to_string(), |s| s.to_string_lossy().into_owned())
}

/// `ecoedge serve`.
pub fn run(args: &ServeArgs) -> Result<()> {
    let s = &args.service;
    s.check()?;
    if args.queue == 0 || args.queue as usize > QUEUE - 1 {
        bail!("--queue must be in 1..={}", QUEUE - 1);
    }
    let stop = stop_on_signals()?;
    let name = model_name(&s.model, &model_path(&s.model)?);
    let mut engine = s.load_engine()?;
    let clock = MonotonicClock::new();
    let (mut board, ctl, record) = s.open(&mut engine, clock)?;
    let settings = *ctl.settings();
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("--listen {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;

    let queue = Arc::new(SharedQueue::new(args.queue as usize));
    let metrics = Arc::new(Metrics::new(&name, board.name, s.max_batch));
    let app = Arc::new(App {
        model: name.clone(),
        signature: engine.signature().clone(),
        queue: Arc::clone(&queue),
        clock,
        metrics: Arc::clone(&metrics),
        max_body: args.max_body,
        body_timeout: Duration::from_secs(30),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ecoedge-http")
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let (stop_http, queue_http) = (Arc::clone(&stop), Arc::clone(&queue));
    let server = runtime.spawn(async move {
        axum::serve(listener, router(app))
            .with_graceful_shutdown(async move {
                while !stop_http.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // Refuse from now on; the loop drains what was accepted and
                // the handlers waiting for it answer before the server ends.
                queue_http.close();
            })
            .await
    });
    eprintln!("serving {name} on http://{addr} (KServe v2; /metrics)");

    let start = clock.now();
    let result = serve_queue(&mut board, &mut engine, ctl, &queue, clock, &metrics, record, true);
    // The loop ends once the queue is closed and drained, or on an error:
    // then refuse everything and let the server finish its answers.
    stop.store(true, Ordering::Release);
    queue.close();
    let served = runtime.block_on(server);
    runtime.shutdown_timeout(Duration::from_secs(5));
    let restored = board.restore();
    let out = result?;
    restored?;
    served
        .map_err(|e| anyhow!("the HTTP server stopped: {e}"))?
        .context("the HTTP server")?;
    eprintln!("stopped: every accepted request answered, board restored");

    let summary = s.summarise(&settings, format!("http:{addr}"), &board, &out);
    report::emit(
        &out,
        &summary,
        s.log_dir.as_deref(),
        s.json,
        &format!("{:.1} s", out.end.saturating_since(start).as_secs_f64()),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2 KiB"), Ok(2048));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
    }
}
