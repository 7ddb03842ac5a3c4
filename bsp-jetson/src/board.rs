//! Which Jetson this is: chip ID from the fuse driver (or the SoC bus), human
//! name from the device tree.

use crate::sysfs::{Error, Result, Sysfs};
use serde::Serialize;
use std::path::Path;

/// Tegra chip ID as the fuse driver reports it.
pub const CHIP_ID_FILE: &str = "/sys/module/tegra_fuse/parameters/tegra_chip_id";
/// The SoC bus's ID: the same number, or `jep106:036b:00NN` (NN hexadecimal)
/// from kernels that report the SMCCC SoC ID.
pub const SOC_ID_FILE: &str = "/sys/devices/soc0/soc_id";
/// The board's name, NUL-terminated.
pub const MODEL_FILE: &str = "/proc/device-tree/model";

/// The Jetson families EcoEdge knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BoardKind {
    /// T194 (chip 25): Xavier NX; AGX Xavier shares the chip and lands here
    /// too, the model string tells them apart.
    #[serde(rename = "xavier-nx")]
    XavierNx,
    /// T234 (chip 35): Orin NX, Orin Nano, AGX Orin.
    #[serde(rename = "orin")]
    Orin,
    /// T210 (chip 33): Nano, TX1.
    #[serde(rename = "nano")]
    Nano,
    /// T186 (chip 24): TX2.
    #[serde(rename = "tx2")]
    Tx2,
    /// Not recognised: every knob and sensor is found by discovery alone.
    #[serde(rename = "unknown")]
    Unknown,
}

impl BoardKind {
    /// The kind of a Tegra chip ID.
    pub fn from_chip_id(id: u32) -> Self {
        match id {
            25 => BoardKind::XavierNx,
            35 => BoardKind::Orin,
            33 => BoardKind::Nano,
            24 => BoardKind::Tx2,
            _ => BoardKind::Unknown,
        }
    }

    /// The name used in reports (`xavier-nx`, `orin`, `nano`, `tx2`, `unknown`).
    pub fn name(self) -> &'static str {
        match self {
            BoardKind::XavierNx => "xavier-nx",
            BoardKind::Orin => "orin",
            BoardKind::Nano => "nano",
            BoardKind::Tx2 => "tx2",
            BoardKind::Unknown => "unknown",
        }
    }
}

/// What detection found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardInfo {
    /// The family.
    pub kind: BoardKind,
    /// The chip ID read, if any file gave one.
    pub chip_id: Option<u32>,
    /// The device-tree model string, if present.
    pub model: Option<String>,
}

/// Reads the chip ID (fuse driver, else SoC bus) and the model. Missing files
/// give [`BoardKind::Unknown`] and `None`, not an error: a board we do not know
/// still runs on discovery. A file that exists but holds garbage is an error.
pub fn detect(sysfs: &Sysfs) -> Result<BoardInfo> {
    let chip_id = match read_optional(sysfs, CHIP_ID_FILE)? {
        Some((path, s)) => Some(parse_chip_id(&path, &s)?),
        None => match read_optional(sysfs, SOC_ID_FILE)? {
            Some((path, s)) => Some(parse_chip_id(&path, &s)?),
            None => None,
        },
    };
    let model = read_optional(sysfs, MODEL_FILE)?.map(|(_, s)| s);
    Ok(BoardInfo {
        kind: chip_id.map_or(BoardKind::Unknown, BoardKind::from_chip_id),
        chip_id,
        model,
    })
}

fn read_optional(sysfs: &Sysfs, abs: &str) -> Result<Option<(std::path::PathBuf, String)>> {
    let path = sysfs.path(abs);
    if !path.exists() {
        return Ok(None);
    }
    let s = sysfs.read_string(&path)?;
    Ok(Some((path, s)))
}

fn parse_chip_id(path: &Path, s: &str) -> Result<u32> {
    let parsed = match s.strip_prefix("jep106:") {
        Some(rest) => rest
            .rsplit(':')
            .next()
            .and_then(|hex| u32::from_str_radix(hex, 16).ok()),
        None => s.parse().ok(),
    };
    parsed.ok_or_else(|| Error::Parse {
        path: path.to_path_buf(),
        content: s.to_string(),
        expected: "a Tegra chip id",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chip_ids_in_both_formats() {
        let p = Path::new("x");
        assert_eq!(parse_chip_id(p, "25").unwrap(), 25);
        assert_eq!(parse_chip_id(p, "jep106:036b:0023").unwrap(), 35);
        assert!(matches!(
            parse_chip_id(p, "tegra"),
            Err(Error::Parse { .. })
        ));
        assert_eq!(BoardKind::from_chip_id(24), BoardKind::Tx2);
        assert_eq!(BoardKind::from_chip_id(99).name(), "unknown");
    }
}
