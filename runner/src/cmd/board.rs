//! `ecoedge board`: what the board offers (detection, clocks, governors, power rails).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ecoedge_bsp_jetson::report::{BoardReport, report};
use ecoedge_bsp_jetson::sampler::PowerSource;
use ecoedge_bsp_jetson::state::DEFAULT_DIR;
use ecoedge_bsp_jetson::{MeterSpec, StateDir, Sysfs, open_i2c_meter, restore_stored};
use serde::Serialize;

use crate::board::{BoardChoice, nvml};

/// Arguments of `ecoedge board`.
#[derive(Debug, Clone, Args)]
pub struct BoardArgs {
    /// Board: auto (what the sysfs tree shows: a Jetson or a Linux host),
    /// jetson, host, or nvml (also the NVIDIA GPU, through NVML).
    #[arg(long, value_enum, default_value_t = BoardChoice::Auto)]
    pub board: BoardChoice,
    /// Root under which /sys and /proc are read (a fake tree, a container mount).
    #[arg(long, default_value = "/")]
    pub sysfs_root: PathBuf,
    /// Also read an INA3221 channel directly over Linux I2C:
    /// `i2c:/dev/i2c-N@0xADDR[:CHANNEL]` (the kernel's driver must not own it).
    #[arg(long)]
    pub meter: Option<MeterSpec>,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Restore the clocks a run that died without restoring them left
    /// pinned, from the store in the state dir (as the next run would).
    #[arg(long)]
    pub restore: bool,
    /// The state dir of --restore (default: /run/ecoedge under --sysfs-root).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// A reading of the `--meter` rail.
#[derive(Debug, Serialize)]
struct MeterReading {
    /// The spec, as given.
    spec: String,
    /// Power now, watts.
    power_w: f64,
}

/// `ecoedge board`.
pub fn run(args: &BoardArgs) -> Result<()> {
    if args.restore {
        return restore(args);
    }
    let mut r = report(&args.sysfs_root)?;
    if let Some(gpu) = &r.gpu {
        r.notes.push(format!(
            "the GPU clock is searched only when inference runs on the GPU (--engine ort --ep cuda or tensorrt); with tract or --ep cpu it is pinned at its lowest level ({} MHz)",
            gpu.levels_hz.first().map_or(0, |hz| hz / 1_000_000)
        ));
    }
    let nvml = (args.board == BoardChoice::Nvml)
        .then(|| nvml::Gpu::open()?.report())
        .transpose()
        .context("--board nvml")?;
    let meter = args
        .meter
        .as_ref()
        .map(|spec| {
            read_meter(spec, &Sysfs::new(&args.sysfs_root))
                .with_context(|| format!("--meter {spec}"))
        })
        .transpose()?;
    if args.json {
        let mut doc = serde_json::to_value(&r)?;
        if let Some(m) = &meter {
            doc["meter"] = serde_json::to_value(m)?;
        }
        if let Some(g) = &nvml {
            doc["nvml"] = serde_json::to_value(g)?;
        }
        println!("{doc}");
    } else {
        print_report(&r);
        if let Some(g) = &nvml {
            print_nvml(g);
        }
        if let Some(m) = &meter {
            println!("meter:  {} {:>7.0} mW", m.spec, m.power_w * 1e3);
        }
    }
    Ok(())
}

/// `ecoedge board --restore`.
fn restore(args: &BoardArgs) -> Result<()> {
    let sysfs = Sysfs::new(&args.sysfs_root);
    let state = StateDir::new(
        args.state_dir
            .clone()
            .unwrap_or_else(|| sysfs.path(DEFAULT_DIR)),
    );
    if let Some(pid) = nvml::restore_stored(&state).context("--restore")? {
        println!(
            "reset the GPU clock lock process {pid} left (store in {})",
            state.dir().display()
        );
    }
    match restore_stored(&sysfs, &state).context("--restore")? {
        Some(stored) => println!(
            "restored the clocks process {} left pinned ({} clocks{}; store in {})",
            stored.pid,
            stored.clocks.len(),
            if stored.emc.is_some() {
                " and the memory clock"
            } else {
                ""
            },
            state.dir().display()
        ),
        None => println!("nothing to restore: no store in {}", state.dir().display()),
    }
    Ok(())
}

fn print_nvml(g: &nvml::GpuReport) {
    println!("nvml:   {} ({})", g.name, g.uuid);
    println!(
        "        graphics {} MHz, memory {} MHz, {:.1} W, energy counter: {}",
        g.graphics_mhz,
        g.memory_mhz,
        g.power_w,
        if g.energy_counter {
            "yes"
        } else {
            "no (power sampled)"
        }
    );
    println!(
        "        {} levels searched with --gpu-clocks lock, MHz: {}",
        g.levels_mhz.len(),
        g.levels_mhz
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn read_meter(spec: &MeterSpec, sysfs: &Sysfs) -> Result<MeterReading> {
    let mut rail = open_i2c_meter(spec, sysfs)?;
    let power_w = rail.power_w().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(MeterReading {
        spec: spec.to_string(),
        power_w,
    })
}

fn mhz(levels: &[u32], per_mhz: u32) -> String {
    let l: Vec<String> = levels.iter().map(|v| (v / per_mhz).to_string()).collect();
    format!("{} levels, {} MHz", levels.len(), l.join(" "))
}

fn print_report(r: &BoardReport) {
    println!(
        "board:  {} ({}){}",
        r.board.name(),
        r.model.as_deref().unwrap_or("model unknown"),
        r.chip_id
            .map_or(String::new(), |c| format!(", chip id {c}"))
    );
    if let Some(cpu) = &r.cpu {
        println!("cpu:    {}", mhz(&cpu.levels_khz, 1_000));
        for p in &cpu.policies {
            println!(
                "        {} (cpus {:?}): {} at {}-{} MHz, now {} MHz",
                p.name,
                p.cpus,
                p.governor,
                p.min_khz / 1_000,
                p.max_khz / 1_000,
                p.cur_khz / 1_000
            );
        }
    }
    if let Some(gpu) = &r.gpu {
        println!("gpu:    {} at {}", gpu.name, gpu.path);
        println!("        {}", mhz(&gpu.levels_hz, 1_000_000));
        println!(
            "        {} at {}-{} MHz, now {} MHz",
            gpu.governor,
            gpu.min_hz / 1_000_000,
            gpu.max_hz / 1_000_000,
            gpu.cur_hz / 1_000_000
        );
    }
    for rail in &r.rails {
        println!(
            "rail:   {:<16} {:>6} mV {:>6} mA {:>7} mW",
            rail.label, rail.voltage_mv, rail.current_ma, rail.power_mw
        );
    }
    for n in &r.notes {
        println!("note:   {n}");
    }
}
