//! How `run`, `serve` and `profile` answer SIGINT, SIGTERM, SIGHUP and SIGQUIT.
//!
//! - The first stops the work: the service stops arrivals, drains what it
//!   accepted, restores the board, writes the summary and the logs; a
//!   profile finishes the batch in flight and restores the board.
//! - A service's drain that outlasts `--drain-timeout` is abandoned: what
//!   still waits is left unserved (counted as pending), then the same ending.
//! - A second signal restores the board's clocks at once, from this thread,
//!   and exits with 128 + the signal: no summary, but no pinned clocks.
//!
//! A signal thread (signal-hook's iterator), not handlers, so that restoring
//! (file writes) runs outside the async-signal context.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::board::BoardRestorer;
use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::service::Stop;

/// How often the signal thread looks for a second signal and the drain's end.
const POLL: Duration = Duration::from_millis(20);

/// The stop flags a signal sets, and the board a second signal restores.
#[derive(Debug)]
pub struct SignalWatch {
    /// Set by signals; the service reads it.
    pub stop: Arc<Stop>,
    restorer: Arc<Mutex<Option<BoardRestorer>>>,
}

impl SignalWatch {
    /// Starts the signal thread. The first signal is said on stderr with
    /// `ending`, what the work does then; an ending that outlasts
    /// `drain_timeout`, if given, is abandoned.
    pub fn start(ending: &'static str, drain_timeout: Option<Duration>) -> Result<Self> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
            .context("installing the signal handlers")?;
        let stop = Arc::new(Stop::default());
        let restorer: Arc<Mutex<Option<BoardRestorer>>> = Arc::default();
        let (flags, board) = (Arc::clone(&stop), Arc::clone(&restorer));
        std::thread::Builder::new()
            .name("ecoedge-signals".into())
            .spawn(move || {
                let Some(first) = signals.forever().next() else {
                    return;
                };
                eprintln!(
                    "signal {first}: stopping; {ending} (a second signal restores the board and exits at once)"
                );
                flags.stop.store(true, std::sync::atomic::Ordering::Release);
                let since = Instant::now();
                loop {
                    if let Some(second) = signals.pending().next() {
                        restore_and_exit(&board, second);
                    }
                    if let Some(drain_timeout) = drain_timeout
                        && !flags.abandoned()
                        && since.elapsed() >= drain_timeout
                    {
                        eprintln!(
                            "the drain took over {:.0} s (--drain-timeout): what still waits stays unserved",
                            drain_timeout.as_secs_f64()
                        );
                        flags.abandon.store(true, std::sync::atomic::Ordering::Release);
                    }
                    std::thread::sleep(POLL);
                }
            })
            .context("starting the signal thread")?;
        Ok(SignalWatch { stop, restorer })
    }

    /// From now on a second signal restores the board through `restorer`.
    pub fn guard(&self, restorer: Option<BoardRestorer>) {
        *self.restorer.lock().unwrap_or_else(PoisonError::into_inner) = restorer;
    }

    /// Whether a signal came.
    pub fn stopping(&self) -> bool {
        self.stop.stopping()
    }
}

/// A second signal: the board's clocks back now, then exit with 128 + it.
fn restore_and_exit(board: &Mutex<Option<BoardRestorer>>, signal: i32) -> ! {
    let restorer = board.lock().unwrap_or_else(PoisonError::into_inner).clone();
    match restorer.map(|r| r.restore()) {
        Some(Err(e)) => eprintln!("signal {signal}: exiting; restoring the clocks failed: {e:#}"),
        Some(Ok(())) => eprintln!("signal {signal}: clocks restored; exiting without the summary"),
        None => eprintln!("signal {signal}: exiting without the summary"),
    }
    std::process::exit(128 + signal)
}
