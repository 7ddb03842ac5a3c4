//! Controller behaviour: phases, baseline, energy attribution, configs, errors.

use ecoedge_core::controller::{BatchDoneError, PollBatchError, ReadingError, SetupError};
use ecoedge_core::cost::{CostError, EnergyScope};
use ecoedge_core::prelude::*;
use ecoedge_core::space::ConfigError;
use ecoedge_core::window::WindowError;

type Batch = heapless::Vec<Request<u32>, 4>;

fn space() -> Space {
    let cpu = Dimension::new(Knob::Cpu, &[1_000, 2_000, 3_000]).unwrap();
    Space::new(&[cpu, Dimension::batch(4).unwrap()]).unwrap()
}

fn settings(requests: u32, warmup: u32) -> Settings {
    Settings {
        window: WindowSettings {
            requests,
            warmup,
            ..WindowSettings::default()
        },
        ..Settings::default()
    }
}

fn t(ms: u64) -> Instant {
    Instant::from_micros(ms * 1_000)
}

/// Proposes a scripted sequence of configs and records what it observed.
struct Script {
    start: Config,
    next: Vec<Config>,
    seen: Vec<WindowReport>,
}

impl Optimizer for Script {
    fn name(&self) -> &'static str {
        "script"
    }
    fn start(&mut self, _space: &Space) -> Config {
        self.start
    }
    fn step(&mut self, _space: &Space, report: &WindowReport) -> Config {
        self.seen.push(*report);
        if self.next.is_empty() {
            report.config
        } else {
            self.next.remove(0)
        }
    }
}

/// Serves `n` full batches, arrivals every `gap` ms, each batch taking `service`
/// ms and `joules` joules, with `idle_w` watts between; returns the last completion.
struct Rig<O: Optimizer> {
    ctl: Controller<u32, O, 4>,
    queue: RingQueue<u32, 128>,
    batch: Batch,
    now: u64,
    energy: f64,
}

impl<O: Optimizer> Rig<O> {
    fn new(ctl: Controller<u32, O, 4>) -> Self {
        Rig {
            ctl,
            queue: RingQueue::new(),
            batch: Batch::new(),
            now: 0,
            energy: 0.0,
        }
    }

    /// One batch: `size` arrivals `gap` ms apart, then `service` ms of work costing
    /// `joules`; idle power `idle_w` while waiting.
    fn batch(&mut self, gap: u64, service: u64, joules: f64, idle_w: f64) -> Completion {
        loop {
            self.now += gap;
            self.energy += idle_w * gap as f64 / 1_000.0;
            self.queue.push(t(self.now), 0).unwrap();
            let n = self
                .ctl
                .poll_batch(t(self.now), self.energy, &mut self.queue, &mut self.batch)
                .unwrap();
            if n > 0 {
                break;
            }
        }
        self.now += service;
        self.energy += joules;
        self.ctl
            .handle_batch_done(t(self.now), self.energy)
            .unwrap()
    }
}

#[test]
fn calibrates_at_max_then_optimizes() {
    let s = space();
    let low = s.config(&[0, 3]).unwrap();
    let script = Script {
        start: low,
        next: vec![],
        seen: vec![],
    };
    let ctl = Controller::new(s.clone(), settings(8, 4), script).unwrap();
    assert_eq!(ctl.phase(), Phase::Calibrating { window: 0 });
    assert_eq!(ctl.config(), s.max_config());
    let mut rig = Rig::new(ctl);

    // Window 0: 4 warm-up + 4 measured requests at max; batches of 4 arriving 1 ms
    // apart, served in 10 ms for 2 J, no idle power.
    assert_eq!(rig.batch(1, 10, 2.0, 0.0).window, None);
    let c = rig.batch(1, 10, 2.0, 0.0);
    let w = c.window.expect("window 0 closes after 8 requests");
    assert_eq!((w.index, w.requests, w.discarded), (0, 4, 4));
    assert!((w.energy_j - 0.5).abs() < 1e-12);
    // Latencies of a batch arriving at 1,2,3,4 ms after the previous and done 10 ms
    // after the last: 13, 12, 11, 10 ms.
    assert!((w.latency_s - 0.0115).abs() < 1e-9);
    assert_eq!(w.cost.mean, 1.0, "the calibration window is the baseline");
    assert_eq!(w.cost.p99, None);
    let b = rig.ctl.baseline().unwrap();
    assert!((b.energy_j() - 0.5).abs() < 1e-12 && (b.latency_s() - 0.0115).abs() < 1e-9);
    assert_eq!(rig.ctl.phase(), Phase::Optimizing);
    assert_eq!(
        c.apply,
        Some(low),
        "the optimizer's start config is applied"
    );
    assert_eq!(rig.ctl.config(), low);

    // Window 1 at `low` starts with a warm-up; energy halves, so cost drops.
    assert!(rig.batch(1, 10, 1.0, 0.0).window.is_none());
    let w = rig.batch(1, 10, 1.0, 0.0).window.unwrap();
    assert_eq!((w.index, w.config, w.discarded), (1, low, 4));
    assert!((w.cost.mean - 0.75).abs() < 1e-9);
    assert!(w.cost.p99.is_some());
    assert_eq!(rig.ctl.optimizer().seen.len(), 1);
    assert_eq!(rig.ctl.served(), 16);
}

