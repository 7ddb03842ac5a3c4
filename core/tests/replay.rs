//! The replay prices a config as the controller measures it: a window served on
//! a noise-free board, then replayed from the same arrivals with the service
//! figures the window measured, costs the same.

use ecoedge_core::load::{Load, Replayed};
use ecoedge_core::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// Requests per window: a multiple of every batch size, so no partial batch
/// is left at the end.
const WINDOW: usize = 24;

/// What the optimizer saw when the first window closed.
#[derive(Debug, Clone, Copy)]
struct Seen {
    report: WindowReport,
    replayed: Option<Replayed>,
    waiting: usize,
}

/// Pins one config and keeps what it saw at the first window's close.
struct Probe {
    config: Config,
    seen: Option<Seen>,
}

impl Optimizer for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn start(&mut self, _space: &Space) -> Config {
        self.config
    }

    fn step(&mut self, _space: &Space, _report: &WindowReport) -> Config {
        self.config
    }

    fn step_under(&mut self, space: &Space, report: &WindowReport, load: &Load<'_>) -> Config {
        let batch = space.batch_size(&report.config);
        self.seen.get_or_insert(Seen {
            report: *report,
            replayed: report.service.and_then(|s| load.replay(batch, &s)),
            waiting: load.sample.waiting(),
        });
        self.config
    }
}

/// A board that draws `idle_w` watts while idle and `active_w` while a batch
/// runs for `service_us`: serves one window of arrivals `gaps` microseconds
/// apart in batches of `batch`, event by event.
fn serve(gaps: &[u64], batch: usize, service_us: u64, active_w: f64, idle_w: f64) -> Seen {
    let space = Space::new(&[Dimension::batch(4).unwrap()]).unwrap();
    let config = space.config(&[batch - 1]).unwrap();
    let settings = Settings {
        window: WindowSettings {
            requests: WINDOW as u32,
            warmup: 0,
            ..WindowSettings::default()
        },
        baseline: Some(Baseline::new(1.0, 0.1).unwrap()),
        ..Settings::default()
    };
    let probe = Probe { config, seen: None };
    let mut ctl: Controller<u32, Probe, 4, 64> = Controller::new(space, settings, probe).unwrap();
    let mut queue: RingQueue<u32, 64> = RingQueue::new();
    let mut out = heapless::Vec::new();
    let arrivals: Vec<u64> = gaps
        .iter()
        .scan(0, |t, gap| {
            *t += gap;
            Some(*t)
        })
        .collect();
    let (mut now, mut energy, mut next) = (arrivals[0], 0.0, 0);
    let mut done_at: Option<u64> = None;
    let at = Instant::from_micros;
    while ctl.optimizer().seen.is_none() {
        // The next event: the batch finishing (first on a tie), or an arrival.
        let event = match (done_at, arrivals.get(next)) {
            (Some(done), Some(&a)) if a < done => a,
            (Some(done), _) => done,
            (None, Some(&a)) => a,
            (None, None) => panic!("every arrival served and no window closed"),
        };
        let power = if done_at.is_some() { active_w } else { idle_w };
        energy += power * (event - now) as f64 / 1e6;
        now = event;
        if done_at == Some(now) {
            done_at = None;
            let _ = ctl.handle_batch_done(at(now), energy).unwrap();
        } else {
            queue.push(at(now), 0).unwrap();
            next += 1;
        }
        if done_at.is_none()
            && ctl
                .poll_batch(at(now), energy, &mut queue, &mut out)
                .unwrap()
                > 0
        {
            done_at = Some(now + service_us);
        }
    }
    ctl.optimizer().seen.unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0xEC0),
        ..ProptestConfig::default()
    })]

    /// Replayed with its own service figures, a window's arrivals cost what the
    /// window measured; where the board idled too little to measure idle power,
    /// the replay charges idle time at active power, an upper bound.
    #[test]
    fn replay_reproduces_the_measured_cost(
        gaps in prop::collection::vec(0u64..300_000, WINDOW),
        batch in 1usize..=4,
        service_us in 1_000u64..200_000,
        idle_w in 0.5f64..5.0,
        extra_w in 0.0f64..15.0,
    ) {
        let seen = serve(&gaps, batch, service_us, idle_w + extra_w, idle_w);
        prop_assert_eq!(seen.report.requests as usize, WINDOW);
        prop_assert_eq!(seen.waiting, 0);
        let service = seen.report.service.expect("batches ran");
        prop_assert!((service.batch_s(batch) - service_us as f64 / 1e6).abs() < 1e-9);
        prop_assert!((service.active_w - (idle_w + extra_w)).abs() < 1e-6);
        let replayed = seen.replayed.expect("full batches formed");
        let measured = seen.report.cost.mean;
        let tolerance = 1e-9 * measured.max(1.0);
        match service.idle_w {
            Some(w) => {
                prop_assert!((w - idle_w).abs() < 1e-6);
                prop_assert!((replayed.cost - measured).abs() < tolerance, "{replayed:?} {measured}");
            }
            None => prop_assert!(replayed.cost >= measured - tolerance, "{replayed:?} {measured}"),
        }
    }
}
