//! Optimizers by name in simulation: the core's names, plus the simulator's
//! `oracle` (the best static config in hindsight, which only a simulator knows).

use anyhow::{Context, Result};
use ecoedge_core::optimizer::{AnyOptimizer, Fixed, NameError, by_name};
use ecoedge_core::space::Space;

use super::model::DeviceModel;
use super::{SimSetup, oracle, simulate, space_of};
use crate::record::Outcome;

/// The core's optimizer called `name`; an unknown name's error also lists the
/// simulator's `oracle`, which the core does not know.
pub fn optimizer_named(name: &str, space: &Space, seed: u64) -> Result<AnyOptimizer> {
    by_name(name, space, seed).map_err(|e| match e {
        NameError::Unknown(_) => anyhow::anyhow!("{e}, or oracle in simulation"),
        e => anyhow::anyhow!("{e}"),
    })
}

/// Runs optimizer `name` (or the oracle) on `model` under `setup`.
pub fn simulate_named(model: &dyn DeviceModel, name: &str, setup: &SimSetup) -> Result<Outcome> {
    let space = space_of(model, setup)?;
    let optimizer: AnyOptimizer = if name == "oracle" {
        let baseline = oracle::reference_baseline(model, setup)?;
        Fixed::new(oracle::best_static(model, setup, &baseline)?.config).into()
    } else {
        optimizer_named(name, &space, setup.seed).context("--optimizer")?
    };
    simulate(model, optimizer, setup)
}
