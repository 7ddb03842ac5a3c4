//! `ecoedge serve`: the inference service, KServe v2 over HTTP (CLI.md).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use ecoedge_bsp_jetson::MonotonicClock;
use ecoedge_bsp_jetson::sampler::Clock;
use ecoedge_core::time::Duration as CoreDuration;

use super::engine::model_path;
use super::service::{ServiceArgs, either_error, watch_signals};
use crate::capacity::QUEUE;
use crate::report;
use crate::serve::{Listen, serve};
use crate::units::parse_duration;

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
    /// Longest a client may take to send a request's headers or its body
    /// (a slow body gets 408), and longest an idle connection is kept.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub client_timeout: CoreDuration,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// `64MiB`, `512KiB`, `1000`: a size in bytes.
fn parse_size(s: &str) -> Result<usize, String> {
    let (n, scale) = [
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("B", 1),
    ]
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
    if args.client_timeout == CoreDuration::ZERO {
        bail!("--client-timeout must be positive");
    }
    let signals = watch_signals(s)?;
    let name = model_name(&s.model, &model_path(&s.model)?);
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("--listen {}", args.listen))?;
    let addr = listener.local_addr()?;
    let mut engine = s.inference.load(&s.model, s.seed)?;
    let clock = MonotonicClock::new();
    let (mut board, ctl, record) = s.open(engine.as_mut(), clock)?;
    let settings = *ctl.settings();
    signals.guard(board.restorer());
    if signals.stopping() {
        bail!("interrupted before serving began");
    }
    eprintln!("serving {name} on http://{addr} (KServe v2; /metrics)");
    let listen = Listen {
        listener,
        model: name,
        queue: args.queue as usize,
        max_body: args.max_body,
        client_timeout: Duration::from_micros(args.client_timeout.as_micros()),
    };
    let start = clock.now();
    let result = serve(
        &mut board,
        engine.as_mut(),
        ctl,
        record,
        listen,
        &signals.stop,
        true,
    );
    // A failure of the restore is said even when serving failed first.
    let out = either_error(result, board.restore())?;
    eprintln!("stopped: every accepted request answered, board restored");

    let summary = s.summarise(&settings, format!("http:{addr}"), &board, &out);
    report::emit(
        &out,
        &summary,
        s.output.log_dir.as_deref(),
        s.output.json,
        &format!("{:.1} s", out.end.saturating_since(start).as_secs_f64()),
    )
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
