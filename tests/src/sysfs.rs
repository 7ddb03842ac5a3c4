//! Fake sysfs trees of real boards, and a fake kernel behind the writes.
//!
//! Layouts follow the boards: cpufreq policies per cluster, the GPU's devfreq
//! directory where each release puts it with its `/sys/class/devfreq` link
//! (relative, as the kernel makes it), the INA3221 as an I2C client under its
//! controller, linked from the I2C bus and bound to the driver each JetPack
//! binds, the memory (EMC) clock's BPMP debugfs files where the board has
//! them, and the board identity files. The Raspberry Pi 5 tree, for the port
//! example ([`crate::generic_sbc`]), has one cpufreq policy and an INA226
//! among other hwmon devices, linked from `/sys/class/hwmon`.

use ecoedge_bsp_jetson::Writer;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Xavier NX CPU levels, kHz (25).
pub const XAVIER_NX_CPU_KHZ: [u32; 25] = [
    115200, 192000, 268800, 345600, 422400, 499200, 576000, 652800, 729600, 806400, 883200, 960000,
    1036800, 1113600, 1190400, 1267200, 1344000, 1420800, 1497600, 1574400, 1651200, 1728000,
    1804800, 1881600, 1907200,
];
/// Xavier NX GPU levels, Hz (15).
pub const XAVIER_NX_GPU_HZ: [u32; 15] = [
    114750000, 204000000, 306000000, 408000000, 510000000, 599250000, 701250000, 752250000,
    803250000, 854250000, 905250000, 956250000, 1007250000, 1058250000, 1109250000,
];
/// Orin NX 16 GB CPU levels, kHz.
pub const ORIN_NX_CPU_KHZ: [u32; 26] = [
    115200, 192000, 268800, 345600, 422400, 499200, 576000, 652800, 729600, 806400, 883200, 960000,
    1036800, 1113600, 1190400, 1267200, 1344000, 1420800, 1497600, 1574400, 1651200, 1728000,
    1804800, 1881600, 1958400, 1984000,
];
/// Orin NX 16 GB GPU levels, Hz.
pub const ORIN_NX_GPU_HZ: [u32; 7] = [
    306000000, 408000000, 510000000, 612000000, 714000000, 816000000, 918000000,
];
/// Nano CPU levels, kHz.
pub const NANO_CPU_KHZ: [u32; 15] = [
    102000, 204000, 307200, 403200, 518400, 614400, 710400, 825600, 921600, 1036800, 1132800,
    1224000, 1326000, 1428000, 1479000,
];
/// Nano GPU levels, Hz.
pub const NANO_GPU_HZ: [u32; 12] = [
    76800000, 153600000, 230400000, 307200000, 384000000, 460800000, 537600000, 614400000,
    691200000, 768000000, 844800000, 921600000,
];

/// The Xavier NX's INA3221 client device: bus 7 is the `c250000.i2c` controller.
pub const XAVIER_NX_INA3221: &str = "/sys/devices/c250000.i2c/i2c-7/7-0040";

/// Raspberry Pi 5 CPU levels, kHz (10). The BCM2712's four Cortex-A76 cores share
/// one clock, so one cpufreq policy; the kernel's `raspberrypi-cpufreq` driver
/// makes one level every 100 MHz (`RASPBERRYPI_FREQ_INTERVAL`) from the
/// firmware's `arm_freq_min` to `arm_freq`, 1500 and 2400 MHz on a Pi 5 (the
/// defaults table of the Raspberry Pi documentation, config_txt/overclocking.adoc),
/// and hands them to `cpufreq-dt`, which lists them in
/// `scaling_available_frequencies`.
pub const PI5_CPU_KHZ: [u32; 10] = [
    1500000, 1600000, 1700000, 1800000, 1900000, 2000000, 2100000, 2200000, 2300000, 2400000,
];

/// The INA226 of [`FakeBoard::raspberry_pi5`], as its class link.
pub const PI5_INA226: &str = "/sys/class/hwmon/hwmon2";

