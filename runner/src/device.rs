//! Naming devices and DNNs on the command line.

use std::path::Path;

use anyhow::{Result, bail};

use crate::sim::model::{DeviceModel, DnnKind, XavierNx};
use crate::sim::profile::Profile;

/// Parses a DNN name the simulator models.
pub fn dnn(name: &str) -> Result<DnnKind> {
    match name {
        "resnet50" => Ok(DnnKind::Resnet50),
        "bert-tiny" => Ok(DnnKind::BertTiny),
        _ => bail!("unknown model `{name}` for the simulator (expected resnet50 or bert-tiny)"),
    }
}

/// The device model named `device` (`xavier-nx` or a profile file) running `dnn`.
pub fn model(device: &str, dnn: DnnKind) -> Result<Box<dyn DeviceModel>> {
    if device == "xavier-nx" {
        return Ok(Box::new(XavierNx::new(dnn)));
    }
    let path = Path::new(device);
    if !path.exists() {
        bail!("unknown device `{device}` (expected xavier-nx or the path of a profile file)");
    }
    Ok(Box::new(Profile::load(path)?))
}