#[test]
fn optimizer_starting_at_max_gets_the_calibration_window() {
    let s = space();
    let script = Script {
        start: s.max_config(),
        next: vec![s.config(&[1, 3]).unwrap()],
        seen: vec![],
    };
    let mut rig = Rig::new(Controller::new(s.clone(), settings(4, 0), script).unwrap());
    let c = rig.batch(1, 10, 2.0, 0.0);
    assert_eq!(
        rig.ctl.optimizer().seen.len(),
        1,
        "no window wasted re-measuring max"
    );
    assert_eq!(c.apply, Some(s.config(&[1, 3]).unwrap()));
}

#[test]
fn several_calibration_windows_and_a_given_baseline() {
    let s = space();
    let script = || Script {
        start: s.max_config(),
        next: vec![],
        seen: vec![],
    };
    let mut rig = Rig::new(
        Controller::new(
            s.clone(),
            Settings {
                calibration_windows: 3,
                ..settings(4, 0)
            },
            script(),
        )
        .unwrap(),
    );
    for w in 0..3 {
        assert_eq!(rig.ctl.phase(), Phase::Calibrating { window: w });
        assert_eq!(rig.batch(1, 10, 2.0, 0.0).window.map(|r| r.index), Some(w));
    }
    assert_eq!(rig.ctl.phase(), Phase::Optimizing);

    let given = Settings {
        baseline: Some(Baseline::new(1.0, 1.0).unwrap()),
        ..settings(4, 0)
    };
    let ctl: Controller<u32, _, 4> = Controller::new(s.clone(), given, script()).unwrap();
    assert_eq!(ctl.phase(), Phase::Optimizing);
    assert_eq!(ctl.baseline(), Some(Baseline::new(1.0, 1.0).unwrap()));
}

#[test]
fn total_scope_charges_idle_energy_active_does_not() {
    for (scope, want) in [
        (EnergyScope::Total, (2.0 + 3.0) / 4.0),
        (EnergyScope::Active, 2.0 / 4.0),
    ] {
        let mut set = settings(4, 0);
        set.window.scope = scope;
        let mut rig = Rig::new(Controller::new(space(), set, Fixed::max()).unwrap());
        // 4 arrivals 1 s apart at 1 W idle before the batch starts: 3 J idle
        // between first poll and release, plus 2 J of batch.
        let w = rig.batch(1_000, 10, 2.0, 1.0).window.unwrap();
        assert!(
            (w.energy_j - want).abs() < 1e-9,
            "{scope:?}: {}",
            w.energy_j
        );
    }
}

