//! What a run records, on a board or in the simulator: every served request,
//! every closed window, every refusal and the window it fell in.
//!
//! One [`Recorder`] serves the real-time service loop and the simulator alike,
//! so both attribute requests and refusals to windows by the same rule: a
//! request belongs to the window open when its batch completes, a refusal to
//! the window open when it is seen.

use ecoedge_core::controller::Completion;
use ecoedge_core::cost::Baseline;
use ecoedge_core::space::{Config, Space};
use ecoedge_core::time::{Duration, Instant};
use ecoedge_core::window::WindowReport;

/// One served request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Served {
    /// When it arrived.
    pub arrival: Instant,
    /// When its batch completed.
    pub done: Instant,
    /// Energy charged to it, joules.
    pub energy_j: f64,
    /// Window it completed in (calibration windows included).
    pub window: u32,
}

impl Served {
    /// Arrival to completion.
    pub fn latency(&self) -> Duration {
        self.done.saturating_since(self.arrival)
    }

    /// Arrival to completion, seconds.
    pub fn latency_s(&self) -> f64 {
        self.latency().as_secs_f64()
    }
}

/// What a run produced, on a board or in the simulator.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The knob space.
    pub space: Space,
    /// Every served request, in completion order.
    pub served: Vec<Served>,
    /// Every closed window.
    pub windows: Vec<WindowReport>,
    /// Requests that arrived.
    pub arrived: u64,
    /// Requests refused by the full queue.
    pub refused: u64,
    /// For each refusal, the window open when it was seen.
    pub refused_in: Vec<u32>,
    /// The config in force at the end.
    pub final_config: Config,
    /// The controller's baseline, once calibrated or given.
    pub baseline: Option<Baseline>,
    /// Time at the end (virtual, or on the service's clock).
    pub end: Instant,
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

/// Collects a run's requests, windows and refusals as they happen.
#[derive(Debug, Default)]
pub struct Recorder {
    served: Vec<Served>,
    windows: Vec<WindowReport>,
    refused_in: Vec<u32>,
}

impl Recorder {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Windows closed so far; the index of the window open now.
    pub fn windows(&self) -> usize {
        self.windows.len()
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
        let window = self.windows.len() as u32;
        self.served
            .extend(arrivals.into_iter().map(|arrival| Served {
                arrival,
                done,
                energy_j: completion.energy_j,
                window,
            }));
    }

    /// Records the window a batch closed (call after [`Recorder::batch_done`]
    /// and after noting refusals seen up to then).
    pub fn window_closed(&mut self, completion: &Completion) {
        if let Some(w) = completion.window {
            self.windows.push(w);
        }
    }

    /// Attributes refusals counted so far (`refused`, a running total) beyond
    /// those already recorded to the window open now.
    pub fn refusals(&mut self, refused: u64) {
        let window = self.windows.len() as u32;
        let seen = self.refused_in.len() as u64;
        self.refused_in.extend((seen..refused).map(|_| window));
    }

    /// The outcome: everything recorded, and how the run ended.
    pub fn finish(self, ending: Ending) -> Outcome {
        Outcome {
            space: ending.space,
            served: self.served,
            windows: self.windows,
            arrived: ending.arrived,
            refused: self.refused_in.len() as u64,
            refused_in: self.refused_in,
            final_config: ending.final_config,
            baseline: ending.baseline,
            end: ending.end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(window: Option<WindowReport>) -> Completion {
        Completion {
            served: 2,
            energy_j: 0.5,
            window,
            apply: None,
        }
    }

    #[test]
    fn requests_and_refusals_go_to_the_window_open_when_seen() {
        let mut r = Recorder::new();
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
        r.window_closed(&closing);
        r.refusals(4);
        r.batch_done([at(11)], at(20), &completion(None));
        let out = r.finish(Ending {
            space: Space::default(),
            arrived: 7,
            final_config: Config::default(),
            baseline: None,
            end: at(20),
        });
        assert_eq!(out.refused_in, [0, 0, 0, 1]);
        assert_eq!(out.refused, 4);
        let windows: Vec<u32> = out.served.iter().map(|s| s.window).collect();
        assert_eq!(windows, [0, 0, 1]);
        assert_eq!(out.served[0].latency(), Duration::from_micros(9));
        assert_eq!(out.windows.len(), 1);
    }
}
