//! Proves the steady state allocates nothing: a counting global allocator watches
//! 100 000 requests go through the queue and the controller, with windows closing
//! and configs changing all along.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use ecoedge_core::prelude::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only the measured thread counts: the test harness's own threads allocate
    /// while a test runs (output capture, result channels).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Walks the batch dimension up and down, one level per window, so every window
/// ends in a config change and a warm-up.
struct Walk {
    up: bool,
}

impl Optimizer for Walk {
    fn name(&self) -> &'static str {
        "walk"
    }
    fn start(&mut self, space: &Space) -> Config {
        space.max_config()
    }
    fn step(&mut self, space: &Space, report: &WindowReport) -> Config {
        let delta = if self.up { 1 } else { -1 };
        space.step(&report.config, 1, delta).unwrap_or_else(|| {
            self.up = !self.up;
            space
                .step(&report.config, 1, -delta)
                .unwrap_or(report.config)
        })
    }
}

#[test]
fn controller_steady_state_allocates_nothing() {
    let cpu = Dimension::new(Knob::Cpu, &[500_000, 1_000_000]).unwrap();
    let space = Space::new(&[cpu, Dimension::batch(16).unwrap()]).unwrap();
    let settings = Settings {
        window: WindowSettings {
            requests: 64,
            warmup: 16,
            ..WindowSettings::default()
        },
        ..Settings::default()
    };
    let mut ctl: Controller<u64, Walk, 16> =
        Controller::new(space, settings, Walk { up: false }).unwrap();
    let mut queue: RingQueue<u64, 64> = RingQueue::new();
    let mut batch = heapless::Vec::new();

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let (mut now, mut energy, mut windows, mut changes) = (0u64, 0.0f64, 0, 0);
    let mut done = 0u64;
    for i in 0..100_000u64 {
        now += 1_000;
        queue.push(Instant::from_micros(now), i).unwrap();
        energy += 0.01;
        if ctl
            .poll_batch(Instant::from_micros(now), energy, &mut queue, &mut batch)
            .unwrap()
            > 0
        {
            now += 200 * batch.len() as u64;
            energy += 0.05 * batch.len() as f64;
            let c = ctl
                .handle_batch_done(Instant::from_micros(now), energy)
                .unwrap();
            done += c.served as u64;
            windows += c.window.is_some() as u32;
            changes += c.apply.is_some() as u32;
        }
    }
    COUNTING.with(|c| c.set(false));
    let after = ALLOCATIONS.load(Ordering::Relaxed);

    assert_eq!(after - before, 0, "the controller allocated on the heap");
    assert!(
        windows > 1_000 && changes > 1_000,
        "windows {windows}, changes {changes}"
    );
    assert_eq!(
        done + ctl.buffered() as u64 + queue.stats().waiting(),
        100_000
    );
    assert_eq!(queue.stats().refused, 0);
}