#[test]
fn max_wait_releases_partial_batches_and_says_when() {
    let set = Settings {
        max_wait: Some(Duration::from_millis(5)),
        ..settings(4, 0)
    };
    let mut ctl: Controller<u32, Fixed, 4> = Controller::new(space(), set, Fixed::max()).unwrap();
    let mut q: RingQueue<u32, 8> = RingQueue::new();
    let mut out = Batch::new();
    q.push(t(1), 7).unwrap();
    assert_eq!(ctl.poll_batch(t(1), 0.0, &mut q, &mut out), Ok(0));
    assert_eq!(ctl.poll_timeout(), Some(t(6)));
    assert_eq!(ctl.poll_batch(t(6), 0.0, &mut q, &mut out), Ok(1));
    assert_eq!(
        ctl.poll_timeout(),
        None,
        "nothing to wait for while a batch runs"
    );
    assert_eq!(out[0].payload, 7);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let s = space();
    let mut ctl: Controller<u32, Fixed, 4> =
        Controller::new(s.clone(), settings(4, 0), Fixed::max()).unwrap();
    let mut q: RingQueue<u32, 8> = RingQueue::new();
    let mut out = Batch::new();
    assert_eq!(
        ctl.handle_batch_done(t(1), 0.0).unwrap_err(),
        BatchDoneError::NoBatchInFlight
    );
    assert!(matches!(
        ctl.poll_batch(t(1), f64::NAN, &mut q, &mut out),
        Err(PollBatchError::Reading(ReadingError::EnergyNotFinite(e))) if e.is_nan()
    ));
    assert!(matches!(
        ctl.poll_batch(t(1), f64::INFINITY, &mut q, &mut out),
        Err(PollBatchError::Reading(ReadingError::EnergyNotFinite(_)))
    ));
    ctl.poll_batch(t(2), 5.0, &mut q, &mut out).unwrap();
    assert_eq!(
        ctl.poll_batch(t(3), 4.0, &mut q, &mut out),
        Err(PollBatchError::Reading(ReadingError::EnergyDecreased {
            from: 5.0,
            to: 4.0
        }))
    );
    assert_eq!(
        ctl.poll_batch(t(1), 5.0, &mut q, &mut out),
        Err(PollBatchError::Reading(ReadingError::TimeWentBack {
            latest: t(2),
            now: t(1)
        }))
    );
    for i in 0..4 {
        q.push(t(3), i).unwrap();
    }
    assert_eq!(ctl.poll_batch(t(3), 5.0, &mut q, &mut out), Ok(4));
    assert_eq!(
        ctl.poll_batch(t(3), 5.0, &mut q, &mut out),
        Err(PollBatchError::BatchInFlight)
    );
    assert_eq!(
        ctl.handle_batch_done(t(4), -1.0).unwrap_err(),
        BatchDoneError::Reading(ReadingError::EnergyDecreased {
            from: 5.0,
            to: -1.0
        })
    );
    assert!(ctl.batch_in_flight(), "a refused reading keeps the batch");
    assert_eq!(ctl.handle_batch_done(t(4), 6.0).unwrap().served, 4);

    // Construction errors.
    let new = |set: Settings| Controller::<u32, Fixed, 4>::new(s.clone(), set, Fixed::max()).err();
    assert_eq!(
        new(settings(0, 0)),
        Some(SetupError::Window(WindowError::ZeroWindow))
    );
    assert_eq!(
        new(settings(3, 0)),
        Some(SetupError::WindowBelowBatch {
            window: 3,
            batch: 4
        })
    );
    assert_eq!(
        new(Settings {
            calibration_windows: 0,
            ..settings(8, 0)
        }),
        Some(SetupError::NoCalibration)
    );
    let big = Space::new(&[Dimension::batch(8).unwrap()]).unwrap();
    assert_eq!(
        Controller::<u32, Fixed, 4>::new(big, settings(8, 0), Fixed::max()).err(),
        Some(SetupError::BatchAboveCapacity {
            batch: 8,
            capacity: 4
        })
    );
    let outside = Fixed::new(Config::default().with(0, 9));
    assert_eq!(
        Controller::<u32, Fixed, 4>::new(
            s.clone(),
            Settings {
                baseline: Some(Baseline::new(1.0, 1.0).unwrap()),
                ..settings(4, 0)
            },
            outside
        )
        .err(),
        Some(SetupError::Config(ConfigError::OutOfRange {
            knob: Knob::Cpu,
            index: 9,
            levels: 3
        }))
    );
}

#[test]
fn a_meter_that_reads_nothing_fails_calibration_clearly() {
    let mut ctl: Controller<u32, Fixed, 4> =
        Controller::new(space(), settings(4, 0), Fixed::max()).unwrap();
    let mut q: RingQueue<u32, 8> = RingQueue::new();
    let mut out = Batch::new();
    for i in 0..4 {
        q.push(t(0), i).unwrap();
    }
    ctl.poll_batch(t(0), 0.0, &mut q, &mut out).unwrap();
    assert!(matches!(
        ctl.handle_batch_done(t(10), 0.0),
        Err(BatchDoneError::Baseline(CostError::BadBaseline { .. }))
    ));
}

