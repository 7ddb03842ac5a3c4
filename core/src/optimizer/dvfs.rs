//! `dvfs`: the operating system's frequency governors with a fixed batch size.
//!
//! The paper's DVFS baseline leaves the CPU to `schedutil` and the GPU to
//! `nvhost_podgov` and fixes the batch size (8 or 16). Here that is an optimizer
//! whose [`governed`](Optimizer::governed) says yes for CPU and GPU, so the board
//! hands those knobs to the governors, and whose config pins only the batch.

use super::Optimizer;
use crate::space::{Config, Knob, Space};
use crate::window::WindowReport;

/// The DVFS baseline; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dvfs {
    batch: u32,
}

impl Dvfs {
    /// Governors for CPU and GPU, batch size `batch` (the paper: 8 or 16). A batch
    /// size that is not a level of the space uses the largest level below it (the
    /// smallest level if none is below).
    pub fn new(batch: u32) -> Self {
        Dvfs { batch }
    }

    /// The batch size asked for.
    pub fn batch(&self) -> u32 {
        self.batch
    }

    fn config(&self, space: &Space) -> Config {
        let mut c = space.max_config();
        if let Some((dim, d)) = space
            .position(Knob::Batch)
            .and_then(|dim| space.dims().get(dim).map(|d| (dim, d)))
        {
            let index = d
                .levels()
                .iter()
                .rposition(|&b| b <= self.batch)
                .unwrap_or(0);
            c = c.with(dim, index);
        }
        c
    }
}

impl Optimizer for Dvfs {
    fn name(&self) -> &'static str {
        "dvfs"
    }

    fn start(&mut self, space: &Space) -> Config {
        self.config(space)
    }

    fn step(&mut self, space: &Space, _report: &WindowReport) -> Config {
        self.config(space)
    }

    fn governed(&self, knob: Knob) -> bool {
        matches!(knob, Knob::Cpu | Knob::Gpu)
    }
}
