//! Knobs for every board alike: which ones a run searches (`--knobs`), their
//! lower search limits, the one place a knob space is built, and applying a
//! config to a board's knobs.
//!
//! A board offers its clock knobs as the core's [`FrequencyKnob`]s; the space
//! is their [`FrequencyKnob::dimension`]s that the run selects, in the order the
//! board offers them (CPU, GPU, memory), then batch sizes. Nothing here knows
//! how many knobs there are: any number up to the core's
//! [`MAX_DIMS`] works.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use ecoedge_core::board::FrequencyKnob;
use ecoedge_core::space::{Config, Dimension, Knob, MAX_DIMS, Space};
use serde::Serialize;

/// The name of `knob` on the command line: `emc` for the memory clock (the
/// name Jetson documentation and `jetson_clocks` use), the core's name else.
pub fn cli_name(knob: Knob) -> &'static str {
    match knob {
        Knob::Memory => "emc",
        k => k.name(),
    }
}

/// The knobs a run searches (`--knobs`), each at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnobSet {
    knobs: heapless::Vec<Knob, MAX_DIMS>,
}

impl KnobSet {
    /// The paper's three: CPU clock, GPU clock, batch size.
    pub fn paper() -> Self {
        KnobSet {
            knobs: heapless::Vec::from_slice(&[Knob::Cpu, Knob::Gpu, Knob::Batch])
                .expect("three fit"),
        }
    }

    /// Whether `knob` is searched.
    pub fn contains(&self, knob: Knob) -> bool {
        self.knobs.contains(&knob)
    }
}

impl Default for KnobSet {
    fn default() -> Self {
        Self::paper()
    }
}

impl FromStr for KnobSet {
    type Err = String;

    /// `cpu,gpu,batch,emc` in any order; `memory` is accepted for `emc`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut knobs = heapless::Vec::new();
        for name in s.split(',').map(str::trim) {
            let knob = match name {
                "cpu" => Knob::Cpu,
                "gpu" => Knob::Gpu,
                "batch" => Knob::Batch,
                "emc" | "memory" => Knob::Memory,
                _ => {
                    return Err(format!(
                        "unknown knob `{name}` (expected cpu, gpu, batch or emc)"
                    ));
                }
            };
            if knobs.contains(&knob) {
                return Err(format!("knob `{name}` named twice"));
            }
            knobs
                .push(knob)
                .map_err(|_| format!("at most {MAX_DIMS} knobs"))?;
        }
        Ok(KnobSet { knobs })
    }
}

impl fmt::Display for KnobSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.knobs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(cli_name(*k))?;
        }
        Ok(())
    }
}

/// Lower search limits: per knob, the lowest level index a search may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowerLimits {
    limits: [(Knob, usize); MAX_DIMS],
}

impl LowerLimits {
    /// No limit on any knob: the full space the slides describe.
    pub const NONE: LowerLimits = LowerLimits {
        limits: [(Knob::Cpu, 0); MAX_DIMS],
    };

    /// The original code's limits: CPU and GPU level index 4, batch size 4
    /// (index 3); the memory clock, which the original did not tune, none.
    pub const ORIGINAL: LowerLimits = LowerLimits {
        limits: [
            (Knob::Cpu, 4),
            (Knob::Gpu, 4),
            (Knob::Batch, 3),
            (Knob::Memory, 0),
        ],
    };

    /// The lower limit of `knob` (0 when none is set).
    ///
    /// A limit past a knob's last level is an error when the space is built.
    pub fn of(&self, knob: Knob) -> usize {
        self.limits
            .iter()
            .find(|(k, _)| *k == knob)
            .map_or(0, |&(_, limit)| limit)
    }
}

/// The knob space of a run: each clock dimension the board offers (`clocks`,
/// as [`FrequencyKnob::dimension`] gives them) that `knobs` selects, in the
/// board's order, then batch sizes `1..=max_batch` if `knobs` selects the
/// batch; each searched from its lower limit up. Knobs selected that the board
/// does not offer are left out (the board says why in its notes).
pub fn build_space(
    clocks: impl IntoIterator<Item = Dimension>,
    knobs: &KnobSet,
    max_batch: u32,
    limits: &LowerLimits,
) -> Result<Space> {
    let limited = |d: Dimension| -> Result<Dimension> {
        let knob = d.knob();
        let lower = limits.of(knob);
        d.with_lower_limit(lower)
            .with_context(|| format!("lower limit {lower} of the {} knob", cli_name(knob)))
    };
    let mut space = Space::default();
    for dim in clocks.into_iter().filter(|d| knobs.contains(d.knob())) {
        space.push(limited(dim)?)?;
    }
    if knobs.contains(Knob::Batch) {
        space.push(limited(Dimension::batch(max_batch)?)?)?;
    }
    if space.is_empty() {
        bail!("no knob to tune: the board offers none of --knobs {knobs}");
    }
    Ok(space)
}