/// A scripted optimizer that asks for its windows to be abandoned above `ceiling`.
struct Capped {
    script: Script,
    ceiling: Option<f64>,
}

impl Optimizer for Capped {
    fn name(&self) -> &'static str {
        "capped"
    }
    fn start(&mut self, space: &Space) -> Config {
        self.script.start(space)
    }
    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        self.script.step(space, report)
    }
    fn ceiling(&self) -> Option<f64> {
        self.ceiling
    }
}

/// Queues requests that arrive at `arrivals_ms`, then serves
/// them in batches of 4 taking 100 ms and 4 J each; returns the windows closed.
fn serve_backlog<O: Optimizer>(rig: &mut Rig<O>, arrivals_ms: &[u64]) -> Vec<WindowReport> {
    for &a in arrivals_ms {
        rig.queue.push(t(a), 0).unwrap();
    }
    let mut closed = Vec::new();
    while rig
        .ctl
        .poll_batch(t(rig.now), rig.energy, &mut rig.queue, &mut rig.batch)
        .unwrap()
        > 0
    {
        rig.now += 100;
        rig.energy += 4.0;
        let done = rig.ctl.handle_batch_done(t(rig.now), rig.energy).unwrap();
        closed.extend(done.window);
    }
    closed
}

#[test]
fn a_window_above_the_ceiling_is_abandoned_unless_it_is_draining() {
    let s = space();
    let (a, b, c) = (
        s.config(&[0, 3]).unwrap(),
        s.config(&[1, 3]).unwrap(),
        s.config(&[2, 3]).unwrap(),
    );
    let settings = Settings {
        // E0 = 1 J, L0 = 0.1 s: a request costs 0.5 + 5 * latency_s.
        baseline: Some(Baseline::new(1.0, 0.1).unwrap()),
        ..settings(64, 16)
    };
    let script = Script {
        start: a,
        next: vec![b, c],
        seen: vec![],
    };
    let ctl = Controller::new(
        s,
        settings,
        Capped {
            script,
            ceiling: Some(3.0),
        },
    )
    .unwrap();
    let mut rig = Rig::new(ctl);
    // Window 0 (no ceiling yet): 16 batches arriving just in time, 100 ms each.
    for _ in 0..16 {
        let _ = rig.batch(25, 100, 4.0, 0.0);
    }
    assert_eq!(rig.ctl.config(), b);
    // At b a backlog builds: 28 requests arrived at once, each batch waits for
    // the previous. Once the last 16 average above 3.0 (latency above 0.5 s) and
    // are not falling, the window is cut: after 27 requests, not 64.
    let now = rig.now;
    let closed = serve_backlog(&mut rig, &[now; 28]);
    let cut = closed[0];
    assert!(cut.abandoned);
    assert_eq!((cut.config, cut.discarded, cut.requests), (b, 16, 11));
    // Its means cover all 27 requests: four each at 0.1 .. 0.6 s, three at 0.7 s.
    let latency = (4.0 * 2.1 + 3.0 * 0.7) / 27.0;
    assert!((cut.latency_s - latency).abs() < 1e-9, "{}", cut.latency_s);
    assert!((cut.cost.mean - (0.5 + 5.0 * latency)).abs() < 1e-9);
    assert_eq!(rig.ctl.config(), c);
    // At c the backlog drains: its 64 requests came every 30 ms from 0.8 s ago,
    // and c serves 4 per 100 ms. Latency starts near 0.9 s, above the ceiling, but
    // falls batch by batch, so the window runs in full.
    let now = rig.now;
    let arrivals: Vec<u64> = (0..64).map(|i| now - 800 + i * 30).collect();
    let closed = serve_backlog(&mut rig, &arrivals);
    assert!(!closed.is_empty());
    assert!(closed.iter().all(|w| !w.abandoned));
    assert_eq!(
        (closed[0].config, closed[0].discarded + closed[0].requests),
        (c, 64)
    );
}
