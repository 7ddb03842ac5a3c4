//! A `#![no_std]` static library that drives an EcoEdge controller with EcoGD
//! through a small C API. It exists to prove, in CI, that `ecoedge-core` links
//! into a bare-metal image as it is:
//! - no `std`: this crate brings its own `#[panic_handler]`, which would clash
//!   with std's if anything in the dependency graph linked std;
//! - no allocator: there is no `#[global_allocator]`, so a dependency that used
//!   `alloc` would fail the build, and `check.sh` checks with `nm` that no
//!   allocator or std symbol is defined or referenced in the archive;
//! - no run-time initialisation: the queue and the batch live in a `static`
//!   built by `const fn`s.
//!
//! `main.c` is the C side: it simulates a board and runs windows of requests.
//! Every function returns a status: `>= 0` success, a negative `ECOEDGE_E_*`
//! code otherwise ([`ecoedge_last_error`] tells why).

#![no_std]

use core::cell::UnsafeCell;
use core::ffi::c_char;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use ecoedge_core::controller::{BatchDoneError, PollBatchError, SetupError};
use ecoedge_core::heapless::Vec;
use ecoedge_core::optimizer::{EcoGd, EcoGdSettings};
use ecoedge_core::prelude::*;
use ecoedge_core::space::{MAX_LEVELS, SpaceError};

/// Largest batch the controller forms.
const BATCH: usize = 16;
/// Queue slots: holds `QUEUE - 1` requests.
const QUEUE: usize = 64;
/// EcoGD's seed: the check is deterministic.
const SEED: u64 = 7;

/// Another call is running (the C side re-entered, or called from two threads).
const E_BUSY: i32 = -1;
/// A null pointer, a too short buffer, or too many levels.
const E_ARG: i32 = -2;
/// `ecoedge_start` has not succeeded yet, or was called twice.
const E_STATE: i32 = -3;
/// The knob levels or the settings were refused.
const E_SETUP: i32 = -4;
/// `ecoedge_poll_batch` was refused.
const E_POLL: i32 = -5;
/// `ecoedge_batch_done` was refused.
const E_DONE: i32 = -6;

/// `ecoedge_batch_done`'s flags: a window closed, the config changed.
const WINDOW_CLOSED: i32 = 1;
const CONFIG_CHANGED: i32 = 2;

/// The last refusal, kept to be printed by `ecoedge_last_error`: the core's
/// errors are `Copy`, so keeping one costs a few bytes and no allocation.
#[derive(Clone, Copy)]
enum LastError {
    Space(SpaceError),
    Setup(SetupError),
    Poll(PollBatchError),
    Done(BatchDoneError),
    Usage(&'static str),
}

impl fmt::Display for LastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LastError::Space(e) => e.fmt(f),
            LastError::Setup(e) => e.fmt(f),
            LastError::Poll(e) => e.fmt(f),
            LastError::Done(e) => e.fmt(f),
            LastError::Usage(s) => f.write_str(s),
        }
    }
}

/// Everything the C side drives.
struct Service {
    controller: Option<Controller<u32, EcoGd, BATCH>>,
    queue: RingQueue<u32, QUEUE>,
    batch: Vec<Request<u32>, BATCH>,
    last_error: Option<LastError>,
}

impl Service {
    fn fail(&mut self, code: i32, e: LastError) -> i32 {
        self.last_error = Some(e);
        code
    }
}

/// The one `Service`, with a flag that hands out `&mut` to one caller at a time.
struct Slot {
    busy: AtomicBool,
    service: UnsafeCell<Service>,
}

// SAFETY: the service is only reached through `with`, which holds `busy` for as
// long as its `&mut Service` lives, so no two contexts ever share it.
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot {
    busy: AtomicBool::new(false),
    service: UnsafeCell::new(Service {
        controller: None,
        queue: RingQueue::new(),
        batch: Vec::new(),
        last_error: None,
    }),
};

