//! INA3221 driver against exact bus transactions (embedded-hal-mock) and against
//! the register-level simulator.

use ecoedge_bsp_jetson::ina3221::{
    Address, AveragingCount, Channel, ConversionTime, Error, Ina3221, Mode,
};
use ecoedge_tests::ina3221_sim::{Ina3221Sim, RESET_CONFIG};
use embedded_hal::i2c::ErrorKind;
use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

// The register map, declared again here so a wrong constant in the driver fails.
const ADDR: u8 = 0x40;
const CONFIG: u8 = 0x00;
const SHUNT_1: u8 = 0x01;
const BUS_1: u8 = 0x02;
const SHUNT_3: u8 = 0x05;
const BUS_3: u8 = 0x06;
const MASK_ENABLE: u8 = 0x0F;
const MANUFACTURER_ID: u8 = 0xFE;
const DIE_ID: u8 = 0xFF;

fn read(reg: u8, value: u16) -> T {
    T::write_read(ADDR, vec![reg], value.to_be_bytes().to_vec())
}

fn write(reg: u8, value: u16) -> T {
    let [hi, lo] = value.to_be_bytes();
    T::write(ADDR, vec![reg, hi, lo])
}

/// The transactions of a successful `new`: both IDs, then the config word.
fn probe(config: u16) -> Vec<T> {
    vec![
        read(MANUFACTURER_ID, 0x5449),
        read(DIE_ID, 0x3220),
        read(CONFIG, config),
    ]
}

fn device(extra: &[T]) -> Ina3221<Mock> {
    let mut all = probe(0x7127);
    all.extend_from_slice(extra);
    Ina3221::new(Mock::new(&all), Address::Gnd, [5_000; 3]).expect("genuine chip")
}

#[test]
fn construction_checks_both_ids_and_reads_the_config() {
    let dev = device(&[]);
    dev.destroy().done();
}

#[test]
fn wrong_manufacturer_id_is_refused_and_the_bus_handed_back() {
    let bus = Mock::new(&[read(MANUFACTURER_ID, 0x1234)]);
    let err = Ina3221::new(bus, Address::Gnd, [5_000; 3]).unwrap_err();
    assert_eq!(err.error, Error::WrongManufacturerId(0x1234));
    assert!(err.to_string().contains("0x1234"));
    // The bus comes back with every expected transaction used, and no other.
    let mut back = err.i2c;
    back.done();
}

#[test]
fn wrong_die_id_is_refused() {
    let err = Ina3221::new(
        Mock::new(&[read(MANUFACTURER_ID, 0x5449), read(DIE_ID, 0x3221)]),
        Address::Gnd,
        [5_000; 3],
    )
    .unwrap_err();
    assert_eq!(err.error, Error::WrongDieId(0x3221));
    err.i2c.clone().done();
}

#[test]
fn zero_shunt_is_refused_without_touching_the_bus() {
    let err = Ina3221::new(Mock::new(&[]), Address::Gnd, [5_000, 0, 5_000]).unwrap_err();
    assert_eq!(err.error, Error::InvalidInputData);
    err.i2c.clone().done();
}

#[test]
fn each_setter_writes_one_config_word_built_on_the_cached_one() {
    // Start from a config another owner left: averaging 16, everything else reset.
    let start = 0x7127 | (0b010 << 9);
    let mut all = probe(start);
    let after_avg = (start & !(0b111 << 9)) | (0b111 << 9); // 1024 samples
    let after_bus = after_avg & !(0b111 << 6); // 140 us: field 0b000
    let after_shunt = (after_bus & !(0b111 << 3)) | (0b111 << 3); // 8.244 ms
    let after_mode = (after_shunt & !0b111) | 0b011; // shunt+bus single shot
    let after_off = after_mode & !(1 << 13); // channel 2 off
    let after_on = after_off | (1 << 13);
    for w in [
        after_avg,
        after_bus,
        after_shunt,
        after_mode,
        after_off,
        after_on,
    ] {
        all.push(write(CONFIG, w));
    }
    all.push(write(CONFIG, 0x8000 | 0x7127));
    all.push(write(CONFIG, 0x7127 & !0b111)); // power down after the reset
    let mut dev = Ina3221::new(Mock::new(&all), Address::Gnd, [5_000; 3]).unwrap();
    dev.set_averaging(AveragingCount::_1024).unwrap();
    dev.set_bus_conversion_time(ConversionTime::Us140).unwrap();
    dev.set_shunt_conversion_time(ConversionTime::Us8244)
        .unwrap();
    dev.set_mode(Mode::ShuntBusSingleShot).unwrap();
    dev.disable_channel(Channel::Ch2).unwrap();
    dev.enable_channel(Channel::Ch2).unwrap();
    dev.reset().unwrap();
    dev.set_mode(Mode::PowerDown).unwrap();
    dev.destroy().done();
}

