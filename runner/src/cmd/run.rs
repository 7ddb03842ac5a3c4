//! `ecoedge run`: serve real inference requests from an in-process load
//! generator while the optimizer tunes the board (CLI.md). The same service
//! loop as `serve`, with the workload's arrivals and synthetic inputs in place
//! of HTTP clients, so their figures compare.

use anyhow::{Result, bail};
use clap::Args;
use ecoedge_bsp_jetson::MonotonicClock;
use ecoedge_bsp_jetson::sampler::Clock;
use ecoedge_core::time::Duration;
use indicatif::{ProgressBar, ProgressStyle};

use super::service::{ServiceArgs, either_error, watch_signals};
use crate::report::{self, window_line};
use crate::service::{RunSetup, run_workload};
use crate::units::parse_duration;
use crate::workload::Workload;

/// Arguments of `ecoedge run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Workload, e.g. fixed:50ms, bursty:10@500ms, poisson:20, trace:twitter, file:PATH.
    #[arg(long, default_value = "fixed:50ms")]
    pub workload: String,
    /// How long requests arrive (then the queue is drained), e.g. 60s, 10m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// `ecoedge run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let s = &args.service;
    let workload = Workload::parse(&args.workload)?;
    if args.duration == Duration::ZERO {
        bail!("--duration must be positive");
    }
    s.check()?;
    // A trace file is read and checked now, not after minutes of plan building.
    workload.arrivals(s.seed)?;
    let signals = watch_signals(s)?;
    let mut engine = s.inference.load(&s.model, s.seed)?;
    let clock = MonotonicClock::new();
    let (mut board, ctl, record) = s.open(engine.as_mut(), clock)?;
    let settings = *ctl.settings();
    signals.guard(board.restorer());
    if signals.stopping() {
        bail!("interrupted before serving began");
    }

    let bar = ProgressBar::new(args.duration.as_micros() / 1000).with_style(
        ProgressStyle::with_template("{bar:30} {elapsed}/{duration} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let setup = RunSetup {
        workload: workload.clone(),
        seed: s.seed,
        duration: args.duration,
    };
    let start = clock.now();
    let mut last_draw = start;
    let redraw = Duration::from_millis(100);
    let result = run_workload(
        &mut board,
        engine.as_mut(),
        ctl,
        &setup,
        &signals.stop,
        record,
        |p| {
            if let Some(w) = p.window {
                // `suspend`, not `println`: a hidden bar (stderr not a terminal)
                // would swallow the line.
                bar.suspend(|| eprintln!("{}", window_line(p.space, w, &p.config)));
            }
            // Redraw at most ten times a second: the bar must not cost throughput.
            if p.now >= last_draw + redraw {
                last_draw = p.now;
                bar.set_position(p.now.saturating_since(start).as_micros() / 1000);
                bar.set_message(format!(
                    "{} served, {} windows, batch {}",
                    p.served,
                    p.windows,
                    p.space.batch_size(&p.config)
                ));
            }
        },
    );
    bar.finish_and_clear();
    let restored = board.restore();
    // Only a failure before serving began: a fault while serving stops the
    // loop with what it recorded (`out.stopped`).
    let out = result?;
    if signals.stopping() && restored.is_ok() {
        eprintln!("interrupted: queue drained, board restored");
    }

    let summary = s.summarise(&settings, workload.to_string(), &board, &out);
    let emitted = report::emit(
        &out,
        &summary,
        s.output.log_dir.as_deref(),
        s.output.json,
        &format!("{:.1} s", out.end.saturating_since(start).as_secs_f64()),
    );
    either_error(emitted, restored)
}
