//! Applying a config to a board's knobs, shared by the simulator and real boards.

use anyhow::{Context, Result};
use ecoedge_core::board::FrequencyKnob;
use ecoedge_core::space::{Config, Knob, Space};

/// Sets `knob` to its level in `config`, or hands it to the OS governor when
/// `governed` says so. A knob the space does not contain is left alone.
pub fn apply_config<K>(
    space: &Space,
    config: &Config,
    governed: impl Fn(Knob) -> bool,
    knob: &mut K,
) -> Result<()>
where
    K: FrequencyKnob,
    K::Error: std::error::Error + Send + Sync + 'static,
{
    let which = knob.knob();
    let Some(dim) = space.position(which) else {
        return Ok(());
    };
    if governed(which) {
        knob.hand_over()
            .with_context(|| format!("handing the {} clock to its governor", which.name()))
    } else {
        let index = config.index(dim);
        knob.set_level(index)
            .with_context(|| format!("setting the {} clock to level {index}", which.name()))
    }
}
