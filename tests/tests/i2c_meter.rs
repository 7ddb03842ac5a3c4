//! The I2C meter: opening `--meter i2c:...` on fake sysfs trees (a kernel
//! driver owns the chip, the node is missing or not an I2C bus), and an
//! INA3221 channel on the register simulator made to convert continuously.

use ecoedge_bsp_jetson::ina3221::{Address, Channel, Error, Ina3221};
use ecoedge_bsp_jetson::sampler::PowerSource;
use ecoedge_bsp_jetson::{I2cMeterError, Ina3221Rail, MeterSpec, Sysfs, open_i2c_meter};
use ecoedge_tests::ina3221_sim::{Ina3221Sim, RESET_CONFIG};
use ecoedge_tests::sysfs::{FakeBoard, XAVIER_NX_INA3221};
use embedded_hal::i2c::I2c;
use std::time::Duration;

fn open(board: &FakeBoard, spec: &str) -> I2cMeterError {
    let spec: MeterSpec = spec.parse().unwrap();
    match open_i2c_meter(&spec, &Sysfs::new(board.root())) {
        Ok(_) => panic!("{spec} opened on a fake tree"),
        Err(e) => e,
    }
}

#[test]
fn a_chip_the_kernel_owns_is_refused_before_the_bus_is_touched() {
    // The trees have no /dev/i2c-N: reaching the node would be another error.
    for (board, spec, client, driver) in [
        (
            FakeBoard::xavier_nx_jp4(),
            "i2c:/dev/i2c-7@0x40",
            "7-0040",
            "ina3221x",
        ),
        (
            FakeBoard::xavier_nx_jp5(),
            "i2c:/dev/i2c-7@0x40:2",
            "7-0040",
            "ina3221",
        ),
        (
            FakeBoard::orin_nx_jp6(),
            "i2c:/dev/i2c-1@0x40",
            "1-0040",
            "ina3221",
        ),
        (
            FakeBoard::nano(),
            "i2c:/dev/i2c-6@0x40",
            "6-0040",
            "ina3221x",
        ),
    ] {
        let err = open(&board, spec);
        let I2cMeterError::KernelDriver {
            client: c,
            driver: d,
        } = &err
        else {
            panic!("{spec}: {err}");
        };
        assert_eq!((c.as_str(), d.as_str()), (client, driver));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "echo {client} > /sys/bus/i2c/drivers/{driver}/unbind"
            )) && msg.contains("sysfs meter")
                && !msg.contains('\n'),
            "{msg}"
        );
    }
}

#[test]
fn another_address_on_the_same_bus_is_not_refused_for_the_kernels_chip() {
    let b = FakeBoard::xavier_nx_jp4();
    let err = open(&b, "i2c:/dev/i2c-7@0x41");
    assert!(matches!(err, I2cMeterError::NoDevice { .. }), "{err}");
}

#[test]
fn an_unbound_chip_needs_a_real_i2c_device_node() {
    let b = FakeBoard::empty();
    // The client exists but no driver is bound (after `unbind`).
    b.i2c_client(XAVIER_NX_INA3221, None);

    let err = open(&b, "i2c:/dev/i2c-7@0x40");
    let I2cMeterError::NoDevice { path } = &err else {
        panic!("{err}");
    };
    assert_eq!(path, &b.path("/dev/i2c-7"));
    assert!(err.to_string().contains("modprobe i2c-dev"), "{err}");

    b.file("/dev/i2c-7", "");
    let err = open(&b, "i2c:/dev/i2c-7@0x40");
    assert!(
        matches!(&err, I2cMeterError::NotAnAdapter { found, .. } if found == "a regular file"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&*b.path("/dev/i2c-7").to_string_lossy())
    );

    // A character device, but not an I2C adapter's.
    b.symlink("/dev/i2c-1", "/dev/null");
    let err = open(&b, "i2c:/dev/i2c-1@0x40");
    assert!(
        matches!(&err, I2cMeterError::NotAnAdapter { found, .. } if found.contains("character device 1:3")),
        "{err}"
    );

    std::fs::create_dir_all(b.path("/dev/i2c-2")).unwrap();
    let err = open(&b, "i2c:/dev/i2c-2@0x40");
    assert!(
        matches!(&err, I2cMeterError::NotAnAdapter { found, .. } if found == "a directory"),
        "{err}"
    );
}

