//! The request queue: a fixed-capacity FIFO that refuses, and counts, what it cannot hold.
//!
//! [`RingQueue`] stores [`Request`]s (a payload stamped with its arrival time and a
//! sequence number) in a `heapless::spsc::Queue`, so it can be used from one
//! context, or [`split`](RingQueue::split) into a [`Producer`] for the arrival
//! context (a thread, an interrupt handler) and a [`Consumer`] for the service loop,
//! lock-free. Its usable capacity is `N - 1` requests.
//!
//! When the queue is full, the request is refused and handed back to the caller
//! inside [`Refused`]; nothing vanishes. Three counters say what happened to every
//! request: `accepted`, `refused` and `served` (handed to the batcher).
//!
//! ```
//! use ecoedge_core::queue::RingQueue;
//! use ecoedge_core::time::Instant;
//!
//! let mut q: RingQueue<&str, 3> = RingQueue::new(); // holds 2
//! let now = Instant::from_micros(10);
//! q.push(now, "a").unwrap();
//! q.push(now, "b").unwrap();
//! let refused = q.push(now, "c").unwrap_err();
//! assert_eq!(refused.0, "c"); // handed back, not dropped
//! assert_eq!(q.stats().refused, 1);
//! assert_eq!(q.pop().unwrap().payload, "a");
//! ```
//!
//! [`RingQueue::new`] is a `const fn`, so a queue can be initialised at compile
//! time: an RTIC `#[local]` resource, a `static_cell::ConstStaticCell` that hands
//! out one `&'static mut` to [`split`](RingQueue::split), or a `static` behind a
//! mutex (`critical_section::Mutex<RefCell<_>>` on a microcontroller; the
//! standard library's here):
//!
//! ```
//! use std::sync::Mutex;
//!
//! use ecoedge_core::queue::RingQueue;
//! use ecoedge_core::time::Instant;
//!
//! static QUEUE: Mutex<RingQueue<u32, 64>> = Mutex::new(RingQueue::new());
//!
//! let mut q = QUEUE.lock().unwrap();
//! assert_eq!(q.push(Instant::from_micros(1), 7), Ok(0));
//! assert_eq!(q.capacity(), 63);
//! ```
//!
//! ## Counters on targets without compare-and-swap
//!
//! Each counter has exactly one writer (the producer writes `accepted` and
//! `refused`, the consumer `served`), so its increment never races with another
//! increment and needs no compare-and-swap, which thumbv6m lacks entirely. What a
//! concurrent *reader* needs is to see the whole `u64`:
//! - where the target has 64-bit atomics, a counter is an `AtomicU64` written with a
//!   plain load and store: lock-free, as cheap as a non-atomic counter;
//! - elsewhere (every 32-bit microcontroller: thumbv6m has no compare-and-swap,
//!   thumbv7m has it only up to 32 bits) a `u64` is two words that an interrupt
//!   could read half-written, so the counter sits in a
//!   `critical_section::Mutex<Cell<u64>>` and each read or write takes one short
//!   critical section. The firmware links a `critical-section` implementation, as
//!   it already does for most embedded crates (cortex-m's
//!   `critical-section-single-core` feature, RTIC, embassy).
//!
//! So counters and request ids are `u64` on every target and never wrap.
//! `portable-atomic`'s `AtomicU64` was the alternative: its default fallback on
//! targets with 32-bit compare-and-swap takes global spin locks, which an
//! interrupt handler must not meet, unless the firmware picks one of its
//! backend features. With one writer per counter the only missing piece is a
//! two-word load and store, and `critical-section` covers that directly, with
//! the implementation the firmware already chose.

use core::fmt;

use heapless::spsc;

use crate::time::Instant;

/// One inference request waiting for service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Request<T> {
    /// Sequence number in order of acceptance, from 0.
    pub id: u64,
    /// When the request arrived; latency is measured from here.
    pub arrival: Instant,
    /// What the caller attached (input tensor, reply handle, ...).
    pub payload: T,
}

/// The queue was full: the payload is handed back and the refusal was counted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Refused<T>(pub T);

impl<T> fmt::Display for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request queue is full, request refused")
    }
}

impl<T: fmt::Debug> core::error::Error for Refused<T> {}