/// Shunt of the Pi 5's INA226, micro-ohms: 10 mOhm (the `ina2xx` driver's
/// default too), so the chip's 81.92 mV shunt range covers the 5 A the Pi 5
/// may draw.
pub const PI5_SHUNT_UOHM: u32 = 10_000;

/// Xavier NX (8 GB developer kit) EMC rates, kHz, as `possible_rates` lists them.
///
/// Not read from a Xavier NX: no public dump of its `possible_rates` was found.
/// The ladder is the LPDDR4 one seen on other Jetsons (204 .. 1600 MHz on
/// TX1/Nano, gpdavila/TX-1_Energy `include/jtx1var.h`; 800, 1331.2, 1600 MHz on
/// TX2, jingchen95/JOSS `idlePower.sh`), topped at 1600 MHz, the Xavier NX
/// 8 GB data sheet's maximum memory frequency and the EMC cap NVIDIA's nvpmodel
/// template gives its 15 W mode. (The 16 GB module is said to reach 1866 MHz;
/// not confirmed here.)
pub const XAVIER_NX_EMC_KHZ: [u32; 7] = [204000, 408000, 665600, 800000, 1065600, 1331200, 1600000];
/// Orin NX EMC rates, kHz. 204, 665.6 and 2133 MHz were read from an Orin NX's
/// `possible_rates` (a public note, `apps/llama-server/POWER_MODE.md`); 3199 MHz
/// is the trained maximum a tiiuae/ghaf pull request (#2071) gives for AGX
/// Orin, assumed for the Orin NX 16 GB.
pub const ORIN_NX_EMC_KHZ: [u32; 4] = [204000, 665600, 2133000, 3199000];

const CPU_GOVERNORS: &str =
    "interactive conservative ondemand userspace powersave performance schedutil";
const GPU_GOVERNORS: &str =
    "wmark_active wmark_simple nvhost_podgov userspace performance simple_ondemand";

