//! Property tests of the request queue and the batch buffer against plain `std`
//! models written from their specification.

use std::collections::VecDeque;

use ecoedge_core::batch::BatchBuffer;
use ecoedge_core::queue::{QueueStats, Refused, RequestSource, RingQueue};
use ecoedge_core::time::{Duration, Instant};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(0xEC0),
        ..ProptestConfig::default()
    }
}

#[derive(Debug, Clone)]
enum QueueOp {
    Push(u16),
    Pop,
}

fn queue_op() -> impl Strategy<Value = QueueOp> {
    prop_oneof![any::<u16>().prop_map(QueueOp::Push), Just(QueueOp::Pop)]
}

#[derive(Debug, Clone)]
enum BatchOp {
    /// A request arrives this many microseconds after the previous event.
    Arrive(u64),
    /// Poll after this many microseconds with this batch size.
    Poll(u64, usize),
}

fn batch_op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        (0u64..50).prop_map(BatchOp::Arrive),
        (0u64..50, 1usize..=4).prop_map(|(d, s)| BatchOp::Poll(d, s)),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// The queue behaves like a VecDeque capped at N - 1, refusals hand the item
    /// back, and the counters account for every request offered.
    #[test]
    fn ring_queue_matches_vecdeque(ops in prop::collection::vec(queue_op(), 0..200)) {
        const N: usize = 5;
        let mut q: RingQueue<u16, N> = RingQueue::new();
        let mut model: VecDeque<(u64, u16)> = VecDeque::new();
        let mut stats = QueueStats::default();
        for (t, op) in ops.into_iter().enumerate() {
            let now = Instant::from_micros(t as u64);
            match op {
                QueueOp::Push(v) => {
                    let got = q.push(now, v);
                    if model.len() < N - 1 {
                        prop_assert_eq!(got, Ok(stats.accepted));
                        model.push_back((stats.accepted, v));
                        stats.accepted += 1;
                    } else {
                        prop_assert_eq!(got, Err(Refused(v)));
                        stats.refused += 1;
                    }
                }
                QueueOp::Pop => {
                    let got = q.pop().map(|r| (r.id, r.payload));
                    let want = model.pop_front();
                    if want.is_some() {
                        stats.served += 1;
                    }
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(q.stats(), stats);
            prop_assert_eq!(RequestSource::len(&q), model.len());
            prop_assert_eq!(stats.waiting(), model.len() as u64);
        }
    }

    /// The batch buffer releases exactly what the specification says: top up to
    /// the batch size from the queue, release the oldest `size` when full or when
    /// the oldest has waited `max_wait` (if set).
    #[test]
    fn batch_buffer_matches_model(
        ops in prop::collection::vec(batch_op(), 0..200),
        max_wait in prop::option::of(0u64..100),
    ) {
        let mut q: RingQueue<u32, 8> = RingQueue::new();
        let mut b: BatchBuffer<u32, 4> = BatchBuffer::new(max_wait.map(Duration::from_micros));
        let mut out = heapless::Vec::new();
        let mut model_queue: VecDeque<(u64, u32)> = VecDeque::new();
        let mut model_pending: VecDeque<(u64, u32)> = VecDeque::new();
        let (mut now, mut next_id) = (0u64, 0u32);
        for op in ops {
            match op {
                BatchOp::Arrive(dt) => {
                    now += dt;
                    let accepted = q.push(Instant::from_micros(now), next_id).is_ok();
                    prop_assert_eq!(accepted, model_queue.len() < 7);
                    if accepted {
                        model_queue.push_back((now, next_id));
                    }
                    next_id += 1;
                }
                BatchOp::Poll(dt, size) => {
                    now += dt;
                    while model_pending.len() < size {
                        match model_queue.pop_front() {
                            Some(r) => model_pending.push_back(r),
                            None => break,
                        }
                    }
                    let expired = match (max_wait, model_pending.front()) {
                        (Some(w), Some(&(arrival, _))) => now >= arrival + w,
                        _ => false,
                    };
                    let want: Vec<(u64, u32)> = if model_pending.len() >= size || expired {
                        let k = size.min(model_pending.len());
                        model_pending.drain(..k).collect()
                    } else {
                        Vec::new()
                    };
                    let n = b.poll(Instant::from_micros(now), size, &mut q, &mut out).unwrap();
                    let got: Vec<(u64, u32)> =
                        out.iter().map(|r| (r.arrival.as_micros(), r.payload)).collect();
                    prop_assert_eq!(n, want.len());
                    prop_assert_eq!(got, want);
                    prop_assert_eq!(b.len(), model_pending.len());
                    let deadline = match (max_wait, model_pending.front()) {
                        (Some(w), Some(&(arrival, _))) => Some(Instant::from_micros(arrival + w)),
                        _ => None,
                    };
                    prop_assert_eq!(b.deadline(), deadline);
                }
            }
        }
    }
}
