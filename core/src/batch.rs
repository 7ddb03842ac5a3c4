//! The batch buffer: groups waiting requests into inference batches.
//!
//! Paper semantics: a batch is released when it holds `size` requests. Optionally
//! (off by default) a partial batch is released once its oldest request has waited
//! `max_wait`, which bounds latency at low arrival rates at some energy cost.
//! Requests move from the queue into the buffer only up to the batch size, so the
//! queue keeps absorbing bursts and refusals stay counted in one place.

use core::fmt;
use heapless::{Deque, Vec};

use crate::queue::{Request, RequestSource};
use crate::time::{Duration, Instant};

/// Why a batch could not be formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BatchError {
    /// A batch size of zero was asked for.
    ZeroBatch,
    /// The batch size is above the buffer's capacity.
    TooLarge {
        /// The size asked for.
        size: usize,
        /// The buffer's capacity.
        capacity: usize,
    },
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::ZeroBatch => f.write_str("batch size 0 is not allowed"),
            BatchError::TooLarge { size, capacity } => {
                write!(
                    f,
                    "batch size {size} is above the batch capacity {capacity}"
                )
            }
        }
    }
}

impl core::error::Error for BatchError {}

/// Holds up to `B` requests until a batch is complete.
pub struct BatchBuffer<T, const B: usize> {
    pending: Deque<Request<T>, B>,
    max_wait: Option<Duration>,
}

impl<T, const B: usize> BatchBuffer<T, B> {
    /// An empty buffer; `max_wait: None` is the paper's full-batch rule. A `const
    /// fn`, so a buffer can be a `static` or an RTIC local resource.
    pub const fn new(max_wait: Option<Duration>) -> Self {
        const { assert!(B >= 1, "a BatchBuffer<T, B> needs B >= 1") };
        BatchBuffer {
            pending: Deque::new(),
            max_wait,
        }
    }

    /// Requests waiting in the buffer.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no request waits in the buffer.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The longest batch it can form.
    pub const fn capacity(&self) -> usize {
        B
    }