/// Writes the configuration register of the simulator as another owner would
/// have left it, and forgets that write.
fn left_configured(mut sim: Ina3221Sim, config: u16) -> Ina3221Sim {
    let [hi, lo] = config.to_be_bytes();
    I2c::write(&mut sim, 0x40, &[0x00, hi, lo]).unwrap();
    sim.config_writes.clear();
    sim
}

#[test]
fn a_converting_chip_is_left_alone_and_sets_the_sampling_interval() {
    let mut sim = Ina3221Sim::new(0x40);
    sim.set_inputs(2, 0.004, 12.0);
    let ina = Ina3221::new(sim, Address::Gnd, [5_000; 3]).unwrap();
    let mut rail = Ina3221Rail::continuous(ina, Channel::Ch3, |_| {
        panic!("a converting chip is not waited for")
    })
    .unwrap();
    // Power-on: 3 channels x (1.1 ms shunt + 1.1 ms bus), 1 sample.
    assert_eq!(rail.update_interval(), Some(Duration::from_micros(6_600)));
    // 4 mV over 5 milliohm = 0.8 A at 12 V.
    assert!((rail.power_w().unwrap() - 9.6).abs() < 1e-9);
    assert!(rail.device.destroy().config_writes.is_empty());

    // 16 samples, 588 us conversions, channel 3 off: 16 x 2 x 1.176 ms.
    let config = 0x6000 | (0b010 << 9) | (0b011 << 6) | (0b011 << 3) | 0b111;
    let sim = left_configured(Ina3221Sim::new(0x40), config);
    let ina = Ina3221::new(sim, Address::Gnd, [5_000; 3]).unwrap();
    let rail = Ina3221Rail::continuous(ina, Channel::Ch1, |_| panic!("converting")).unwrap();
    assert_eq!(
        rail.update_interval(),
        Some(Duration::from_micros(16 * 2 * 1_176))
    );
}

#[test]
fn a_powered_down_chip_is_started_and_waited_for() {
    // Power-down (mode 0b000) with channel 2 off, as a driver may leave it.
    let powered_down = (RESET_CONFIG & !0b111) & !(1 << 13);
    let sim = left_configured(Ina3221Sim::new(0x40).with_cycle_polls(3), powered_down);
    let ina = Ina3221::new(sim, Address::Gnd, [5_000; 3]).unwrap();
    let mut slept = Vec::new();
    let rail = Ina3221Rail::continuous(ina, Channel::Ch2, |d| slept.push(d)).unwrap();
    // Mode first, then the channel: back to the power-on word.
    let sim = rail.device.destroy();
    assert_eq!(sim.config_writes, [powered_down | 0b111, RESET_CONFIG]);
    // The flag rose on the third poll, a quarter cycle (6.6 ms / 4) apart.
    assert_eq!(slept, [Duration::from_micros(1_650); 3]);

    // A chip that never finishes a cycle: two cycles of polls, then a timeout.
    // Channel 2 stays off, so a cycle is 2 x 2.2 ms, polled every 1.1 ms.
    let sim = left_configured(Ina3221Sim::new(0x40).with_cycle_polls(1_000), powered_down);
    let ina = Ina3221::new(sim, Address::Gnd, [5_000; 3]).unwrap();
    let mut slept = Duration::ZERO;
    let err = Ina3221Rail::continuous(ina, Channel::Ch1, |d| slept += d).unwrap_err();
    assert_eq!(err, Error::Timeout);
    assert_eq!(slept, Duration::from_micros(8_800));
}