/// What happened to the requests offered to a queue so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QueueStats {
    /// Requests taken into the queue.
    pub accepted: u64,
    /// Requests refused because the queue was full.
    pub refused: u64,
    /// Requests taken out of the queue for service.
    pub served: u64,
}

impl QueueStats {
    /// Requests waiting in the queue.
    pub fn waiting(&self) -> u64 {
        self.accepted - self.served
    }
}

// A `u64` counter with exactly one writer; any context may read it (see the
// module doc for the choice of backend).
#[cfg(target_has_atomic = "64")]
use atomic::Counter;
#[cfg(not(target_has_atomic = "64"))]
use locked::Counter;

#[cfg(target_has_atomic = "64")]
mod atomic {
    use core::sync::atomic::{AtomicU64, Ordering};

    /// Lock-free: the one writer loads, adds one and stores.
    pub(super) struct Counter(AtomicU64);

    impl Counter {
        pub(super) const fn new() -> Self {
            Counter(AtomicU64::new(0))
        }

        /// A counter that starts at `value`, to test the carry into the high word.
        #[cfg(test)]
        pub(super) const fn starting_at(value: u64) -> Self {
            Counter(AtomicU64::new(value))
        }

        pub(super) fn get(&self) -> u64 {
            self.0.load(Ordering::Acquire)
        }

        /// Adds one and returns the old value. Only the counter's writer calls
        /// this, so the load and the store cannot interleave with another bump.
        pub(super) fn bump(&self) -> u64 {
            let old = self.0.load(Ordering::Relaxed);
            self.0.store(old.wrapping_add(1), Ordering::Release);
            old
        }
    }
}

/// Also built for the host's unit tests, so the firmware's path is tested too.
#[cfg(any(test, not(target_has_atomic = "64")))]
mod locked {
    use core::cell::Cell;

    use critical_section::Mutex;

    /// Two words behind a critical section, so no reader sees half an update.
    pub(super) struct Counter(Mutex<Cell<u64>>);

    impl Counter {
        pub(super) const fn new() -> Self {
            Counter(Mutex::new(Cell::new(0)))
        }

        /// A counter that starts at `value`, to test the carry into the high word.
        #[cfg(test)]
        pub(super) const fn starting_at(value: u64) -> Self {
            Counter(Mutex::new(Cell::new(value)))
        }

        pub(super) fn get(&self) -> u64 {
            critical_section::with(|cs| self.0.borrow(cs).get())
        }

        /// Adds one and returns the old value, in one critical section.
        pub(super) fn bump(&self) -> u64 {
            critical_section::with(|cs| {
                let cell = self.0.borrow(cs);
                let old = cell.get();
                cell.set(old.wrapping_add(1));
                old
            })
        }
    }
}

/// The queue's three counters, shared by its two halves.
struct Counters {
    accepted: Counter,
    refused: Counter,
    served: Counter,
}

impl Counters {
    const fn new() -> Self {
        Counters {
            accepted: Counter::new(),
            refused: Counter::new(),
            served: Counter::new(),
        }
    }

    fn stats(&self) -> QueueStats {
        // `served` first: a request is accepted before it is served, so reading in
        // this order never shows more served than accepted.
        let served = self.served.get();
        QueueStats {
            refused: self.refused.get(),
            accepted: self.accepted.get(),
            served,
        }
    }

    fn push<T>(
        &self,
        q: impl FnOnce(Request<T>) -> Result<(), Request<T>>,
        now: Instant,
        payload: T,
    ) -> Result<u64, Refused<T>> {
        let id = self.accepted.get();
        match q(Request {
            id,
            arrival: now,
            payload,
        }) {
            Ok(()) => {
                self.accepted.bump();
                Ok(id)
            }
            Err(r) => {
                self.refused.bump();
                Err(Refused(r.payload))
            }
        }
    }
}

/// Where the batcher takes requests from: a [`RingQueue`] or its [`Consumer`] half.
pub trait RequestSource<T> {
    /// The oldest waiting request, counted as served.
    fn dequeue(&mut self) -> Option<Request<T>>;
    /// Requests waiting.
    fn len(&self) -> usize;
    /// True when no request waits.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bounded FIFO of requests with a usable capacity of `N - 1` (`N >= 2`).
pub struct RingQueue<T, const N: usize> {
    inner: spsc::Queue<Request<T>, N>,
    counters: Counters,
}

impl<T, const N: usize> Default for RingQueue<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> RingQueue<T, N> {
    /// An empty queue. `N` below 2 (no usable slot) does not compile. A `const
    /// fn`, so a queue can be a `static` or an RTIC local resource.
    pub const fn new() -> Self {
        const {
            assert!(
                N >= 2,
                "a RingQueue<T, N> holds N - 1 requests: N must be at least 2"
            )
        };
        RingQueue {
            inner: spsc::Queue::new(),
            counters: Counters::new(),
        }
    }