/// Runs `f` on the service, or returns `E_BUSY` when another call holds it.
fn with(f: impl FnOnce(&mut Service) -> i32) -> i32 {
    if SLOT.busy.swap(true, Ordering::Acquire) {
        return E_BUSY;
    }
    // SAFETY: `busy` was false and is now set by us, so this is the only
    // reference to the service until we clear it below.
    let status = f(unsafe { &mut *SLOT.service.get() });
    SLOT.busy.store(false, Ordering::Release);
    status
}

/// Builds the controller: a CPU knob with `n_cpu` ascending levels (kHz) at
/// `cpu_khz`, batch sizes `1..=max_batch`, windows of `window` requests of
/// which the first `warmup` after a change are discarded, EcoGD's defaults.
///
/// # Safety
/// `cpu_khz` points to `n_cpu` readable `u32`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecoedge_start(
    cpu_khz: *const u32,
    n_cpu: usize,
    max_batch: u32,
    window: u32,
    warmup: u32,
) -> i32 {
    if cpu_khz.is_null() || n_cpu == 0 || n_cpu > MAX_LEVELS {
        return with(|s| s.fail(E_ARG, LastError::Usage("cpu levels: null or bad count")));
    }
    // SAFETY: non-null, and the caller promises `n_cpu` elements.
    let levels = unsafe { core::slice::from_raw_parts(cpu_khz, n_cpu) };
    with(|s| {
        if s.controller.is_some() {
            return s.fail(E_STATE, LastError::Usage("already started"));
        }
        let space = Dimension::new(Knob::Cpu, levels)
            .and_then(|cpu| Space::new(&[cpu, Dimension::batch(max_batch)?]));
        let space = match space {
            Ok(space) => space,
            Err(e) => return s.fail(E_SETUP, LastError::Space(e)),
        };
        let settings = Settings {
            window: WindowSettings {
                requests: window,
                warmup,
                ..WindowSettings::default()
            },
            ..Settings::default()
        };
        let optimizer = EcoGd::new(EcoGdSettings::default(), SEED);
        match Controller::new(space, settings, optimizer) {
            Ok(c) => {
                s.controller = Some(c);
                0
            }
            Err(e) => s.fail(E_SETUP, LastError::Setup(e)),
        }
    })
}

/// Queues request `id` that arrived at `now_us`: 0 when accepted, 1 when the
/// queue was full (refused and counted).
#[unsafe(no_mangle)]
pub extern "C" fn ecoedge_push(now_us: u64, id: u32) -> i32 {
    with(|s| match s.queue.push(Instant::from_micros(now_us), id) {
        Ok(_) => 0,
        Err(_) => 1,
    })
}

/// Forms the next batch when the batch rule allows: writes its request ids to
/// `ids` (room for `cap`, at least the largest batch) and returns how many (0:
/// not yet). `energy_j` is the meter's cumulative reading at `now_us`.
///
/// # Safety
/// `ids` points to `cap` writable `u32`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecoedge_poll_batch(
    now_us: u64,
    energy_j: f64,
    ids: *mut u32,
    cap: usize,
) -> i32 {
    if ids.is_null() || cap < BATCH {
        return with(|s| s.fail(E_ARG, LastError::Usage("ids: null or shorter than a batch")));
    }
    // SAFETY: non-null, and the caller promises `cap` elements.
    let ids = unsafe { core::slice::from_raw_parts_mut(ids, cap) };
    with(|s| {
        let Some(ctl) = s.controller.as_mut() else {
            return s.fail(E_STATE, LastError::Usage("not started"));
        };
        let now = Instant::from_micros(now_us);
        match ctl.poll_batch(now, energy_j, &mut s.queue, &mut s.batch) {
            Ok(n) => {
                for (slot, r) in ids.iter_mut().zip(&s.batch) {
                    *slot = r.payload;
                }
                // n <= BATCH = 16.
                n as i32
            }
            Err(e) => s.fail(E_POLL, LastError::Poll(e)),
        }
    })
}

