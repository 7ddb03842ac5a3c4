//! What a run records, on a board or in the simulator: every served request,
//! every closed window, every refusal and the window it fell in.
//!
//! One [`Recorder`] serves the real-time service loop and the simulator alike,
//! so both attribute requests and refusals to windows by the same rule: a
//! request belongs to the window open when its batch completes, a refusal to
//! the window open when it is seen.

use ecoedge_core::controller::Completion;
use ecoedge_core::cost::{Alpha, Baseline};
use ecoedge_core::space::{Config, Space};
use ecoedge_core::time::Instant;
use ecoedge_core::window::WindowReport;

use crate::logs::LogWriter;
use crate::metrics::Tally;
use crate::served::Served;

/// What a run produced, on a board or in the simulator.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The knob space.
    pub space: Space,
    /// Every served request, in completion order, when the recorder kept
    /// them ([`Recorder::keeping`]); else empty.
    pub served: Vec<Served>,
    /// Every closed window, when kept; else empty.
    pub windows: Vec<WindowReport>,
    /// Refusals seen while each window was open (the last entry: the window
    /// open at the end), when kept; else empty.
    pub refused_by_window: Vec<u64>,
    /// Figures over every served request, kept or not.
    pub tally: Tally,
    /// Windows closed.
    pub windows_closed: usize,
    /// Requests that arrived.
    pub arrived: u64,
    /// Requests refused by the full queue.
    pub refused: u64,
    /// Requests run but answered with an error (among those in `tally`,
    /// whose time and energy they took).
    pub failed: u64,
    /// The config in force at the end.
    pub final_config: Config,
    /// The controller's baseline, once calibrated or given.
    pub baseline: Option<Baseline>,
    /// Time at the end (virtual, or on the service's clock).
    pub end: Instant,
    /// Why the logs are incomplete (the first failed write), if they are.
    pub log_error: Option<String>,
    /// Why the service stopped before serving everything, if it did (a
    /// meter or clock fault): the figures cover what was served until then.
    pub stopped: Option<String>,
}

/// The end of a run, as the controller and the queue saw it.
#[derive(Debug, Clone)]
pub struct Ending {
    /// The knob space.
    pub space: Space,
    /// Requests that arrived.
    pub arrived: u64,
    /// The config in force at the end.
    pub final_config: Config,
    /// The controller's baseline, once calibrated or given.
    pub baseline: Option<Baseline>,
    /// Time at the end.
    pub end: Instant,
}

/// Collects a run's requests, windows and refusals as they happen: into
/// running figures always, into memory when keeping (the simulator, whose
/// comparisons split a run into phases), into the CSV logs when given them.
#[derive(Debug)]
pub struct Recorder {
    keep: bool,
    logs: Option<LogWriter>,
    tally: Tally,
    served: Vec<Served>,
    windows: Vec<WindowReport>,
    refused_by_window: Vec<u64>,
    windows_closed: usize,
    /// Refusals recorded so far, and those of them seen in the open window.
    refused: u64,
    refused_open: u64,
}

impl Recorder {
    /// A recorder that keeps every request and window in memory.
    pub fn keeping(alpha: Alpha) -> Self {
        Self::new(alpha, true, None)
    }

    /// A recorder in fixed memory: running figures only, rows streamed to
    /// `logs` if given.
    pub fn streaming(alpha: Alpha, logs: Option<LogWriter>) -> Self {
        Self::new(alpha, false, logs)
    }

    fn new(alpha: Alpha, keep: bool, logs: Option<LogWriter>) -> Self {
        Recorder {
            keep,
            logs,
            tally: Tally::new(alpha),
            served: Vec::new(),
            windows: Vec::new(),
            refused_by_window: Vec::new(),
            windows_closed: 0,
            refused: 0,
            refused_open: 0,
        }
    }

    /// Windows closed so far; the index of the window open now.
    pub fn windows(&self) -> usize {
        self.windows_closed
    }

    /// Records a batch that completed at `done`, holding requests that arrived
    /// at `arrivals`, as the controller's `completion` reports it. The
    /// requests belong to the window open until now, even when this batch
    /// closes it.
    pub fn batch_done(
        &mut self,
        arrivals: impl IntoIterator<Item = Instant>,
        done: Instant,
        completion: &Completion,
    ) {
        let window = self.windows_closed as u32;
        for arrival in arrivals {
            let s = Served {
                arrival,
                done,
                energy_j: completion.energy_j,
                window,
            };
            self.tally.add(s.energy_j, s.latency_s());
            if let Some(logs) = &mut self.logs {
                logs.request(&s);
            }
            if self.keep {
                self.served.push(s);
            }
        }
    }