fn join(levels: &[u32]) -> String {
    levels
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `to` (a `/sys` path) relative to the directory `from` (another), as the
/// kernel writes sysfs links: up to `/sys`, then down.
fn sys_relative(from: &str, to: &str) -> String {
    let up = from
        .strip_prefix("/sys/")
        .expect("a /sys path")
        .split('/')
        .count();
    format!(
        "{}{}",
        "../".repeat(up),
        to.strip_prefix("/sys/").expect("a /sys path")
    )
}

/// A fake board: a temporary directory laid out like `/` on the board.
#[derive(Debug)]
pub struct FakeBoard {
    dir: tempfile::TempDir,
}

/// Every clock file a run on a Xavier NX tree may write: governor and
/// limits of the three CPU clusters and of the GPU, the EMC's lock and rate.
pub fn xavier_nx_clock_files() -> Vec<String> {
    let mut files = Vec::new();
    for id in [0, 2, 4] {
        for f in ["scaling_governor", "scaling_min_freq", "scaling_max_freq"] {
            files.push(format!("/sys/devices/system/cpu/cpufreq/policy{id}/{f}"));
        }
    }
    for f in ["governor", "min_freq", "max_freq"] {
        files.push(format!("/sys/devices/gpu.0/devfreq/17000000.gv11b/{f}"));
    }
    for f in ["mrq_rate_locked", "rate"] {
        files.push(format!("/sys/kernel/debug/bpmp/debug/clk/emc/{f}"));
    }
    files
}

impl FakeBoard {
    /// An empty tree, in memory (`/dev/shm`) where the system offers it, as
    /// sysfs is. On a disk filesystem every write that truncates a file, as
    /// sysfs writes do, can cost milliseconds (ext4 flushes a file truncated and
    /// rewritten when it is closed: 6 ms per write measured on an ext4 `/tmp`,
    /// 5 us on tmpfs), and a test driving a controller writes thousands.
    pub fn empty() -> Self {
        let shm = Path::new("/dev/shm");
        let dir = tempfile::tempdir_in(shm)
            .or_else(|_| tempfile::tempdir())
            .expect("temporary directory");
        FakeBoard { dir }
    }

    /// The root to give `Sysfs::new` or `report`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The file at board path `abs`, under the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root().join(abs.trim_start_matches('/'))
    }

    /// Writes a file (and its directories) at board path `abs`.
    pub fn file(&self, abs: &str, content: &str) -> &Self {
        let p = self.path(abs);
        fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        fs::write(&p, content).expect("write fixture");
        self
    }

    /// `(path, content)` of each board path in `paths`, to compare a tree
    /// before and after a run.
    pub fn snapshot(&self, paths: impl IntoIterator<Item = String>) -> Vec<(String, String)> {
        paths
            .into_iter()
            .map(|p| {
                let v = self.read(&p);
                (p, v)
            })
            .collect()
    }

    /// Reads the file at board path `abs`, trimmed.
    pub fn read(&self, abs: &str) -> String {
        fs::read_to_string(self.path(abs))
            .expect("read fixture")
            .trim()
            .to_string()
    }

    /// Makes `link` (a board path) a symlink to `target` (relative to the link's
    /// directory, as sysfs links are).
    pub fn symlink(&self, link: &str, target: &str) -> &Self {
        let p = self.path(link);
        fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, &p).expect("symlink");
        self
    }

    /// A cpufreq policy with the given CPUs and levels, running `governor` over
    /// the full range at the top level.
    pub fn cpu_policy(&self, id: u32, cpus: &[u32], levels: &[u32], governor: &str) -> &Self {
        let d = format!("/sys/devices/system/cpu/cpufreq/policy{id}");
        let (lo, hi) = (levels[0].to_string(), levels[levels.len() - 1].to_string());
        let cpus = join(cpus);
        for (name, value) in [
            ("scaling_available_frequencies", join(levels)),
            ("scaling_available_governors", CPU_GOVERNORS.to_string()),
            ("scaling_governor", governor.to_string()),
            ("scaling_min_freq", lo.clone()),
            ("scaling_max_freq", hi.clone()),
            ("scaling_cur_freq", hi.clone()),
            ("cpuinfo_min_freq", lo),
            ("cpuinfo_max_freq", hi),
            ("affected_cpus", cpus.clone()),
            ("related_cpus", cpus),
            ("scaling_setspeed", "<unsupported>".to_string()),
        ] {
            self.file(&format!("{d}/{name}"), &format!("{value}\n"));
        }
        self
    }

    /// A GPU devfreq device at board directory `dir`, linked from
    /// `/sys/class/devfreq/<name>` where `name` is the directory's last part.
    pub fn gpu(&self, dir: &str, levels: &[u32], governor: &str) -> &Self {
        let (lo, hi) = (levels[0].to_string(), levels[levels.len() - 1].to_string());
        for (name, value) in [
            ("available_frequencies", join(levels)),
            ("available_governors", GPU_GOVERNORS.to_string()),
            ("governor", governor.to_string()),
            ("min_freq", lo),
            ("max_freq", hi.clone()),
            ("cur_freq", hi.clone()),
            ("target_freq", hi),
        ] {
            self.file(&format!("{dir}/{name}"), &format!("{value}\n"));
        }
        let name = dir.rsplit('/').next().expect("a name");
        let under_sys = dir.strip_prefix("/sys").expect("a /sys path");
        self.symlink(
            &format!("/sys/class/devfreq/{name}"),
            &format!("../..{under_sys}"),
        )
    }

    /// An I2C client at board directory `dev` (`.../i2c-N/N-00AA`, under its
    /// adapter, where the kernel puts it), linked from `/sys/bus/i2c/devices/`
    /// and, when bound to `driver`, from `/sys/bus/i2c/drivers/<driver>/`, with
    /// its `driver` link back to that directory; every link relative, as the
    /// kernel makes them.
    pub fn i2c_client(&self, dev: &str, driver: Option<&str>) -> &Self {
        let name = dev.rsplit('/').next().expect("a name");
        fs::create_dir_all(self.path(dev)).expect("mkdir");
        self.symlink(
            &format!("/sys/bus/i2c/devices/{name}"),
            &sys_relative("/sys/bus/i2c/devices", dev),
        );
        if let Some(driver) = driver {
            let driver_dir = format!("/sys/bus/i2c/drivers/{driver}");
            self.symlink(
                &format!("{driver_dir}/{name}"),
                &sys_relative(&driver_dir, dev),
            );
            self.symlink(&format!("{dev}/driver"), &sys_relative(dev, &driver_dir));
        }
        self
    }

    /// The EMC clock in BPMP debugfs: `possible_rates` listing `rates_khz` in
    /// the firmware's format (kHz, then `(kHz)`), the clock unlocked (the
    /// bandwidth manager's) at `rate_hz`, `min_rate` the lowest rate,
    /// `max_rate` = `max_hz`, and nvpmodel's `emc_iso_cap` when given.
    pub fn bpmp_emc(
        &self,
        rates_khz: &[u32],
        rate_hz: u32,
        max_hz: u32,
        iso_cap: Option<u32>,
    ) -> &Self {
        let d = "/sys/kernel/debug/bpmp/debug/clk/emc";
        let min_hz = u64::from(rates_khz[0]) * 1000;
        for (name, value) in [
            ("rate", rate_hz.to_string()),
            ("min_rate", min_hz.to_string()),
            ("max_rate", max_hz.to_string()),
            ("mrq_rate_locked", "0".to_string()),
        ] {
            self.file(&format!("{d}/{name}"), &format!("{value}\n"));
        }
        self.file(
            "/sys/kernel/debug/bpmp/debug/emc/possible_rates",
            &format!("{} (kHz)\n", join(rates_khz)),
        );
        if let Some(cap) = iso_cap {
            self.file(
                "/sys/kernel/nvpmodel_emc_cap/emc_iso_cap",
                &format!("{cap}\n"),
            );
        }
        self
    }

    /// Mainline hwmon `ina3221` bound to the I2C client at board directory
    /// `dev` (see [`FakeBoard::i2c_client`]) as `hwmonN`, rails `(label, mV, mA)`
    /// on channels 1.., with an `update_interval` (ms).
    pub fn hwmon(&self, dev: &str, n: u32, rails: &[(&str, u32, u32)], interval_ms: u32) -> &Self {
        self.i2c_client(dev, Some("ina3221"));
        let d = format!("{dev}/hwmon/hwmon{n}");
        for (k, (label, mv, ma)) in rails.iter().enumerate() {
            let k = k + 1;
            self.file(&format!("{d}/in{k}_label"), &format!("{label}\n"));
            self.file(&format!("{d}/in{k}_input"), &format!("{mv}\n"));
            self.file(&format!("{d}/curr{k}_input"), &format!("{ma}\n"));
            self.file(&format!("{d}/shunt{k}_resistor"), "5000\n");
        }
        self.file(&format!("{d}/name"), "ina3221\n");
        self.file(&format!("{d}/update_interval"), &format!("{interval_ms}\n"))
    }

    /// NVIDIA IIO `ina3221x` bound to the I2C client at board directory `dev`,
    /// rails `(label, mV, mA)` on channels 0.. (power in mW = mV x mA / 1000, as
    /// the driver computes it).
    pub fn iio(&self, dev: &str, rails: &[(&str, u32, u32)]) -> &Self {
        self.i2c_client(dev, Some("ina3221x"));
        let d = format!("{dev}/iio:device0");
        for (k, (label, mv, ma)) in rails.iter().enumerate() {
            self.file(&format!("{d}/rail_name_{k}"), &format!("{label}\n"));
            self.file(&format!("{d}/in_voltage{k}_input"), &format!("{mv}\n"));
            self.file(&format!("{d}/in_current{k}_input"), &format!("{ma}\n"));
            self.file(
                &format!("{d}/in_power{k}_input"),
                &format!("{}\n", mv * ma / 1000),
            );
        }
        self.file(&format!("{d}/name"), "ina3221x\n")
    }

    /// Board identity: the fuse driver's chip id (if given) and the model,
    /// NUL-terminated like the device tree's.
    pub fn identity(&self, chip_id: Option<u32>, model: &str) -> &Self {
        if let Some(id) = chip_id {
            self.file(
                "/sys/module/tegra_fuse/parameters/tegra_chip_id",
                &format!("{id}\n"),
            );
        }
        self.file("/proc/device-tree/model", &format!("{model}\0"))
    }

    /// A hwmon device `hwmon{n}` named `name` under device directory `dev`,
    /// linked from `/sys/class/hwmon/hwmon{n}` (relative, as the kernel makes it)
    /// with `attrs` as its files.
    pub fn hwmon_device(&self, dev: &str, n: u32, name: &str, attrs: &[(&str, u64)]) -> &Self {
        let d = format!("{dev}/hwmon/hwmon{n}");
        self.file(&format!("{d}/name"), &format!("{name}\n"));
        for (attr, value) in attrs {
            self.file(&format!("{d}/{attr}"), &format!("{value}\n"));
        }
        let under_sys = d.strip_prefix("/sys").expect("a /sys path");
        self.symlink(
            &format!("/sys/class/hwmon/hwmon{n}"),
            &format!("../..{under_sys}"),
        )
    }

    /// One reading of an INA226 at class path `hwmon` with the Pi 5's shunt, in
    /// the `ina2xx` driver's units (Documentation/hwmon/ina2xx.rst): shunt
    /// `in0_input` and bus `in1_input` in mV, `curr1_input` in mA,
    /// `power1_input` in uW. Returns the power written, uW.
    pub fn ina226_reading(&self, hwmon: &str, bus_mv: u32, ma: u32) -> u64 {
        let uw = u64::from(bus_mv) * u64::from(ma);
        let shunt_mv = u64::from(ma) * u64::from(PI5_SHUNT_UOHM) / 1_000_000;
        for (attr, value) in [
            ("in0_input", shunt_mv),
            ("in1_input", u64::from(bus_mv)),
            ("curr1_input", u64::from(ma)),
            ("power1_input", uw),
        ] {
            // The device exists: no directories to make (tests call this per batch).
            fs::write(self.path(&format!("{hwmon}/{attr}")), format!("{value}\n"))
                .expect("write reading");
        }
        uw
    }

    /// Raspberry Pi 5 on Raspberry Pi OS: one cpufreq policy for the four
    /// cores under `ondemand` (what the OS switches to at boot), and an INA226
    /// breakout in series with the 5 V supply on the header's I2C bus, bound to
    /// the `ina2xx` driver (`echo ina226 0x40 > .../i2c-1/new_device`), idle at
    /// 5.1 V and 540 mA. Its hwmon number is 2 because two devices probe before
    /// it: the CPU's thermal zone and the fan. Device paths under
    /// `/sys/devices` depend on the SoC (the header's I2C sits on RP1, behind
    /// PCIe); the port never reads them, only `/sys/class/hwmon`.
    pub fn raspberry_pi5() -> Self {
        let b = FakeBoard::empty();
        b.cpu_policy(0, &[0, 1, 2, 3], &PI5_CPU_KHZ, "ondemand");
        let d = "/sys/devices/system/cpu/cpufreq/policy0";
        b.file(
            &format!("{d}/scaling_available_governors"),
            "conservative ondemand userspace powersave performance schedutil\n",
        );
        b.file(&format!("{d}/scaling_driver"), "cpufreq-dt\n");
        b.hwmon_device(
            "/sys/devices/virtual/thermal/thermal_zone0",
            0,
            "cpu_thermal",
            &[("temp1_input", 51_800)],
        );
        b.hwmon_device(
            "/sys/devices/platform/cooling_fan",
            1,
            "pwmfan",
            &[("fan1_input", 0), ("pwm1", 0)],
        );
        b.hwmon_device(
            "/sys/devices/platform/axi/1000120000.pcie/1f00074000.i2c/i2c-1/1-0040",
            2,
            "ina226",
            // The driver's default: 16 averages of 2.2 ms conversions.
            &[
                ("shunt_resistor", u64::from(PI5_SHUNT_UOHM)),
                ("update_interval", 35),
            ],
        );
        b.ina226_reading(PI5_INA226, 5100, 540);
        b
    }

    /// Jetson Xavier NX on JetPack 4 (L4T 32): 3 clusters of 2, `gv11b` under
    /// `gpu.0`, INA3221 on bus 7 (controller `c250000.i2c`) through NVIDIA's IIO
    /// driver, the EMC in BPMP debugfs at 1600 MHz with no power-mode cap
    /// (`emc_iso_cap` 0).
    pub fn xavier_nx_jp4() -> Self {
        let b = FakeBoard::empty();
        b.identity(Some(25), "NVIDIA Jetson Xavier NX Developer Kit");
        for (id, cpus) in [(0, [0, 1]), (2, [2, 3]), (4, [4, 5])] {
            b.cpu_policy(id, &cpus, &XAVIER_NX_CPU_KHZ, "schedutil");
        }
        b.gpu(
            "/sys/devices/gpu.0/devfreq/17000000.gv11b",
            &XAVIER_NX_GPU_HZ,
            "nvhost_podgov",
        );
        b.bpmp_emc(&XAVIER_NX_EMC_KHZ, 1_600_000_000, 1_600_000_000, Some(0));
        b.iio(
            XAVIER_NX_INA3221,
            &[
                ("VDD_IN", 5048, 960),
                ("VDD_CPU_GPU_CV", 5040, 320),
                ("VDD_SOC", 5040, 280),
            ],
        );
        b
    }

    /// Jetson Xavier NX on JetPack 5 (L4T 35): as on JetPack 4, but the chip id
    /// only in `/sys/devices/soc0/soc_id`, the mainline hwmon driver, and the
    /// 15 W mode's EMC cap (1600 MHz) in `emc_iso_cap`.
    pub fn xavier_nx_jp5() -> Self {
        let b = FakeBoard::empty();
        b.identity(None, "NVIDIA Jetson Xavier NX Developer Kit");
        b.file("/sys/devices/soc0/soc_id", "25\n");
        for (id, cpus) in [(0, [0, 1]), (2, [2, 3]), (4, [4, 5])] {
            b.cpu_policy(id, &cpus, &XAVIER_NX_CPU_KHZ, "schedutil");
        }
        b.gpu(
            "/sys/devices/gpu.0/devfreq/17000000.gv11b",
            &XAVIER_NX_GPU_HZ,
            "nvhost_podgov",
        );
        b.bpmp_emc(
            &XAVIER_NX_EMC_KHZ,
            1_600_000_000,
            1_600_000_000,
            Some(1_600_000_000),
        );
        b.hwmon(
            XAVIER_NX_INA3221,
            5,
            &[
                ("VDD_IN", 5048, 960),
                ("VDD_CPU_GPU_CV", 5040, 320),
                ("VDD_SOC", 5040, 280),
            ],
            6,
        );
        b
    }

    /// Jetson Orin NX 16 GB on JetPack 6 (L4T 36): 2 clusters of 4, the GPU as
    /// `17000000.gpu` under `bus@0`, a video engine also in the devfreq class,
    /// INA3221 on bus 1 through hwmon, the EMC in BPMP debugfs at the 2133 MHz
    /// it boots at, up to 3199 MHz.
    pub fn orin_nx_jp6() -> Self {
        let b = FakeBoard::empty();
        b.identity(
            Some(35),
            "NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
        );
        for (id, cpus) in [(0, [0, 1, 2, 3]), (4, [4, 5, 6, 7])] {
            b.cpu_policy(id, &cpus, &ORIN_NX_CPU_KHZ, "schedutil");
        }
        b.gpu(
            "/sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu",
            &ORIN_NX_GPU_HZ,
            "nvhost_podgov",
        );
        b.gpu(
            "/sys/devices/platform/bus@0/15340000.vic/devfreq/15340000.vic",
            &[115200000, 729600000],
            "nvhost_podgov",
        );
        b.bpmp_emc(&ORIN_NX_EMC_KHZ, 2_133_000_000, 3_199_000_000, Some(0));
        b.hwmon(
            "/sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040",
            1,
            &[
                ("VDD_IN", 5000, 1400),
                ("VDD_CPU_GPU_CV", 5000, 500),
                ("VDD_SOC", 5000, 400),
            ],
            6,
        );
        b
    }

    /// Jetson Nano on JetPack 4: one cluster of 4, GPU `57000000.gpu` (gm20b),
    /// INA3221 on bus 6 through the IIO driver with `POM_` rail names. No EMC
    /// knob: the T210's `clk/override.emc` interface is not supported.
    pub fn nano() -> Self {
        let b = FakeBoard::empty();
        b.identity(Some(33), "NVIDIA Jetson Nano Developer Kit");
        b.cpu_policy(0, &[0, 1, 2, 3], &NANO_CPU_KHZ, "schedutil");
        b.gpu(
            "/sys/devices/57000000.gpu/devfreq/57000000.gpu",
            &NANO_GPU_HZ,
            "nvhost_podgov",
        );
        b.iio(
            "/sys/devices/50000000.host1x/546c0000.i2c/i2c-6/6-0040",
            &[
                ("POM_5V_IN", 5000, 600),
                ("POM_5V_GPU", 5000, 80),
                ("POM_5V_CPU", 5000, 180),
            ],
        );
        b
    }
}

