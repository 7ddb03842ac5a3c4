//! Pure raw-to-unit conversions, range-checked; no bus access here.

use super::register::{BitFlags, Config};
use super::{AveragingCount, ConversionTime};

/// Shunt-voltage LSB in microvolts.
const SHUNT_LSB_UV: i32 = 40;
/// Bus-voltage LSB in millivolts.
const BUS_LSB_MV: i32 = 8;

/// The signed 13-bit value in bits 15-3 of a voltage register (bits 2-0 read 0).
fn thirteen_bit(raw: u16) -> i32 {
    i32::from((raw as i16) >> 3)
}

/// Shunt voltage in microvolts from the raw register (range +-163.84 mV).
pub(crate) fn shunt_voltage_uv(raw: u16) -> i32 {
    thirteen_bit(raw) * SHUNT_LSB_UV
}

/// Bus voltage in millivolts from the raw register (range +-32.76 V; the chip
/// measures 0 to 26 V).
pub(crate) fn bus_voltage_mv(raw: u16) -> i32 {
    thirteen_bit(raw) * BUS_LSB_MV
}

/// Current in microamperes through a shunt of `shunt_uohm` micro-ohms, or `None`
/// when the shunt is zero or the current does not fit an `i32` (a shunt below
/// about 77 micro-ohms at full scale).
pub(crate) fn current_ua(shunt_uv: i32, shunt_uohm: u32) -> Option<i32> {
    if shunt_uohm == 0 {
        return None;
    }
    i32::try_from(i64::from(shunt_uv) * 1_000_000 / i64::from(shunt_uohm)).ok()
}

/// Power in microwatts from bus voltage and current, or `None` when it does not
/// fit an `i32` (more than about 2.1 kW).
pub(crate) fn power_uw(bus_mv: i32, current_ua: i32) -> Option<i32> {
    i32::try_from(i64::from(bus_mv) * i64::from(current_ua) / 1_000).ok()
}

/// Microseconds between two refreshes of the result registers in a continuous
/// mode, from the configuration word: the chip converts each enabled channel in
/// turn (shunt, then bus, when it runs both) and reports once `averaging` such
/// rounds are done (datasheet SBOS576, "Basic ADC Functions"), so
/// `averaging x enabled channels x (shunt time + bus time)`; the power-on word
/// 0x7127 gives 3 x 2.2 ms = 6.6 ms. `None` when nothing refreshes: power-down,
/// a single-shot mode, or every channel disabled.
pub(crate) fn cycle_us(config: Config) -> Option<u32> {
    let (shunt, bus) = match config.field(BitFlags::MODE_SHIFT) {
        0b101 => (true, false),
        0b110 => (false, true),
        0b111 => (true, true),
        _ => return None,
    };
    let channels = BitFlags::CHANNEL_ENABLE
        .iter()
        .filter(|&&flag| config.bits & flag != 0)
        .count() as u32;
    if channels == 0 {
        return None;
    }
    let time = |shift| ConversionTime::from_bits(config.field(shift)).micros();
    let per_channel = if shunt {
        time(BitFlags::SHUNT_CT_SHIFT)
    } else {
        0
    } + if bus { time(BitFlags::BUS_CT_SHIFT) } else { 0 };
    let averaging = AveragingCount::from_bits(config.field(BitFlags::AVERAGING_SHIFT)).samples();
    // At most 1024 x 3 x 2 x 8244 us = 50.6 s: no overflow.
    Some(averaging * channels * per_channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_time_follows_mode_channels_times_and_averaging() {
        let cycle = |bits| cycle_us(Config { bits });
        // Power-on: 3 channels x (1.1 + 1.1) ms, 1 sample.
        assert_eq!(cycle(0x7127), Some(6_600));
        // Channel 1 only, 4 samples (0b001), bus 140 us (0b000), shunt 8.244 ms (0b111).
        assert_eq!(
            cycle(0x4000 | (0b001 << 9) | (0b111 << 3) | 0b111),
            Some(4 * (140 + 8_244))
        );
        // Shunt only, then bus only: one conversion time per channel.
        assert_eq!(cycle((0x7127 & !0b111) | 0b101), Some(3 * 1_100));
        assert_eq!(cycle((0x7127 & !0b111) | 0b110), Some(3 * 1_100));
        // Every field at its maximum.
        assert_eq!(cycle(0x7FFF), Some(1024 * 3 * 2 * 8_244));
        // Power-down (both encodings), single shot, no channel: nothing refreshes.
        for mode in [0b000, 0b100, 0b001, 0b010, 0b011] {
            assert_eq!(cycle((0x7127 & !0b111) | mode), None, "mode {mode:03b}");
        }
        assert_eq!(cycle(0x0127), None);
    }

    #[test]
    fn shunt_voltage_is_twos_complement_in_bits_15_to_3() {
        assert_eq!(shunt_voltage_uv(0x0000), 0);
        assert_eq!(shunt_voltage_uv(0x0008), 40);
        assert_eq!(shunt_voltage_uv(0x0007), 0, "bits 2-0 carry nothing");
        assert_eq!(shunt_voltage_uv(0x7FF8), 163_800);
        assert_eq!(shunt_voltage_uv(0xFFF8), -40);
        assert_eq!(shunt_voltage_uv(0x8000), -163_840);
    }

    #[test]
    fn bus_voltage_has_an_8_mv_lsb() {
        assert_eq!(bus_voltage_mv(0x0008), 8);
        // 5.0 V on the Jetson module input: 625 LSB.
        assert_eq!(bus_voltage_mv(625 << 3), 5_000);
        assert_eq!(bus_voltage_mv(0x7FF8), 32_760);
        assert_eq!(bus_voltage_mv(0xFFF8), -8);
    }

    #[test]
    fn current_and_power_are_range_checked() {
        // 10 mV over 5 milliohm = 2 A.
        assert_eq!(current_ua(10_000, 5_000), Some(2_000_000));
        assert_eq!(current_ua(-40, 10_000), Some(-4_000));
        assert_eq!(current_ua(40, 0), None);
        assert_eq!(current_ua(163_800, 1), None);
        assert_eq!(power_uw(5_000, 2_000_000), Some(10_000_000));
        assert_eq!(power_uw(-8, 1_000), Some(-8));
        assert_eq!(power_uw(32_760, i32::MAX), None);
    }
}