    /// Requests it can hold: `N - 1`.
    pub const fn capacity(&self) -> usize {
        N - 1
    }

    /// Enqueues a request that arrived at `now`; returns its sequence number, or
    /// hands the payload back when full.
    pub fn push(&mut self, now: Instant, payload: T) -> Result<u64, Refused<T>> {
        let inner = &mut self.inner;
        self.counters.push(|r| inner.enqueue(r), now, payload)
    }

    /// Counts `n` requests refused without offering them: for a caller that
    /// refuses a group of requests as a whole (the samples of one inference
    /// request) when they do not all fit.
    pub fn refuse(&mut self, n: u64) {
        for _ in 0..n {
            self.counters.refused.bump();
        }
    }

    /// The oldest request, counted as served.
    pub fn pop(&mut self) -> Option<Request<T>> {
        let r = self.inner.dequeue()?;
        self.counters.served.bump();
        Some(r)
    }

    /// The oldest request, left in place.
    pub fn peek(&self) -> Option<&Request<T>> {
        self.inner.peek()
    }

    /// Counters so far.
    pub fn stats(&self) -> QueueStats {
        self.counters.stats()
    }

    /// Splits into an arrival half and a service half that may live in different
    /// contexts (threads, interrupt handlers). Counters stay shared.
    pub fn split(&mut self) -> (Producer<'_, T>, Consumer<'_, T>) {
        let (p, c) = self.inner.split();
        let counters = &self.counters;
        (
            Producer { inner: p, counters },
            Consumer { inner: c, counters },
        )
    }
}

impl<T, const N: usize> RequestSource<T> for RingQueue<T, N> {
    fn dequeue(&mut self) -> Option<Request<T>> {
        self.pop()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
}

/// The arrival half of a split [`RingQueue`]: owns the write index and the
/// `accepted` and `refused` counters.
pub struct Producer<'a, T> {
    inner: spsc::Producer<'a, Request<T>>,
    counters: &'a Counters,
}

impl<T> Producer<'_, T> {
    /// As [`RingQueue::push`].
    pub fn push(&mut self, now: Instant, payload: T) -> Result<u64, Refused<T>> {
        let inner = &mut self.inner;
        self.counters.push(|r| inner.enqueue(r), now, payload)
    }

    /// Counters so far.
    pub fn stats(&self) -> QueueStats {
        self.counters.stats()
    }
}

/// The service half of a split [`RingQueue`]: owns the read index and the `served`
/// counter.
pub struct Consumer<'a, T> {
    inner: spsc::Consumer<'a, Request<T>>,
    counters: &'a Counters,
}

impl<T> Consumer<'_, T> {
    /// Counters so far.
    pub fn stats(&self) -> QueueStats {
        self.counters.stats()
    }
}

