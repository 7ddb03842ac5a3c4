//! `ecoedge board`: what the board offers (detection, clocks, governors, power rails).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ecoedge_bsp_jetson::report::{BoardReport, report};

/// Arguments of `ecoedge board`.
#[derive(Debug, Clone, Args)]
pub struct BoardArgs {
    /// Root under which /sys and /proc are read (a fake tree, a container mount).
    #[arg(long, default_value = "/")]
    pub sysfs_root: PathBuf,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// `ecoedge board`.
pub fn run(args: &BoardArgs) -> Result<()> {
    let r = report(&args.sysfs_root)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print_report(&r);
    }
    Ok(())
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
