//! # EcoEdge core
//!
//! The allocation-free heart of EcoEdge: everything needed to serve DNN inference
//! requests in batches while an optimizer tunes CPU clock, GPU clock and batch size
//! so that `alpha * E/E0 + (1 - alpha) * L/L0` stays minimal as load changes.
//!
//! It is `#![no_std]`, uses no `alloc`, and performs no I/O: it never reads a clock,
//! a file, a sensor or a register (the *sans-IO* rule, after smoltcp and
//! quinn-proto). Every entry point takes the current [`time::Instant`]; every output
//! is a value the caller acts on. So the same code drives a Jetson, a Linux host, a
//! virtual-time simulator, or a microcontroller runtime that links only this crate.
//!
//! ## Layers, in the order a request meets them
//!
//! | module | holds |
//! |---|---|
//! | [`time`] | `Instant` and `Duration` in microseconds, values not calls |
//! | [`queue`] | [`queue::RingQueue`]: bounded FIFO, splittable into producer and consumer; refuses and counts when full |
//! | [`batch`] | [`batch::BatchBuffer`]: full-batch release, optional maximum wait |
//! | [`quantile`] | [`quantile::LogHistogram`]: p50/p95/p99 within 1.6 % in 5 KiB |
//! | [`cost`] | [`cost::Baseline`] (E0, L0), [`cost::Alpha`], energy scope |
//! | [`load`] | [`load::Load`]: prices a config's measured service under the last arrivals (replay) |
//! | [`window`] | [`window::CostWindow`]: N requests per config, warm-up discarded, report |
//! | [`space`] | [`space::Space`] of knob [`space::Dimension`]s and [`space::Config`]s |
//! | [`optimizer`] | the [`optimizer::Optimizer`] trait, [`optimizer::EcoGd`], the paper's baselines, [`optimizer::by_name`] |
//! | [`board`] | traits a board port implements: [`board::EnergyMeter`], [`board::FrequencyKnob`] |
//! | [`controller`] | [`controller::Controller`]: calibration, then one optimizer step per window |
//!
//! ## Goals
//! Fixed memory (capacities are const generics; `size_of` is the whole footprint),
//! bounded work per call, typed errors instead of panics, deterministic behaviour
//! for given inputs. Minimum Rust version: 1.91, the workspace's (set by
//! tract, checked by CI).
//!
//! ## Features
//! - `defmt` (off by default): derives `defmt::Format` for the public types and
//!   turns on heapless's `defmt` feature, for logging on embedded targets. A
//!   library build needs nothing more; the firmware binary brings the global
//!   logger and the linker script, as with any defmt crate.
//!
//! ## Firmware use
//! The crate is `#![no_std]`, uses no `alloc` and no `unsafe` (`forbid`), so it
//! links into a bare-metal image as it is:
//! - [`queue::RingQueue::new`] and [`batch::BatchBuffer::new`] are `const fn`: a
//!   queue can be a `static` (behind `critical_section::Mutex<RefCell<_>>`), an
//!   RTIC `#[local]` resource, or a `static_cell::ConstStaticCell` split into an
//!   interrupt handler's [`queue::Producer`] and the service loop's
//!   [`queue::Consumer`].
//! - The queue's counters need no compare-and-swap. Targets without 64-bit
//!   atomics (thumbv6m, thumbv7m) keep them behind a critical section, so such a
//!   firmware links a `critical-section` implementation; see [`queue`].
//! - Errors are small `Copy` enums per call ([`controller::SetupError`],
//!   [`controller::PollBatchError`], [`controller::BatchDoneError`]) with
//!   `Display` and `core::error::Error`, and `defmt::Format` under `defmt`.
//! - `size_of` is the footprint: `core/tests/footprint.rs` holds the budgets of
//!   the controller, the queue and EcoGD, so a change that grows them fails.
//! - CI proves it: `firmware/ffi-check` is a `#![no_std]` static library with its
//!   own panic handler and no global allocator that drives a controller with
//!   EcoGD through a small C API; a C program links it and runs simulated
//!   windows, and `nm` shows no allocator or std symbol anywhere in the archive.
//!
//! [`heapless`] is re-exported: its `Vec` is part of
//! [`controller::Controller::poll_batch`]'s signature, and the re-export spares
//! callers keeping a second, matching heapless version in their manifest.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The fixed-capacity collections of the public API (the batch handed out by
/// [`controller::Controller::poll_batch`] is a `heapless::Vec`), re-exported so
/// callers use the very version this crate was built with.
pub use heapless;

pub mod batch;
pub mod board;
pub mod controller;
pub mod cost;
pub mod load;
pub mod optimizer;
pub mod quantile;
pub mod queue;
pub mod space;
pub mod time;
pub mod window;

/// The types most callers need, in one import.
pub mod prelude {
    pub use crate::batch::BatchBuffer;
    pub use crate::board::{EnergyMeter, EnergySource, FrequencyKnob};
    pub use crate::controller::{
        BatchDoneError, Completion, Controller, Phase, PollBatchError, ReadingError, Settings,
        SetupError,
    };
    pub use crate::cost::{Alpha, Baseline, EnergyScope};
    pub use crate::optimizer::{AnyOptimizer, EcoGd, EcoGdSettings, Fixed, Optimizer, by_name};
    pub use crate::queue::{Request, RequestSource, RingQueue};
    pub use crate::space::{Config, Dimension, Knob, Space};
    pub use crate::time::{Duration, Instant};
    pub use crate::window::{WindowReport, WindowSettings};
}