#[test]
fn a_failed_config_write_leaves_the_cache_unchanged() {
    let mut all = probe(0x7127);
    all.push(write(CONFIG, 0x7127 | (0b001 << 9)).with_error(ErrorKind::Bus));
    // The next setter must build on the old word, not on the failed one.
    all.push(write(CONFIG, 0x7126));
    let mut dev = Ina3221::new(Mock::new(&all), Address::Gnd, [5_000; 3]).unwrap();
    assert_eq!(
        dev.set_averaging(AveragingCount::_4),
        Err(Error::I2C(ErrorKind::Bus))
    );
    dev.set_mode(Mode::BusContinuous).unwrap();
    dev.destroy().done();
}

#[test]
fn voltages_current_and_power_from_the_registers() {
    // Channel 1: 10 mV over 5 milliohm = 2 A at 5 V = 10 W.
    let shunt_raw = (10_000 / 40) << 3;
    let bus_raw = (5_000 / 8) << 3;
    let mut dev = device(&[
        read(SHUNT_1, shunt_raw),
        read(BUS_1, bus_raw),
        read(SHUNT_1, shunt_raw),
        read(SHUNT_1, shunt_raw),
        read(BUS_1, bus_raw),
        read(SHUNT_3, 0xFFF8),
        read(BUS_3, 0x8000),
    ]);
    assert_eq!(dev.shunt_voltage_uv(Channel::Ch1), Ok(10_000));
    assert_eq!(dev.bus_voltage_mv(Channel::Ch1), Ok(5_000));
    assert_eq!(dev.current_ua(Channel::Ch1), Ok(2_000_000));
    assert_eq!(dev.power_uw(Channel::Ch1), Ok(10_000_000));
    assert_eq!(dev.shunt_voltage_uv(Channel::Ch3), Ok(-40));
    assert_eq!(dev.bus_voltage_mv(Channel::Ch3), Ok(-32_768));
    dev.destroy().done();
}

#[test]
fn conversion_ready_polls_mask_enable_bit_0() {
    let mut dev = device(&[
        read(MASK_ENABLE, 0x0002),
        read(MASK_ENABLE, 0x0003),
        read(MASK_ENABLE, 0x0002),
        read(MASK_ENABLE, 0x0002),
        read(MASK_ENABLE, 0x0002),
        read(MASK_ENABLE, 0x0001),
    ]);
    assert_eq!(dev.conversion_ready(), Err(nb::Error::WouldBlock));
    assert_eq!(dev.conversion_ready(), Ok(()));
    assert_eq!(dev.wait_conversion_ready(2), Err(Error::Timeout));
    assert_eq!(dev.wait_conversion_ready(2), Ok(()));
    dev.destroy().done();
}

#[test]
fn bus_errors_are_wrapped() {
    let mut dev = device(&[read(BUS_1, 0).with_error(ErrorKind::ArbitrationLoss)]);
    assert_eq!(
        dev.bus_voltage_mv(Channel::Ch1),
        Err(Error::I2C(ErrorKind::ArbitrationLoss))
    );
    dev.destroy().done();
}

// --- against the simulator -------------------------------------------------

