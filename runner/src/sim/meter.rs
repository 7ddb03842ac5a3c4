//! The simulated power sensor: an INA3221 on the module input, sampled
//! periodically, integrated into energy.
//!
//! The real meter samples power every `period` and sums `sample * period`, so the
//! energy a caller reads is a staircase with sensor noise and quantisation. The
//! simulator reproduces that without simulating every sample: power is constant
//! between simulation events, so the samples inside a segment are `n` draws of the
//! same quantised, noisy value, whose sum is drawn in one step (mean `n * P`,
//! variance `n * (sigma^2 + lsb^2 / 12)`: noise dithers the quantiser). With
//! noise off the meter is ideal: the exact integral, for the oracle.

use ecoedge_core::board::EnergyMeter;
use ecoedge_core::time::Instant;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// INA3221 facts and the module-input channel of the Xavier NX.
pub mod ina3221 {
    /// Shunt-voltage LSB, volts.
    pub const SHUNT_LSB_V: f64 = 40e-6;
    /// Bus-voltage LSB, volts.
    pub const BUS_LSB_V: f64 = 8e-3;
    /// VDD_IN shunt, ohms (5 milliohm: the value in the Xavier NX device tree).
    pub const SHUNT_OHM: f64 = 5e-3;
    /// VDD_IN bus voltage, volts.
    pub const BUS_V: f64 = 5.0;
    /// Front-end noise on the current reading, amperes (about one LSB).
    pub const CURRENT_NOISE_A: f64 = 10e-3;
}

/// How the sensor is simulated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorModel {
    /// Sampling period, microseconds (default 1000).
    pub period_us: u64,
    /// Noise and quantisation on; off gives the exact integral.
    pub realistic: bool,
}

impl Default for SensorModel {
    fn default() -> Self {
        SensorModel {
            period_us: 1_000,
            realistic: true,
        }
    }
}

/// Cumulative energy of a piecewise-constant power signal, as a sensor sees it.
#[derive(Debug, Clone)]
pub struct SimMeter {
    model: SensorModel,
    /// Power since `at_us`, watts.
    power_w: f64,
    at_us: u64,
    energy_j: f64,
    /// Power LSB and noise at the quantised bus voltage, watts.
    lsb_w: f64,
    sigma_w: f64,
    rng: Xoshiro256PlusPlus,
}

impl SimMeter {
    /// A meter at time 0 reading 0 J, noise drawn from `seed`.
    pub fn new(model: SensorModel, seed: u64) -> Self {
        use ina3221::*;
        let bus_v = (BUS_V / BUS_LSB_V).round() * BUS_LSB_V;
        SimMeter {
            model,
            power_w: 0.0,
            at_us: 0,
            energy_j: 0.0,
            lsb_w: bus_v * SHUNT_LSB_V / SHUNT_OHM,
            sigma_w: bus_v * CURRENT_NOISE_A,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// Integrates up to `now_us` at the current power, then draws `power_w`.
    pub fn set_power(&mut self, now_us: u64, power_w: f64) {
        self.advance(now_us);
        self.power_w = power_w;
    }

    /// Integrates up to `now_us` at the current power.
    pub fn advance(&mut self, now_us: u64) {
        if now_us <= self.at_us {
            return;
        }
        if !self.model.realistic {
            self.energy_j += self.power_w * (now_us - self.at_us) as f64 * 1e-6;
            self.at_us = now_us;
            return;
        }
        // Samples taken at multiples of the period in (at, now].
        let p = self.model.period_us.max(1);
        let n = now_us / p - self.at_us / p;
        self.at_us = now_us;
        if n == 0 {
            return;
        }
        let n_f = n as f64;
        let variance = self.sigma_w * self.sigma_w + self.lsb_w * self.lsb_w / 12.0;
        let z: f64 = StandardNormal.sample(&mut self.rng);
        let sum_w = n_f * self.power_w + (n_f * variance).sqrt() * z;
        // A sample cannot be negative: the INA3221 clamps at zero current.
        self.energy_j += sum_w.max(0.0) * p as f64 * 1e-6;
    }
}

impl EnergyMeter for SimMeter {
    type Error = std::convert::Infallible;

    fn energy_j(&mut self, now: Instant) -> Result<f64, Self::Error> {
        self.advance(now.as_micros());
        Ok(self.energy_j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(model: SensorModel, seed: u64) -> f64 {
        let mut m = SimMeter::new(model, seed);
        // 10 s alternating 5 W and 15 W every 100.3 ms (not aligned to samples).
        let mut t = 0;
        for k in 0..100 {
            m.set_power(t, if k % 2 == 0 { 5.0 } else { 15.0 });
            t += 100_300;
        }
        m.energy_j(Instant::from_micros(t)).unwrap()
    }

    #[test]
    fn ideal_meter_is_exact() {
        let e = run(
            SensorModel {
                realistic: false,
                ..SensorModel::default()
            },
            1,
        );
        assert!((e - 100.3e-3 * (50.0 * 5.0 + 50.0 * 15.0)).abs() < 1e-9);
    }

    #[test]
    fn realistic_meter_is_close_noisy_and_seeded() {
        let exact = 100.3e-3 * (50.0 * 5.0 + 50.0 * 15.0);
        let a = run(SensorModel::default(), 1);
        let b = run(SensorModel::default(), 2);
        assert!((a - exact).abs() < 0.005 * exact, "{a} vs {exact}");
        assert_ne!(a, b);
        assert_eq!(a, run(SensorModel::default(), 1));
        assert!((SimMeter::new(SensorModel::default(), 0).lsb_w - 0.04).abs() < 1e-12);
    }

    #[test]
    fn readings_are_a_staircase_of_samples() {
        let mut m = SimMeter::new(SensorModel::default(), 3);
        m.set_power(0, 10.0);
        assert_eq!(m.energy_j(Instant::from_micros(999)).unwrap(), 0.0);
        let e = m.energy_j(Instant::from_micros(1_000)).unwrap();
        assert!((e - 0.01).abs() < 0.001, "{e}");
    }
}