    /// Records the window a batch closed, with the controller's baseline
    /// (call after [`Recorder::batch_done`] and after noting refusals seen up
    /// to then).
    pub fn window_closed(&mut self, completion: &Completion, baseline: Option<Baseline>) {
        if let Some(b) = baseline {
            self.tally.set_baseline(b);
        }
        let Some(w) = completion.window else {
            return;
        };
        if let Some(logs) = &mut self.logs {
            logs.window(&w, self.refused_open);
        }
        if self.keep {
            self.windows.push(w);
            self.refused_by_window.push(self.refused_open);
        }
        self.windows_closed += 1;
        self.refused_open = 0;
    }

    /// Attributes refusals counted so far (`refused`, a running total) beyond
    /// those already recorded to the window open now.
    pub fn refusals(&mut self, refused: u64) {
        let new = refused.saturating_sub(self.refused);
        self.refused += new;
        self.refused_open += new;
    }

    /// Flushes the logs if a second has passed since the last flush: call it
    /// from the loop, busy or idle.
    pub fn tick(&mut self) {
        if let Some(logs) = &mut self.logs {
            logs.tick();
        }
    }

    /// The outcome: everything recorded, and how the run ended; the logs
    /// are flushed and closed.
    pub fn finish(mut self, ending: Ending) -> Outcome {
        if let Some(b) = ending.baseline {
            self.tally.set_baseline(b);
        }
        if self.keep {
            self.refused_by_window.push(self.refused_open);
        }
        let logged = self.logs.take().map_or(Ok(()), LogWriter::finish);
        Outcome {
            space: ending.space,
            served: self.served,
            windows: self.windows,
            refused_by_window: self.refused_by_window,
            tally: self.tally,
            windows_closed: self.windows_closed,
            arrived: ending.arrived,
            refused: self.refused,
            failed: 0,
            final_config: ending.final_config,
            baseline: ending.baseline,
            end: ending.end,
            log_error: logged.err().map(|e| format!("{e:#}")),
            stopped: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LogDir;
    use ecoedge_core::time::Duration;

    fn completion(window: Option<WindowReport>) -> Completion {
        Completion {
            served: 2,
            energy_j: 0.5,
            window,
            apply: None,
        }
    }

    /// Two windows' worth of events: refusals before, inside and after the
    /// first window's close, and a request after it.
    fn play(mut r: Recorder) -> Outcome {
        r.refusals(2);
        r.refusals(2);
        let closing = completion(Some(WindowReport::measured(
            0,
            Default::default(),
            1.0,
            0.0,
        )));
        let at = |us| Instant::from_micros(us);
        r.batch_done([at(1), at(2)], at(10), &closing);
        r.refusals(3);
        r.window_closed(&closing, None);
        r.refusals(4);
        r.batch_done([at(11)], at(20), &completion(None));
        r.finish(Ending {
            space: Space::default(),
            arrived: 7,
            final_config: Config::default(),
            baseline: Some(Baseline::new(1.0, 1e-5).unwrap()),
            end: at(20),
        })
    }

    #[test]
    fn requests_and_refusals_go_to_the_window_open_when_seen() {
        let out = play(Recorder::keeping(Alpha::default()));
        assert_eq!(out.refused_by_window, [3, 1]);
        assert_eq!(out.refused, 4);
        let windows: Vec<u32> = out.served.iter().map(|s| s.window).collect();
        assert_eq!(windows, [0, 0, 1]);
        assert_eq!(out.served[0].latency(), Duration::from_micros(9));
        assert_eq!((out.windows.len(), out.windows_closed), (1, 1));
        assert_eq!(out.tally.stats(0).served, 3);
    }

    #[test]
    fn a_streaming_recorder_keeps_nothing_and_logs_everything() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogWriter::create(
            &LogDir {
                dir: dir.path().to_path_buf(),
                force: false,
            },
            &Space::default(),
        )
        .unwrap();
        let out = play(Recorder::streaming(Alpha::default(), Some(logs)));
        let kept = play(Recorder::keeping(Alpha::default()));
        assert!(out.served.is_empty() && out.windows.is_empty());
        assert!(out.refused_by_window.is_empty());
        assert_eq!((out.refused, out.windows_closed), (4, 1));
        assert_eq!(out.tally.stats(4), kept.tally.stats(4));
        assert_eq!(out.log_error, None);
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        let requests = read("requests.csv");
        assert_eq!(requests.lines().count(), 1 + 3, "{requests}");
        assert!(
            requests.lines().last().unwrap().ends_with(",1"),
            "{requests}"
        );
        let windows = read("windows.csv");
        let mut lines = windows.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        let refused = header.iter().position(|&h| h == "refused").unwrap();
        assert_eq!(row[refused], "3", "refusals of the first window: {windows}");
        assert_eq!(lines.next(), None);
    }
}
