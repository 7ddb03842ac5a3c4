//! Device models: how long a batch takes and how much power the board draws.
//!
//! A [`DeviceModel`] answers three questions for any clock levels and batch size:
//! the batch's service time, the mean board power while it runs, and the board
//! power while idle with the clocks pinned. [`XavierNx`] is the analytic default;
//! [`crate::sim::profile::Profile`] replays a measured table.

use ecoedge_core::space::Knob;

/// The clocks a device runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    /// CPU clock, kHz.
    pub cpu_khz: u32,
    /// GPU clock, Hz.
    pub gpu_hz: u32,
    /// Memory (EMC) clock, Hz; ignored by a model without memory levels.
    pub emc_hz: u32,
}

/// What the simulator needs to know about a device running one DNN.
pub trait DeviceModel: Send + Sync {
    /// CPU levels, kHz, ascending.
    fn cpu_levels_khz(&self) -> &[u32];
    /// GPU levels, Hz, ascending.
    fn gpu_levels_hz(&self) -> &[u32];
    /// Memory (EMC) levels, Hz, ascending; empty when the model does not
    /// know the memory clock (a profile measured at one memory clock).
    fn emc_levels_hz(&self) -> &[u32] {
        &[]
    }
    /// The levels of clock `knob` (empty for a knob the device does not have).
    fn levels(&self, knob: Knob) -> &[u32] {
        match knob {
            Knob::Cpu => self.cpu_levels_khz(),
            Knob::Gpu => self.gpu_levels_hz(),
            Knob::Memory => self.emc_levels_hz(),
            Knob::Batch | Knob::Cores => &[],
        }
    }
    /// Largest batch size (batches are `1..=max_batch`).
    fn max_batch(&self) -> u32;
    /// Seconds one batch takes at these clocks.
    fn service_time_s(&self, clocks: Clocks, batch: u32) -> f64;
    /// Mean board power while that batch runs, watts.
    fn busy_power_w(&self, clocks: Clocks, batch: u32) -> f64;
    /// Board power with the clocks pinned and nothing running, watts.
    fn idle_power_w(&self, clocks: Clocks) -> f64;
}

/// The Xavier NX CPU levels (kHz), from the board's cpufreq table.
pub const XAVIER_NX_CPU_KHZ: [u32; 25] = [
    115_200, 192_000, 268_800, 345_600, 422_400, 499_200, 576_000, 652_800, 729_600, 806_400,
    883_200, 960_000, 1_036_800, 1_113_600, 1_190_400, 1_267_200, 1_344_000, 1_420_800, 1_497_600,
    1_574_400, 1_651_200, 1_728_000, 1_804_800, 1_881_600, 1_907_200,
];

/// The Xavier NX GPU levels (Hz), from the board's devfreq table.
pub const XAVIER_NX_GPU_HZ: [u32; 15] = [
    114_750_000,
    204_000_000,
    306_000_000,
    408_000_000,
    510_000_000,
    599_250_000,
    701_250_000,
    752_250_000,
    803_250_000,
    854_250_000,
    905_250_000,
    956_250_000,
    1_007_250_000,
    1_058_250_000,
    1_109_250_000,
];

/// The Xavier NX memory (EMC) levels (Hz): the LPDDR4 ladder of the BPMP's
/// `possible_rates` seen on other Jetsons, topped at the 8 GB module's
/// 1600 MHz (its data sheet: 128-bit LPDDR4x, 51.2 GB/s). The same table as
/// the fake Xavier NX trees; see `docs/emc.md` for what was confirmed.
pub const XAVIER_NX_EMC_HZ: [u32; 7] = [
    204_000_000,
    408_000_000,
    665_600_000,
    800_000_000,
    1_065_600_000,
    1_331_200_000,
    1_600_000_000,
];

/// Seconds at maximum clocks as `fixed + per_item * batch`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Per-batch cost, seconds: launch overhead, synchronisation.
    pub fixed: f64,
    /// Per-request cost, seconds.
    pub per_item: f64,
}

impl Affine {
    fn at(&self, batch: u32) -> f64 {
        self.fixed + self.per_item * batch as f64
    }
}

