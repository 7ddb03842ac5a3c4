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
//! request: `accepted`, `refused` and `served` (handed to the batcher). Each counter
//! has exactly one writer (the producer writes the first two, the consumer the
//! third), so plain atomic loads and stores suffice on every target.
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

use core::fmt;
#[cfg(not(target_has_atomic = "64"))]
use core::sync::atomic::AtomicU32 as AtomicCounter;
#[cfg(target_has_atomic = "64")]
use core::sync::atomic::AtomicU64 as AtomicCounter;
use core::sync::atomic::Ordering;

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

/// Counters with one writer each: the writer loads, adds one and stores.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicCounter,
    refused: AtomicCounter,
    served: AtomicCounter,
}

#[allow(
    clippy::unnecessary_cast,
    reason = "counters are u32 on targets without 64-bit atomics"
)]
impl Counters {
    fn bump(counter: &AtomicCounter) -> u64 {
        let old = counter.load(Ordering::Relaxed);
        counter.store(old.wrapping_add(1), Ordering::Release);
        old as u64
    }

    fn stats(&self) -> QueueStats {
        // `served` first: a request is accepted before it is served, so reading in
        // this order never shows more served than accepted.
        let served = self.served.load(Ordering::Acquire) as u64;
        QueueStats {
            refused: self.refused.load(Ordering::Acquire) as u64,
            accepted: self.accepted.load(Ordering::Acquire) as u64,
            served,
        }
    }

    fn push<T>(
        &self,
        q: impl FnOnce(Request<T>) -> Result<(), Request<T>>,
        now: Instant,
        payload: T,
    ) -> Result<u64, Refused<T>> {
        let id = self.accepted.load(Ordering::Relaxed) as u64;
        match q(Request {
            id,
            arrival: now,
            payload,
        }) {
            Ok(()) => {
                Self::bump(&self.accepted);
                Ok(id)
            }
            Err(r) => {
                Self::bump(&self.refused);
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
    /// An empty queue. `N` below 2 (no usable slot) does not compile.
    pub fn new() -> Self {
        const {
            assert!(
                N >= 2,
                "a RingQueue<T, N> holds N - 1 requests: N must be at least 2"
            )
        };
        RingQueue {
            inner: spsc::Queue::new(),
            counters: Counters::default(),
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

    /// The oldest request, counted as served.
    pub fn pop(&mut self) -> Option<Request<T>> {
        let r = self.inner.dequeue()?;
        Counters::bump(&self.counters.served);
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
        Counters::bump(&self.counters.served);
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
}