/// One write the fake kernel accepted or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRecord {
    /// Board path of the file.
    pub path: String,
    /// The value.
    pub value: String,
    /// Whether it was accepted.
    pub accepted: bool,
}

/// A [`Writer`] that behaves like the kernel's cpufreq and devfreq attributes:
/// a minimum above the maximum (or the reverse) is refused with `EINVAL` (as
/// kernels before frequency QoS did, and a refusal is what makes a wrong order
/// visible), a governor not in the available list is refused, the current
/// frequency follows the limits, and every write is recorded in order. Files can
/// be made to fail with a chosen error.
///
/// The EMC clock's BPMP debugfs files behave like the firmware's: the lock takes
/// `0` or `1` only; a rate written while locked becomes the possible rate
/// nearest to it within `min_rate` and the ceiling (`max_rate`, or a lower
/// non-zero `emc_iso_cap`), as the firmware clamps and rounds; a rate written
/// while unlocked is accepted and changes nothing (the bandwidth manager owns
/// the clock), so writing the rate before the lock shows up as a rate that did
/// not take. Unlocking leaves the rate where it was (a real bandwidth manager
/// moves it at its next request).
#[derive(Debug)]
pub struct FakeKernel {
    root: PathBuf,
    log: Mutex<Vec<WriteRecord>>,
    faults: Mutex<Vec<(String, io::ErrorKind)>>,
}