/// How a DNN's batch time splits at maximum clocks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dnn {
    /// Part that scales with `f_cpu_max / f_cpu` (Python, kernel launches, tokenising).
    pub cpu: Affine,
    /// Part that scales with `f_gpu_max / f_gpu` (convolutions, matmuls).
    pub gpu: Affine,
    /// Part bound by memory bandwidth (copies, EMC-limited layers): scales
    /// with `f_emc_max / f_emc`.
    pub memory: Affine,
}

/// A clock domain: its voltage curve and its power at the maximum level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Domain {
    /// Highest level, in the domain's unit (kHz for CPU, Hz for GPU).
    pub f_max: f64,
    /// Below this frequency the voltage stays at `v_min`.
    pub f_knee: f64,
    /// Voltage at and below the knee, volts.
    pub v_min: f64,
    /// Voltage at `f_max`, volts.
    pub v_max: f64,
    /// Leakage at `v_max`, watts; scales with `V^2` (a pinned clock pins the
    /// voltage, so it costs power even when idle).
    pub leak_max_w: f64,
    /// Dynamic power at `f_max` and full utilisation, watts; scales with `V^2 f`.
    pub dynamic_max_w: f64,
}

impl Domain {
    /// Voltage at frequency `f`: flat to the knee, then linear to `v_max`.
    pub fn voltage(&self, f: f64) -> f64 {
        if f <= self.f_knee {
            self.v_min
        } else {
            let x = ((f - self.f_knee) / (self.f_max - self.f_knee)).min(1.0);
            self.v_min + (self.v_max - self.v_min) * x
        }
    }

    fn v2(&self, f: f64) -> f64 {
        let r = self.voltage(f) / self.v_max;
        r * r
    }

    /// Leakage at frequency `f`, watts.
    pub fn leakage_w(&self, f: f64) -> f64 {
        self.leak_max_w * self.v2(f)
    }

    /// Dynamic power at frequency `f` while busy, watts (`C V^2 f`).
    pub fn dynamic_w(&self, f: f64) -> f64 {
        self.dynamic_max_w * self.v2(f) * f / self.f_max
    }
}

/// Analytic Xavier NX model. Every constant lives in [`XavierNx::new`] with its
/// reason; the calibration targets of SIMULATOR.md are tests in this module.
#[derive(Debug, Clone, PartialEq)]
pub struct XavierNx {
    /// The DNN's time split.
    pub dnn: Dnn,
    /// CPU clock domain (kHz).
    pub cpu: Domain,
    /// GPU clock domain (Hz).
    pub gpu: Domain,
    /// Board power that no knob moves (SoC always-on, DRAM refresh, carrier
    /// board, regulator losses), watts.
    pub base_w: f64,
    /// Extra power while the memory-bound part runs (EMC and DRAM activity)
    /// at the top memory clock, watts.
    pub memory_active_w: f64,
    /// Memory (EMC) clock domain (Hz). Its `dynamic_max_w` is the part of
    /// `base_w` that scales with the memory clock (controller, PHY, DRAM
    /// I/O); its `leak_max_w` is unused (DRAM self-refresh and the rest stay
    /// in `base_w`).
    pub emc: Domain,
}

/// DNNs the analytic model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnnKind {
    /// ResNet-50, 3x224x224 images, PyTorch eager on the GPU (as the paper ran it).
    Resnet50,
    /// BERT-tiny, sequence length 128: CPU and launch bound.
    BertTiny,
}