/// The dimensions of a board's clock knobs, in the board's order.
pub fn dimensions<'a, K>(knobs: impl IntoIterator<Item = &'a K>) -> Result<Vec<Dimension>>
where
    K: FrequencyKnob + ?Sized + 'a,
{
    knobs
        .into_iter()
        .map(|k| {
            k.dimension()
                .with_context(|| format!("levels of the {} knob", cli_name(k.knob())))
        })
        .collect()
}

/// Sets `knob` to its level in `config`, or hands it to the OS governor when
/// `governed` says so. A knob the space does not contain is left alone.
pub fn apply_config<K>(
    space: &Space,
    config: &Config,
    governed: impl Fn(Knob) -> bool,
    knob: &mut K,
) -> Result<()>
where
    K: FrequencyKnob + ?Sized,
    K::Error: Into<anyhow::Error>,
{
    let which = knob.knob();
    let Some(dim) = space.position(which) else {
        return Ok(());
    };
    if governed(which) {
        knob.hand_over()
            .map_err(Into::into)
            .with_context(|| format!("handing the {} clock to its governor", cli_name(which)))
    } else {
        let index = config.index(dim);
        knob.set_level(index)
            .map_err(Into::into)
            .with_context(|| format!("setting the {} clock to level {index}", cli_name(which)))
    }
}

/// A config in physical units (null where the board has no such knob or the OS
/// governor sets it).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ConfigJson {
    /// CPU clock, kHz.
    pub cpu_khz: Option<u32>,
    /// GPU clock, Hz.
    pub gpu_hz: Option<u32>,
    /// Memory (EMC) clock, Hz; left out of the JSON unless the run tunes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emc_hz: Option<u32>,
    /// Batch size.
    pub batch: u32,
}

impl ConfigJson {
    /// `config` in the units of `space`.
    pub fn new(space: &Space, config: &Config) -> Self {
        ConfigJson {
            cpu_khz: space.knob_value(config, Knob::Cpu),
            gpu_hz: space.knob_value(config, Knob::Gpu),
            emc_hz: space.knob_value(config, Knob::Memory),
            batch: space.batch_size(config),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clocks() -> Vec<Dimension> {
        vec![
            Dimension::new(Knob::Cpu, &[1, 2, 3, 4, 5, 6]).unwrap(),
            Dimension::new(Knob::Gpu, &[10, 20, 30, 40, 50]).unwrap(),
            Dimension::new(Knob::Memory, &[100, 200]).unwrap(),
        ]
    }

    #[test]
    fn knob_sets_parse_and_print() {
        let k: KnobSet = "cpu,gpu,batch,emc".parse().unwrap();
        assert_eq!(k.to_string(), "cpu,gpu,batch,emc");
        assert!(k.contains(Knob::Memory));
        assert_eq!(
            "batch,memory".parse::<KnobSet>().unwrap().to_string(),
            "batch,emc"
        );
        assert!("cpu,cpu".parse::<KnobSet>().unwrap_err().contains("twice"));
        assert!("cpu,fan".parse::<KnobSet>().unwrap_err().contains("`fan`"));
        assert_eq!(KnobSet::default().to_string(), "cpu,gpu,batch");
    }

    #[test]
    fn spaces_take_the_selected_knobs_in_board_order_with_limits() {
        let s = build_space(clocks(), &KnobSet::paper(), 16, &LowerLimits::ORIGINAL).unwrap();
        let knobs: Vec<Knob> = s.dims().iter().map(|d| d.knob()).collect();
        assert_eq!(knobs, [Knob::Cpu, Knob::Gpu, Knob::Batch]);
        let lower: Vec<usize> = s.dims().iter().map(|d| d.lower()).collect();
        assert_eq!(lower, [4, 4, 3]);
        let all: KnobSet = "batch,emc,gpu,cpu".parse().unwrap();
        let s = build_space(clocks(), &all, 8, &LowerLimits::NONE).unwrap();
        let knobs: Vec<Knob> = s.dims().iter().map(|d| d.knob()).collect();
        assert_eq!(knobs, [Knob::Cpu, Knob::Gpu, Knob::Memory, Knob::Batch]);
        assert_eq!(s.size(), 6 * 5 * 2 * 8);
    }

    #[test]
    fn a_board_without_the_knobs_asked_for_is_an_error() {
        let only_gpu: KnobSet = "gpu".parse().unwrap();
        let err = build_space(Vec::new(), &only_gpu, 16, &LowerLimits::NONE).unwrap_err();
        assert!(err.to_string().contains("--knobs gpu"), "{err}");
        let tiny = vec![Dimension::new(Knob::Cpu, &[1, 2]).unwrap()];
        let err = build_space(tiny, &KnobSet::paper(), 16, &LowerLimits::ORIGINAL).unwrap_err();
        assert!(
            format!("{err:#}").contains("lower limit 4 of the cpu knob"),
            "{err:#}"
        );
    }
}