impl FakeKernel {
    /// A fake kernel for the tree of `board`.
    pub fn new(board: &FakeBoard) -> Self {
        FakeKernel {
            root: board.root().to_path_buf(),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
        }
    }

    /// Every later write to board path `abs` fails with `kind`.
    pub fn fail(&self, abs: &str, kind: io::ErrorKind) {
        self.faults.lock().unwrap().push((abs.to_string(), kind));
    }

    /// The writes so far, in order.
    pub fn log(&self) -> Vec<WriteRecord> {
        self.log.lock().unwrap().clone()
    }

    /// The accepted writes so far as `(file name, value)`, in order.
    pub fn accepted(&self) -> Vec<(String, String)> {
        self.log()
            .into_iter()
            .filter(|r| r.accepted)
            .map(|r| (r.path.rsplit('/').next().unwrap_or("").to_string(), r.value))
            .collect()
    }

    /// Whether `value` may be written to `path`, and what the file then holds
    /// when that differs from `value`.
    fn check(&self, path: &Path, value: &str) -> io::Result<Option<String>> {
        let board = self.board_path(path);
        if let Some((_, kind)) = self
            .faults
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| *p == board)
        {
            return Err(io::Error::from(*kind));
        }
        let dir = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let num = |file: &str| -> io::Result<u64> {
            fs::read_to_string(dir.join(file))?
                .trim()
                .parse()
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
        };
        let einval = || Err(io::Error::from_raw_os_error(EINVAL));
        let v: Option<u64> = value.trim().parse().ok();
        let is_emc = dir.join("mrq_rate_locked").is_file();
        match name {
            "scaling_min_freq" if v.is_none_or(|v| v > num("scaling_max_freq").unwrap_or(0)) => {
                einval()
            }
            "scaling_max_freq" if v.is_none_or(|v| v < num("scaling_min_freq").unwrap_or(0)) => {
                einval()
            }
            "min_freq" if v.is_none_or(|v| v > num("max_freq").unwrap_or(0)) => einval(),
            "max_freq" if v.is_none_or(|v| v < num("min_freq").unwrap_or(0)) => einval(),
            "scaling_governor" | "governor" => {
                let avail = if name == "governor" {
                    "available_governors"
                } else {
                    "scaling_available_governors"
                };
                let list = fs::read_to_string(dir.join(avail))?;
                if list.split_whitespace().any(|g| g == value.trim()) {
                    Ok(None)
                } else {
                    einval()
                }
            }
            "mrq_rate_locked" if !matches!(value.trim(), "0" | "1") => einval(),
            "rate" if is_emc => {
                let Some(wanted) = v else {
                    return einval();
                };
                if num("mrq_rate_locked")? == 0 {
                    return Ok(Some(num("rate")?.to_string()));
                }
                let mut ceiling = num("max_rate")?;
                let cap = self.root.join("sys/kernel/nvpmodel_emc_cap/emc_iso_cap");
                if let Some(cap) = fs::read_to_string(cap)
                    .ok()
                    .and_then(|c| c.trim().parse::<u64>().ok())
                    .filter(|&c| c > 0)
                {
                    ceiling = ceiling.min(cap);
                }
                let target = wanted.clamp(num("min_rate")?, ceiling);
                let possible = self.emc_possible_hz()?;
                let nearest = possible
                    .iter()
                    .copied()
                    .filter(|r| *r <= ceiling)
                    .min_by_key(|r| (r.abs_diff(target), *r))
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?;
                Ok(Some(nearest.to_string()))
            }
            _ => Ok(None),
        }
    }

    /// The firmware's rate table, Hz: `possible_rates` read the way the
    /// firmware prints it (kHz, then `(kHz)`), independently of the parser
    /// under test.
    fn emc_possible_hz(&self) -> io::Result<Vec<u64>> {
        let text = fs::read_to_string(
            self.root
                .join("sys/kernel/debug/bpmp/debug/emc/possible_rates"),
        )?;
        text.split_whitespace()
            .filter(|t| *t != "(kHz)")
            .map(|t| {
                t.parse::<u64>()
                    .map(|khz| khz * 1000)
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
            })
            .collect()
    }

    /// The current frequency follows the limits, as the governor would make it.
    fn follow(&self, path: &Path) {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let (min, max, cur) = if dir.join("scaling_cur_freq").exists() {
            ("scaling_min_freq", "scaling_max_freq", "scaling_cur_freq")
        } else {
            ("min_freq", "max_freq", "cur_freq")
        };
        let read = |f: &str| {
            fs::read_to_string(dir.join(f))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        if let (Some(lo), Some(hi), Some(c)) = (read(min), read(max), read(cur)) {
            let _ = fs::write(dir.join(cur), format!("{}\n", c.clamp(lo, hi.max(lo))));
        }
    }

    fn board_path(&self, path: &Path) -> String {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        format!("/{}", rel.display())
    }
}

/// Linux's `EINVAL` ("Invalid argument"), what cpufreq and devfreq return for a
/// refused value.
const EINVAL: i32 = 22;

impl Writer for FakeKernel {
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let result = self.check(path, value).and_then(|stored| {
            ecoedge_bsp_jetson::FileWriter.write(path, stored.as_deref().unwrap_or(value))
        });
        self.log.lock().unwrap().push(WriteRecord {
            path: self.board_path(path),
            value: value.to_string(),
            accepted: result.is_ok(),
        });
        if result.is_ok() {
            self.follow(path);
        }
        result
    }
}