impl<T> RequestSource<T> for Consumer<'_, T> {
    fn dequeue(&mut self) -> Option<Request<T>> {
        let r = self.inner.dequeue()?;
        self.counters.served.bump();
        Some(r)
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_a_whole_group_are_counted() {
        let mut q: RingQueue<u8, 4> = RingQueue::new();
        q.push(Instant::ZERO, 1).unwrap();
        q.refuse(3);
        let s = q.stats();
        assert_eq!((s.accepted, s.refused, s.waiting()), (1, 3, 1));
    }

    #[test]
    fn smallest_queue_holds_one() {
        let mut q: RingQueue<u8, 2> = RingQueue::new();
        assert_eq!(q.capacity(), 1);
        assert_eq!(q.push(Instant::ZERO, 1), Ok(0));
        assert_eq!(q.push(Instant::ZERO, 2), Err(Refused(2)));
        assert_eq!(q.pop().map(|r| r.payload), Some(1));
        assert_eq!(q.pop(), None);
        assert_eq!(q.push(Instant::ZERO, 3), Ok(1));
        assert_eq!(
            q.stats(),
            QueueStats {
                accepted: 2,
                refused: 1,
                served: 1
            }
        );
        assert_eq!(q.stats().waiting(), 1);
    }

    #[test]
    fn split_halves_share_counters_across_threads() {
        extern crate std;
        let mut q: RingQueue<u32, 8> = RingQueue::new();
        let (mut p, mut c) = q.split();
        let mut got = std::vec::Vec::new();
        let mut retries = 0;
        std::thread::scope(|s| {
            let producer = s.spawn(move || {
                let mut retries = 0u64;
                for i in 0..10_000u32 {
                    while p.push(Instant::from_micros(i as u64), i).is_err() {
                        retries += 1;
                        std::hint::spin_loop();
                    }
                }
                retries
            });
            while got.len() < 10_000 {
                if let Some(r) = c.dequeue() {
                    assert_eq!(r.arrival.as_micros(), r.payload as u64);
                    got.push(r.payload);
                }
            }
            retries = producer.join().unwrap();
        });
        assert!(got.iter().copied().eq(0..10_000));
        let stats = q.stats();
        assert_eq!(stats.accepted, 10_000);
        assert_eq!(stats.served, 10_000);
        // Every refused push was counted, and each one was retried, not lost.
        assert_eq!(stats.refused, retries);
    }

    #[test]
    fn a_static_queue_needs_no_runtime_initialisation() {
        use core::cell::RefCell;
        use critical_section::Mutex;

        // The firmware pattern: shared between an interrupt handler and the
        // service loop, initialised at compile time by `const fn new`.
        static QUEUE: Mutex<RefCell<RingQueue<u8, 4>>> = Mutex::new(RefCell::new(RingQueue::new()));

        critical_section::with(|cs| {
            let mut q = QUEUE.borrow_ref_mut(cs);
            assert_eq!(q.push(Instant::ZERO, 1), Ok(0));
            assert_eq!(q.pop().map(|r| r.payload), Some(1));
            assert_eq!(q.stats().served, 1);
        });
    }

    /// The two counter backends, behind one interface for the tests.
    trait TestCounter: Sync {
        fn new() -> Self;
        fn starting_at(value: u64) -> Self;
        fn get(&self) -> u64;
        fn bump(&self) -> u64;
    }

    #[cfg(target_has_atomic = "64")]
    impl TestCounter for atomic::Counter {
        fn new() -> Self {
            Self::new()
        }
        fn starting_at(value: u64) -> Self {
            Self::starting_at(value)
        }
        fn get(&self) -> u64 {
            self.get()
        }
        fn bump(&self) -> u64 {
            self.bump()
        }
    }

    impl TestCounter for locked::Counter {
        fn new() -> Self {
            Self::new()
        }
        fn starting_at(value: u64) -> Self {
            Self::starting_at(value)
        }
        fn get(&self) -> u64 {
            self.get()
        }
        fn bump(&self) -> u64 {
            self.bump()
        }
    }

    /// One writer carries the counter across 2^32 while another thread reads it:
    /// every read is a whole value the writer stored, never going back.
    fn reads_whole_values_across_the_carry<C: TestCounter>() {
        extern crate std;
        const START: u64 = (1 << 32) - 20_000;
        const END: u64 = START + 40_000;
        let fresh = C::new();
        assert_eq!((fresh.bump(), fresh.get()), (0, 1));
        let counter = C::starting_at(START);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in START..END {
                    assert_eq!(counter.bump(), i);
                }
            });
            let mut last = START;
            while last < END {
                let now = counter.get();
                assert!(
                    (last..=END).contains(&now),
                    "read {now} after {last}: torn or out of order"
                );
                last = now;
            }
        });
        assert_eq!(counter.get(), END);
    }

    #[cfg(target_has_atomic = "64")]
    #[test]
    fn atomic_counter_reads_whole_values_across_the_carry() {
        reads_whole_values_across_the_carry::<atomic::Counter>();
    }

    /// The backend of targets without 64-bit atomics (thumbv6m, thumbv7m), run on
    /// the host through critical-section's `std` implementation.
    #[test]
    fn locked_counter_reads_whole_values_across_the_carry() {
        reads_whole_values_across_the_carry::<locked::Counter>();
    }
}
