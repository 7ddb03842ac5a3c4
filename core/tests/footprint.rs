//! Memory budgets: `size_of` is the whole footprint of the core's types (no heap),
//! so a change that grows one past its budget fails here instead of surfacing as
//! a stack overflow or a full RAM section on a board.

use ecoedge_core::load::LOAD_SAMPLE;
use ecoedge_core::prelude::*;
use ecoedge_core::window::CostWindow;

/// The type's size must not exceed `max` bytes.
fn within(name: &str, size: usize, max: usize) {
    assert!(
        size <= max,
        "size_of::<{name}>() = {size} B is over its {max} B budget"
    );
}

/// Budgets are this tree's sizes on x86_64 plus 5-8 % headroom, so ordinary
/// changes pass and a real growth does not; raise one knowingly, with its new
/// figure here and in the README's performance table.
///
/// | type | size | budget |
/// |---|---|---|
/// | `Controller<(), Fixed, 16>` | 45 080 B | 47 KiB |
/// | the same less its load sample (4096 arrivals, 32 KiB) | 12 312 B | 13 KiB |
/// | `Controller<(), AnyOptimizer, 16>` | 64 864 B | 67 KiB |
/// | `RingQueue<(), 256>` | 4 136 B | 4 352 B |
/// | `EcoGd` | 5 336 B | 5.5 KiB |
/// | `CostWindow` | 10 552 B | 11 KiB |
/// | `Space` | 1 096 B | 1 152 B |
#[test]
fn sizes_stay_within_their_budgets() {
    const KIB: usize = 1024;
    let fixed = size_of::<Controller<(), Fixed, 16>>();
    within("Controller<(), Fixed, 16>", fixed, 47 * KIB);
    within(
        "Controller<(), Fixed, 16> less its load sample",
        fixed - LOAD_SAMPLE * size_of::<Instant>(),
        13 * KIB,
    );
    within(
        "Controller<(), AnyOptimizer, 16>",
        size_of::<Controller<(), AnyOptimizer, 16>>(),
        67 * KIB,
    );
    within("RingQueue<(), 256>", size_of::<RingQueue<(), 256>>(), 4352);
    within("EcoGd", size_of::<EcoGd>(), 5632);
    within("CostWindow", size_of::<CostWindow>(), 11 * KIB);
    within("Space", size_of::<Space>(), 1152);
}