#[test]
fn simulator_single_shot_measurement_of_a_jetson_module_input() {
    let mut sim = Ina3221Sim::new(0x40).with_cycle_polls(3);
    // Xavier NX module input: 5.08 V, 1.2 A through 5 milliohm = 6 mV.
    sim.set_inputs(0, 0.006, 5.08);
    let mut ina = Ina3221::new(sim, Address::Gnd, [5_000; 3]).unwrap();
    ina.set_mode(Mode::ShuntBusSingleShot).unwrap();
    ina.wait_conversion_ready(10).unwrap();
    assert_eq!(ina.bus_voltage_mv(Channel::Ch1), Ok(5_080));
    assert_eq!(ina.shunt_voltage_uv(Channel::Ch1), Ok(6_000));
    assert_eq!(ina.current_ua(Channel::Ch1), Ok(1_200_000));
    assert_eq!(ina.power_uw(Channel::Ch1), Ok(6_096_000));
    let sim = ina.destroy();
    assert_eq!(sim.config(), (RESET_CONFIG & !0b111) | 0b011);
}

#[test]
fn simulator_conversion_ready_needs_a_full_cycle_and_clears_on_read() {
    let sim = Ina3221Sim::new(0x40).with_cycle_polls(4);
    let mut ina = Ina3221::new(sim, Address::Gnd, [5_000; 3]).unwrap();
    assert_eq!(ina.wait_conversion_ready(3), Err(Error::Timeout));
    assert_eq!(ina.is_conversion_ready(), Ok(true));
    assert_eq!(
        ina.is_conversion_ready(),
        Ok(false),
        "reading mask/enable clears the flag"
    );
}

#[test]
fn simulator_reset_restores_power_on_state() {
    let sim = Ina3221Sim::new(0x41);
    let mut ina = Ina3221::new(sim, Address::Vs, [10_000; 3]).unwrap();
    ina.set_averaging(AveragingCount::_64).unwrap();
    ina.disable_channel(Channel::Ch3).unwrap();
    ina.reset().unwrap();
    let sim = ina.destroy();
    assert_eq!(sim.config(), RESET_CONFIG);
    assert_eq!(sim.config_writes.len(), 3);
}

#[test]
fn simulator_refuses_foreign_ids_and_addresses() {
    let sim = Ina3221Sim::new(0x40).with_ids(0x5449, 0x2260); // an INA226
    let err = Ina3221::new(sim, Address::Gnd, [5_000; 3]).unwrap_err();
    assert_eq!(err.error, Error::WrongDieId(0x2260));
    let err = Ina3221::new(err.i2c, Address::Scl, [5_000; 3]).unwrap_err();
    assert!(matches!(err.error, Error::I2C(ErrorKind::NoAcknowledge(_))));
}

#[test]
fn simulator_full_scale_and_negative_shunt() {
    let mut sim = Ina3221Sim::new(0x40);
    sim.set_inputs(1, 0.2, 30.0); // beyond both ranges: saturates
    sim.set_inputs(2, -0.001, 3.3);
    let mut ina = Ina3221::new(sim, Address::Gnd, [5_000; 3]).unwrap();
    assert_eq!(ina.shunt_voltage_uv(Channel::Ch2), Ok(163_800));
    assert_eq!(ina.bus_voltage_mv(Channel::Ch2), Ok(30_000));
    assert_eq!(ina.current_ua(Channel::Ch3), Ok(-200_000));
    ina.set_shunt_resistance(Channel::Ch2, 1).unwrap();
    assert_eq!(ina.current_ua(Channel::Ch2), Err(Error::OutOfRange));
    assert_eq!(
        ina.set_shunt_resistance(Channel::Ch3, 0),
        Err(Error::InvalidInputData)
    );
}

#[test]
fn a_channel_on_the_bus_is_a_power_source_for_the_sampler() {
    use ecoedge_bsp_jetson::Ina3221Rail;
    use ecoedge_bsp_jetson::sampler::PowerSource;
    let mut sim = Ina3221Sim::new(0x40);
    sim.set_inputs(0, 0.006, 5.08);
    let device = Ina3221::new(sim, Address::Gnd, [5_000; 3]).unwrap();
    let mut rail = Ina3221Rail {
        device,
        channel: Channel::Ch1,
    };
    assert!((rail.power_w().unwrap() - 6.096).abs() < 1e-9);
}