impl XavierNx {
    /// The model for `dnn`.
    pub fn new(dnn: DnnKind) -> Self {
        let ms = 1e-3;
        let dnn = match dnn {
            // Targets: 30 ms at batch 1 and 200 ms at batch 16 at max clocks.
            // GPU compute dominates per image (9.5 ms); eager PyTorch adds ~12 ms
            // of Python and launch work per batch on the CPU; copies and
            // bandwidth-bound layers take ~1.3 ms per image.
            // Batch 1: 12.5 + 12.5 + 4.33 = 29.3 ms; batch 16: 20 + 155 + 24.3 = 199.3 ms.
            DnnKind::Resnet50 => Dnn {
                cpu: Affine {
                    fixed: 12.0 * ms,
                    per_item: 0.5 * ms,
                },
                gpu: Affine {
                    fixed: 3.0 * ms,
                    per_item: 9.5 * ms,
                },
                memory: Affine {
                    fixed: 3.0 * ms,
                    per_item: 1.333 * ms,
                },
            },
            // Targets: 5 ms at batch 1 and 10 ms at batch 16, nearly independent of
            // the GPU clock: two tiny layers leave the GPU mostly waiting on
            // launches. Batch 1: 3.6 + 0.12 + 1.3 = 5.0 ms; batch 16: 6.6 + 0.42 + 2.8 = 9.8 ms.
            DnnKind::BertTiny => Dnn {
                cpu: Affine {
                    fixed: 3.4 * ms,
                    per_item: 0.2 * ms,
                },
                gpu: Affine {
                    fixed: 0.1 * ms,
                    per_item: 0.02 * ms,
                },
                memory: Affine {
                    fixed: 1.2 * ms,
                    per_item: 0.1 * ms,
                },
            },
        };
        XavierNx {
            dnn,
            // Carmel cores: lowest DVFS voltage up to ~1.2 GHz, ~1.0 V at the top.
            // Leakage and dynamic power sized so that the targets below hold:
            // idle at min clocks 2.75 + 0.36 + 0.45 = 3.56 W, idle at max
            // 2.75 + 1.0 + 1.25 = 5.0 W, ResNet-50 batch 16 at max ~15 W.
            cpu: Domain {
                f_max: 1_907_200.0,
                f_knee: 1_190_400.0,
                v_min: 0.6,
                v_max: 1.0,
                leak_max_w: 1.0,
                dynamic_max_w: 3.5,
            },
            // Volta GPU: lowest voltage up to ~510 MHz; most of the module's
            // dynamic power at full load. At the voltage floor of both clocks a
            // ResNet-50 batch of 1 takes 20 + 27 + 4.3 = 51.5 ms: energy-optimal,
            // but too slow for one request every 50 ms, so the best config must
            // buy capacity with voltage at 50 ms and need not at 90 ms (the
            // load dependence SIMULATOR.md asks for).
            gpu: Domain {
                f_max: 1_109_250_000.0,
                f_knee: 510_000_000.0,
                v_min: 0.6,
                v_max: 1.0,
                leak_max_w: 1.25,
                dynamic_max_w: 12.0,
            },
            base_w: 2.75,
            memory_active_w: 2.0,
            // An assumption, not a calibration (no public per-level EMC power
            // figures for the Xavier NX): 0.6 W of the 2.75 W base scales with
            // the memory clock as `V^2 f`, with the voltage flat below
            // 1065.6 MHz; so idle power falls by about 0.55 W at 204 MHz, and
            // memory-bound work runs 7.8x slower there. PolyThrottle (Yan et al.,
            // 2023) measured that the memory clock can move Jetson inference
            // energy as much as the GPU clock; this model lets the optimizer
            // find that trade, not reproduce its figures.
            emc: Domain {
                f_max: 1_600_000_000.0,
                f_knee: 1_065_600_000.0,
                v_min: 0.8,
                v_max: 1.0,
                leak_max_w: 0.0,
                dynamic_max_w: 0.6,
            },
        }
    }

    /// How the memory clock changes the model against its top level: the
    /// factor on memory-bound time, the factor on memory-active power, and
    /// the change of idle power (watts). Exactly `(1, 1, 0)` at the top level
    /// (and for an unknown clock), so runs that leave the memory clock alone
    /// compute what the three-knob model did, to the bit.
    fn memory_clock(&self, emc_hz: u32) -> (f64, f64, f64) {
        let f = emc_hz as f64;
        if emc_hz == 0 || f >= self.emc.f_max {
            return (1.0, 1.0, 0.0);
        }
        let e = &self.emc;
        (
            e.f_max / f,
            // Energy per byte scales with V^2; bytes per second with f.
            e.dynamic_w(f) / e.dynamic_max_w,
            e.dynamic_w(f) - e.dynamic_max_w,
        )
    }

    /// The three parts of a batch's time at these clocks, seconds.
    fn parts(&self, clocks: Clocks, batch: u32) -> (f64, f64, f64) {
        let (slower, _, _) = self.memory_clock(clocks.emc_hz);
        (
            self.dnn.cpu.at(batch) * self.cpu.f_max / clocks.cpu_khz.max(1) as f64,
            self.dnn.gpu.at(batch) * self.gpu.f_max / clocks.gpu_hz.max(1) as f64,
            self.dnn.memory.at(batch) * slower,
        )
    }
}

impl DeviceModel for XavierNx {
    fn cpu_levels_khz(&self) -> &[u32] {
        &XAVIER_NX_CPU_KHZ
    }