/// Reports the batch in flight finished at `now_us`, the meter reading
/// `energy_j`. Returns flags: 1 a window closed, 2 the config changed (read it
/// with `ecoedge_config` and apply it).
#[unsafe(no_mangle)]
pub extern "C" fn ecoedge_batch_done(now_us: u64, energy_j: f64) -> i32 {
    with(|s| {
        let Some(ctl) = s.controller.as_mut() else {
            return s.fail(E_STATE, LastError::Usage("not started"));
        };
        match ctl.handle_batch_done(Instant::from_micros(now_us), energy_j) {
            Ok(done) => {
                let mut flags = 0;
                if done.window.is_some() {
                    flags |= WINDOW_CLOSED;
                }
                if done.apply.is_some() {
                    flags |= CONFIG_CHANGED;
                }
                flags
            }
            Err(e) => s.fail(E_DONE, LastError::Done(e)),
        }
    })
}

/// The config in force: CPU clock (kHz) and batch size; returns 1 once the
/// optimizer runs, 0 while calibrating.
///
/// # Safety
/// `cpu_khz` and `batch` point to writable `u32`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecoedge_config(cpu_khz: *mut u32, batch: *mut u32) -> i32 {
    if cpu_khz.is_null() || batch.is_null() {
        return with(|s| s.fail(E_ARG, LastError::Usage("config: null pointer")));
    }
    with(|s| {
        let Some(ctl) = s.controller.as_ref() else {
            return s.fail(E_STATE, LastError::Usage("not started"));
        };
        let (space, config) = (ctl.space(), ctl.config());
        // SAFETY: both non-null, and the caller promises they are writable.
        unsafe {
            *cpu_khz = space.knob_value(&config, Knob::Cpu).unwrap_or(0);
            *batch = space.batch_size(&config);
        }
        (ctl.phase() == Phase::Optimizing).into()
    })
}

/// The queue's counters: requests accepted, refused, served.
///
/// # Safety
/// The three pointers point to writable `u64`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecoedge_stats(
    accepted: *mut u64,
    refused: *mut u64,
    served: *mut u64,
) -> i32 {
    if accepted.is_null() || refused.is_null() || served.is_null() {
        return with(|s| s.fail(E_ARG, LastError::Usage("stats: null pointer")));
    }
    with(|s| {
        let stats = s.queue.stats();
        // SAFETY: non-null, and the caller promises they are writable.
        unsafe {
            *accepted = stats.accepted;
            *refused = stats.refused;
            *served = stats.served;
        }
        0
    })
}

/// Writes why the last call failed into `buf` (`len` bytes, NUL-terminated,
/// cut to fit) through `core::fmt`, no allocation; returns the length written,
/// 0 when nothing failed yet.
///
/// # Safety
/// `buf` points to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ecoedge_last_error(buf: *mut c_char, len: usize) -> i32 {
    if buf.is_null() || len == 0 {
        return E_ARG;
    }
    // SAFETY: non-null, and the caller promises `len` bytes.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    with(|s| {
        let mut out = Cut { buf, len: 0 };
        if let Some(e) = s.last_error {
            // `Cut` never fails: it drops what does not fit.
            let _ = write!(out, "{e}");
        }
        let n = out.len;
        out.buf[n] = 0;
        i32::try_from(n).unwrap_or(i32::MAX)
    })
}

/// A `fmt::Write` into a fixed buffer that keeps the last byte for the NUL.
struct Cut<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for Cut<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - 1 - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

// The C library's `abort`: this check runs as a hosted C program. A firmware
// would reset the board here instead.
unsafe extern "C" {
    safe fn abort() -> !;
}

/// The precompiled `core` for this host target is built to unwind, so its
/// unwind tables name a personality routine that std would define. With `panic
/// = "abort"` nothing unwinds and the routine is never called; it only has to
/// link. (Bare-metal targets' `core` is built with `panic = "abort"` and needs
/// none.)
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {
    abort()
}

/// A panic cannot unwind into C and there is no std to print it: abort, so the
/// C program fails loudly. None is expected: the core reports typed errors.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    abort()
}
