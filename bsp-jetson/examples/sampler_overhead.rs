//! Measures the CPU cost of the power sampler at 1 kHz.
//!
//! Builds a fake JetPack 5 hwmon tree (`in1_input`, `curr1_input`: two reads per
//! sample, the costlier of the two sensor layouts), runs a [`Sampler`] on it for
//! a few seconds while the main thread sleeps, and prints the process's CPU time
//! (user + system, from `getrusage`) as a share of one core. For comparison it
//! first runs a bare loop that only sleeps until each deadline (1 ms by default), the
//! same way: the cost of waking up that often on this machine, which no
//! sampler at that rate can go below.
//!
//! `cargo run --release -p ecoedge-bsp-jetson --example sampler_overhead [seconds] [period_ms]`

use ecoedge_bsp_jetson::sampler::Clock;
use ecoedge_bsp_jetson::{MonotonicClock, PowerMonitor, Sampler, SamplerConfig, Sysfs};
use ecoedge_core::board::EnergyMeter;
use std::fs;
use std::time::{Duration, Instant};

fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: f64 = std::env::args().nth(1).map_or(Ok(3.0), |s| s.parse())?;
    let period_ms: f64 = std::env::args().nth(2).map_or(Ok(1.0), |s| s.parse())?;
    let period = Duration::from_secs_f64(period_ms / 1e3);
    let root = tempfile::tempdir()?;
    let hw = root
        .path()
        .join("sys/bus/i2c/drivers/ina3221/7-0040/hwmon/hwmon3");
    fs::create_dir_all(&hw)?;
    fs::write(hw.join("in1_label"), "VDD_IN\n")?;
    fs::write(hw.join("in1_input"), "5080\n")?;
    fs::write(hw.join("curr1_input"), "1200\n")?;

    let bare = {
        let cpu0 = cpu_time();
        let start = Instant::now();
        let mut next = start;
        while start.elapsed().as_secs_f64() < secs {
            next += period;
            let now = Instant::now();
            if next > now {
                std::thread::park_timeout(next - now);
            }
        }
        (cpu_time() - cpu0).as_secs_f64() / start.elapsed().as_secs_f64()
    };
    println!(
        "bare wake-up loop every {period:?}: {:.2} % of one core",
        100.0 * bare
    );

    let sysfs = Sysfs::new(root.path());
    let source = PowerMonitor::discover(&sysfs)?.module_input_power()?;
    let clock = MonotonicClock::new();
    let config = SamplerConfig {
        period,
        ..SamplerConfig::default()
    };
    let wall = Instant::now();
    let cpu0 = cpu_time();
    let mut sampler = Sampler::start(source, clock, config)?;
    std::thread::sleep(Duration::from_secs_f64(secs));
    let energy = sampler.energy_j(clock.now())?;
    let stats = sampler.stats();
    drop(sampler);
    let cpu = cpu_time() - cpu0;
    let wall = wall.elapsed();
    println!(
        "period {:?}: {} samples in {:.3} s ({:.0} Hz), {} errors, {:.3} J ({:.3} W expected 6.096 W)",
        config.period,
        stats.samples,
        wall.as_secs_f64(),
        stats.samples as f64 / wall.as_secs_f64(),
        stats.errors,
        energy,
        energy / wall.as_secs_f64()
    );
    println!(
        "sampler: CPU time {:.1} ms = {:.2} % of one core ({:+.2} % over the bare loop)",
        cpu.as_secs_f64() * 1e3,
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        100.0 * (cpu.as_secs_f64() / wall.as_secs_f64() - bare)
    );
    Ok(())
}