    fn gpu_levels_hz(&self) -> &[u32] {
        &XAVIER_NX_GPU_HZ
    }

    fn emc_levels_hz(&self) -> &[u32] {
        &XAVIER_NX_EMC_HZ
    }

    fn max_batch(&self) -> u32 {
        16
    }

    fn service_time_s(&self, clocks: Clocks, batch: u32) -> f64 {
        let (c, g, m) = self.parts(clocks, batch);
        c + g + m
    }

    fn busy_power_w(&self, clocks: Clocks, batch: u32) -> f64 {
        let (c, g, m) = self.parts(clocks, batch);
        let (_, active, _) = self.memory_clock(clocks.emc_hz);
        let t = c + g + m;
        // Each unit draws its dynamic power only while its part runs.
        let energy = self.idle_power_w(clocks) * t
            + self.cpu.dynamic_w(clocks.cpu_khz as f64) * c
            + self.gpu.dynamic_w(clocks.gpu_hz as f64) * g
            + self.memory_active_w * active * m;
        energy / t
    }

    fn idle_power_w(&self, clocks: Clocks) -> f64 {
        let (_, _, idle) = self.memory_clock(clocks.emc_hz);
        self.base_w
            + self.cpu.leakage_w(clocks.cpu_khz as f64)
            + self.gpu.leakage_w(clocks.gpu_hz as f64)
            + idle
    }
}

#[cfg(test)]
mod tests {
    //! One test per calibration target of SIMULATOR.md.
    use super::*;

    const CPU_MAX: u32 = 1_907_200;
    const GPU_MAX: u32 = 1_109_250_000;
    const EMC_MAX: u32 = 1_600_000_000;

    fn at(cpu_khz: u32, gpu_hz: u32) -> Clocks {
        Clocks {
            cpu_khz,
            gpu_hz,
            emc_hz: EMC_MAX,
        }
    }

    fn within(x: f64, target: f64, tolerance: f64) -> bool {
        (x - target).abs() <= target * tolerance
    }

    #[test]
    fn resnet50_latency_at_max_clocks() {
        let m = XavierNx::new(DnnKind::Resnet50);
        let t1 = m.service_time_s(at(CPU_MAX, GPU_MAX), 1);
        let t16 = m.service_time_s(at(CPU_MAX, GPU_MAX), 16);
        assert!(within(t1, 0.030, 0.05), "batch 1: {t1}");
        assert!(within(t16, 0.200, 0.05), "batch 16: {t16}");
    }

    #[test]
    fn bert_tiny_is_cpu_bound_and_barely_moves_with_the_gpu() {
        let m = XavierNx::new(DnnKind::BertTiny);
        let t1 = m.service_time_s(at(CPU_MAX, GPU_MAX), 1);
        let t16 = m.service_time_s(at(CPU_MAX, GPU_MAX), 16);
        assert!(within(t1, 0.005, 0.05), "batch 1: {t1}");
        assert!(within(t16, 0.010, 0.05), "batch 16: {t16}");
        // Halving the GPU clock (to the middle of its range) costs under 5 %.
        let mid = XAVIER_NX_GPU_HZ[7];
        for b in [1, 16] {
            let slow =
                m.service_time_s(at(CPU_MAX, mid), b) / m.service_time_s(at(CPU_MAX, GPU_MAX), b);
            assert!(slow < 1.05, "batch {b}: x{slow}");
        }
        // While the CPU clock matters: at the middle CPU level it is over 25 % slower.
        let cpu_mid = XAVIER_NX_CPU_KHZ[12];
        assert!(m.service_time_s(at(cpu_mid, GPU_MAX), 1) > 1.25 * t1);
    }

    #[test]
    fn board_power_idle_and_loaded() {
        let m = XavierNx::new(DnnKind::Resnet50);
        let idle_min = m.idle_power_w(at(XAVIER_NX_CPU_KHZ[0], XAVIER_NX_GPU_HZ[0]));
        let idle_max = m.idle_power_w(at(CPU_MAX, GPU_MAX));
        let busy = m.busy_power_w(at(CPU_MAX, GPU_MAX), 16);
        assert!(
            within(idle_min, 3.5, 0.05),
            "idle at min clocks: {idle_min} W"
        );
        assert!(
            within(idle_max, 5.0, 0.05),
            "idle at max clocks: {idle_max} W"
        );
        assert!(
            within(busy, 15.0, 0.05),
            "full load at max clocks: {busy} W"
        );
    }

