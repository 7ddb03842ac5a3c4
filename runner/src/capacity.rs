//! Fixed capacities shared by the real-time service and the simulator, so a
//! simulated run and a run on a board batch and queue alike.

/// Largest batch the controller forms (the batch knob runs `1..=MAX_BATCH`).
pub const MAX_BATCH: usize = 16;
/// Request queue: `QUEUE - 1` requests wait, then arrivals are refused (and counted).
pub const QUEUE: usize = 1024;