    /// When the partial batch waiting now will be released by the maximum-wait
    /// rule, if that rule is on and a request waits. `#[must_use]` like
    /// [`Controller::poll_timeout`](crate::controller::Controller::poll_timeout):
    /// a deadline read and dropped is a partial batch nobody wakes up for.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        let oldest = self.pending.front()?;
        Some(oldest.arrival + self.max_wait?)
    }

    /// Tops the buffer up from `src` to `size` requests, then releases the oldest
    /// `size` into `out` (cleared first) when the batch is full or the maximum wait
    /// of its oldest request has passed at `now`. Returns how many were released
    /// (0: keep waiting). Bounded work: at most `B` requests move.
    pub fn poll<S: RequestSource<T>>(
        &mut self,
        now: Instant,
        size: usize,
        src: &mut S,
        out: &mut Vec<Request<T>, B>,
    ) -> Result<usize, BatchError> {
        if size == 0 {
            return Err(BatchError::ZeroBatch);
        }
        if size > B {
            return Err(BatchError::TooLarge { size, capacity: B });
        }
        Ok(self.take(now, size, false, src, out))
    }

    /// [`poll`](Self::poll) for a size already known to be in `1..=B` (the
    /// controller's batch size comes from a config checked against its space,
    /// whose batch levels are at least 1 and at most `B`, so it has no error to
    /// report); `drain` releases a partial batch too: the service is closing
    /// and nothing more will arrive to fill it.
    pub(crate) fn take<S: RequestSource<T>>(
        &mut self,
        now: Instant,
        size: usize,
        drain: bool,
        src: &mut S,
        out: &mut Vec<Request<T>, B>,
    ) -> usize {
        debug_assert!((1..=B).contains(&size), "batch size {size} outside 1..={B}");
        while self.pending.len() < size {
            match src.dequeue() {
                // Cannot fail: len < size <= B.
                Some(r) => {
                    let _ = self.pending.push_back(r);
                }
                None => break,
            }
        }
        let full = self.pending.len() >= size;
        let expired = self.deadline().is_some_and(|d| now >= d);
        out.clear();
        if !(full || expired || drain) {
            return 0;
        }
        while out.len() < size {
            match self.pending.pop_front() {
                // Cannot fail: out holds fewer than size <= B.
                Some(r) => {
                    let _ = out.push(r);
                }
                None => break,
            }
        }
        out.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::RingQueue;

    fn t(us: u64) -> Instant {
        Instant::from_micros(us)
    }

    #[test]
    fn full_batch_rule_waits_for_size() {
        let mut q: RingQueue<u8, 8> = RingQueue::new();
        let mut b: BatchBuffer<u8, 4> = BatchBuffer::new(None);
        let mut out = Vec::new();
        q.push(t(0), 1).unwrap();
        q.push(t(1), 2).unwrap();
        assert_eq!(b.poll(t(1_000_000), 3, &mut q, &mut out), Ok(0));
        assert_eq!(b.deadline(), None);
        q.push(t(2), 3).unwrap();
        assert_eq!(b.poll(t(3), 3, &mut q, &mut out), Ok(3));
        assert_eq!(
            out.iter().map(|r| r.payload).collect::<Vec<u8, 4>>(),
            [1, 2, 3]
        );
        assert!(b.is_empty());
    }

    #[test]
    fn max_wait_releases_a_partial_batch() {
        let mut q: RingQueue<u8, 8> = RingQueue::new();
        let mut b: BatchBuffer<u8, 4> = BatchBuffer::new(Some(Duration::from_micros(10)));
        let mut out = Vec::new();
        q.push(t(5), 1).unwrap();
        assert_eq!(b.poll(t(14), 4, &mut q, &mut out), Ok(0));
        assert_eq!(b.deadline(), Some(t(15)));
        assert_eq!(b.poll(t(15), 4, &mut q, &mut out), Ok(1));
    }

    #[test]
    fn draining_releases_a_partial_batch_the_rule_would_hold() {
        let mut q: RingQueue<u8, 8> = RingQueue::new();
        let mut b: BatchBuffer<u8, 4> = BatchBuffer::new(None);
        let mut out = Vec::new();
        q.push(t(0), 1).unwrap();
        q.push(t(1), 2).unwrap();
        assert_eq!(b.take(t(2), 4, false, &mut q, &mut out), 0);
        assert_eq!(b.take(t(2), 4, true, &mut q, &mut out), 2);
        assert_eq!(b.take(t(2), 4, true, &mut q, &mut out), 0);
    }

    #[test]
    fn shrinking_the_batch_releases_the_oldest_first() {
        let mut q: RingQueue<u8, 8> = RingQueue::new();
        let mut b: BatchBuffer<u8, 4> = BatchBuffer::new(None);
        let mut out = Vec::new();
        for i in 0..3 {
            q.push(t(i), i as u8).unwrap();
        }
        assert_eq!(b.poll(t(3), 4, &mut q, &mut out), Ok(0));
        assert_eq!(b.poll(t(3), 2, &mut q, &mut out), Ok(2));
        assert_eq!(out[0].payload, 0);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_static_buffer_needs_no_runtime_initialisation() {
        use core::cell::RefCell;
        use critical_section::Mutex;

        static BUFFER: Mutex<RefCell<BatchBuffer<u8, 2>>> =
            Mutex::new(RefCell::new(BatchBuffer::new(None)));

        let mut q: RingQueue<u8, 4> = RingQueue::new();
        q.push(t(0), 1).unwrap();
        q.push(t(0), 2).unwrap();
        let mut out = Vec::new();
        critical_section::with(|cs| {
            let mut b = BUFFER.borrow_ref_mut(cs);
            assert_eq!(b.poll(t(0), 2, &mut q, &mut out), Ok(2));
        });
    }

    #[test]
    fn bad_sizes_are_typed_errors() {
        let mut q: RingQueue<u8, 4> = RingQueue::new();
        let mut b: BatchBuffer<u8, 2> = BatchBuffer::new(None);
        let mut out = Vec::new();
        assert_eq!(
            b.poll(t(0), 0, &mut q, &mut out),
            Err(BatchError::ZeroBatch)
        );
        assert_eq!(
            b.poll(t(0), 3, &mut q, &mut out),
            Err(BatchError::TooLarge {
                size: 3,
                capacity: 2
            })
        );
    }
}