    #[test]
    fn energy_per_inference_is_u_shaped_in_gpu_clock() {
        let m = XavierNx::new(DnnKind::Resnet50);
        let energy: Vec<f64> = XAVIER_NX_GPU_HZ
            .iter()
            .map(|&g| {
                m.busy_power_w(at(CPU_MAX, g), 16) * m.service_time_s(at(CPU_MAX, g), 16) / 16.0
            })
            .collect();
        let best = energy
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap();
        assert!(
            best > 0 && best < energy.len() - 1,
            "best GPU level {best}: {energy:?}"
        );
        assert!(energy[0] > 1.5 * energy[best] && energy[14] > 1.2 * energy[best]);
    }

    #[test]
    fn voltage_curve_is_flat_then_linear() {
        let d = XavierNx::new(DnnKind::Resnet50).gpu;
        assert_eq!(d.voltage(1.0), d.v_min);
        assert_eq!(d.voltage(d.f_knee), d.v_min);
        assert!((d.voltage(d.f_max) - d.v_max).abs() < 1e-12);
        let mid = 0.5 * (d.f_knee + d.f_max);
        assert!((d.voltage(mid) - 0.5 * (d.v_min + d.v_max)).abs() < 1e-12);
    }

    #[test]
    fn the_top_memory_clock_is_the_three_knob_model_to_the_bit() {
        for dnn in [DnnKind::Resnet50, DnnKind::BertTiny] {
            let m = XavierNx::new(dnn);
            let unknown = Clocks {
                emc_hz: 0,
                ..at(CPU_MAX, XAVIER_NX_GPU_HZ[3])
            };
            let top = at(CPU_MAX, XAVIER_NX_GPU_HZ[3]);
            for b in [1, 7, 16] {
                assert_eq!(m.service_time_s(top, b), m.service_time_s(unknown, b));
                assert_eq!(m.busy_power_w(top, b), m.busy_power_w(unknown, b));
            }
            assert_eq!(m.idle_power_w(top), m.idle_power_w(unknown));
        }
    }

    #[test]
    fn a_lower_memory_clock_saves_idle_power_and_slows_memory_bound_work() {
        let m = XavierNx::new(DnnKind::BertTiny);
        let low = |emc_hz| Clocks {
            emc_hz,
            ..at(CPU_MAX, GPU_MAX)
        };
        let (idle_top, idle_min) = (
            m.idle_power_w(low(EMC_MAX)),
            m.idle_power_w(low(XAVIER_NX_EMC_HZ[0])),
        );
        assert!(
            within(idle_top - idle_min, 0.55, 0.05),
            "{idle_top} W -> {idle_min} W"
        );
        // Idle power falls and service time rises monotonically with the clock.
        for w in XAVIER_NX_EMC_HZ.windows(2) {
            assert!(m.idle_power_w(low(w[0])) < m.idle_power_w(low(w[1])));
            assert!(m.service_time_s(low(w[0]), 16) > m.service_time_s(low(w[1]), 16));
        }
        // BERT-tiny's memory part (2.8 ms of 9.8 at batch 16) takes 7.8x longer at 204 MHz.
        let slow = m.service_time_s(low(XAVIER_NX_EMC_HZ[0]), 16);
        assert!(within(slow, 0.0098 + 6.84 * 0.0028, 0.05), "{slow} s");
    }

    #[test]
    fn at_light_load_a_middle_memory_clock_saves_energy() {
        // One BERT-tiny request every 90 ms: the board idles most of the time,
        // so energy per request is mostly idle power; the memory clock that
        // minimises it is below the top and above the bottom.
        let m = XavierNx::new(DnnKind::BertTiny);
        let energy = |emc_hz| {
            let c = Clocks {
                emc_hz,
                ..at(XAVIER_NX_CPU_KHZ[12], XAVIER_NX_GPU_HZ[0])
            };
            let t = m.service_time_s(c, 1);
            m.busy_power_w(c, 1) * t + m.idle_power_w(c) * (0.090 - t)
        };
        let top = energy(EMC_MAX);
        assert!(energy(XAVIER_NX_EMC_HZ[3]) < 0.9 * top);
    }
}
