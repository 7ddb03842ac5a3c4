//! `ecoedge profile`: write a device profile file that `--device PATH` loads.
//!
//! For a simulated device this writes the model's latency and power at every
//! config; profiling a real board runs the model over a sample of configs on it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::device;
use crate::sim::profile::write_profile;

/// Arguments of `ecoedge profile`.
#[derive(Debug, Clone, Args)]
pub struct ProfileArgs {
    /// Device to profile: `xavier-nx` (the analytic model) or a profile file.
    #[arg(long, default_value = "xavier-nx")]
    pub device: String,
    /// DNN: resnet50 or bert-tiny.
    #[arg(long, default_value = "resnet50")]
    pub model: String,
    /// Where to write the profile CSV.
    #[arg(long)]
    pub out: PathBuf,
}

/// `ecoedge profile`.
pub fn run(args: &ProfileArgs) -> Result<()> {
    let model = device::model(&args.device, device::dnn(&args.model)?)?;
    let text = write_profile(model.as_ref());
    std::fs::write(&args.out, &text)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "wrote {} configs of {} running {} to {}",
        text.lines().count() - 1,
        args.device,
        args.model,
        args.out.display()
    );
    Ok(())
}
