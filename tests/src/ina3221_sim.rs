//! A register-level INA3221 behind embedded-hal 1.0's `I2c`.
//!
//! It behaves as the datasheet says, as far as the driver can tell: a one-byte
//! write sets the register pointer, a three-byte write sets a register (the
//! pointer byte, then big-endian data), reads return the pointed register
//! big-endian; writing the configuration register clears the conversion-ready
//! flag and bit 15 resets every register; reading mask/enable clears the flag.
//! Analog inputs are set in volts and quantised like the chip (40 uV shunt LSB,
//! 8 mV bus LSB, two's complement in bits 15-3). A conversion cycle completes
//! after a configurable number of mask/enable polls, so a test runs on no clock.
//! [`SharedSim`] lets a test change the inputs of a chip another thread reads.

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};
use std::sync::{Arc, Mutex, PoisonError};

/// The simulated chip.
#[derive(Debug, Clone)]
pub struct Ina3221Sim {
    address: u8,
    pointer: u8,
    config: u16,
    mask_enable: u16,
    manufacturer_id: u16,
    die_id: u16,
    /// Shunt and bus voltage registers per channel (raw).
    shunt: [u16; 3],
    bus: [u16; 3],
    /// Mask/enable polls left until the running conversion cycle completes.
    polls_left: u32,
    /// Polls a conversion cycle takes.
    cycle_polls: u32,
    /// Every configuration word written, in order.
    pub config_writes: Vec<u16>,
}

/// Power-on configuration word.
pub const RESET_CONFIG: u16 = 0x7127;

impl Ina3221Sim {
    /// A genuine INA3221 at `address`, at its power-on state, all inputs zero.
    pub fn new(address: u8) -> Self {
        Ina3221Sim {
            address,
            pointer: 0,
            config: RESET_CONFIG,
            mask_enable: 0x0002,
            manufacturer_id: 0x5449,
            die_id: 0x3220,
            shunt: [0; 3],
            bus: [0; 3],
            polls_left: 1,
            cycle_polls: 1,
            config_writes: Vec::new(),
        }
    }

    /// The same chip answering other identification values (a counterfeit or
    /// another device at that address).
    #[must_use]
    pub fn with_ids(mut self, manufacturer: u16, die: u16) -> Self {
        self.manufacturer_id = manufacturer;
        self.die_id = die;
        self
    }

    /// A conversion cycle takes `polls` reads of mask/enable to complete.
    #[must_use]
    pub fn with_cycle_polls(mut self, polls: u32) -> Self {
        self.cycle_polls = polls;
        self.polls_left = polls;
        self
    }

    /// Sets channel `ch` (0..3) inputs: shunt and bus voltage in volts.
    pub fn set_inputs(&mut self, ch: usize, shunt_v: f64, bus_v: f64) {
        self.shunt[ch] = quantise(shunt_v, 40e-6);
        self.bus[ch] = quantise(bus_v, 8e-3);
    }

    /// The configuration word now.
    pub fn config(&self) -> u16 {
        self.config
    }

    fn read(&mut self, reg: u8) -> Option<u16> {
        Some(match reg {
            0x00 => self.config,
            0x01 | 0x03 | 0x05 => self.shunt[usize::from(reg - 1) / 2],
            0x02 | 0x04 | 0x06 => self.bus[usize::from(reg - 2) / 2],
            0x0F => {
                self.polls_left = self.polls_left.saturating_sub(1);
                let ready = self.polls_left == 0;
                if ready {
                    self.polls_left = self.cycle_polls;
                }
                (self.mask_enable & !1) | u16::from(ready)
            }
            0xFE => self.manufacturer_id,
            0xFF => self.die_id,
            0x07..=0x0E | 0x10 | 0x11 => 0,
            _ => return None,
        })
    }

    fn write(&mut self, reg: u8, value: u16) -> Option<()> {
        match reg {
            0x00 if value & 0x8000 != 0 => {
                *self = Ina3221Sim {
                    config_writes: std::mem::take(&mut self.config_writes),
                    ..Ina3221Sim::new(self.address)
                        .with_ids(self.manufacturer_id, self.die_id)
                        .with_cycle_polls(self.cycle_polls)
                };
                self.config_writes.push(value);
            }
            0x00 => {
                self.config = value;
                self.polls_left = self.cycle_polls;
                self.config_writes.push(value);
            }
            0x0F => self.mask_enable = value & !1,
            0x07..=0x0E | 0x10 | 0x11 => {}
            _ => return None,
        }
        Some(())
    }
}

/// Volts to the chip's register: two's complement count of `lsb` in bits 15-3,
/// saturated at the 13-bit range.
fn quantise(volts: f64, lsb: f64) -> u16 {
    let count = (volts / lsb).round().clamp(-4096.0, 4095.0) as i16;
    (count << 3) as u16
}

impl ErrorType for Ina3221Sim {
    type Error = ErrorKind;
}

impl I2c for Ina3221Sim {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind> {
        if address != self.address {
            return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        let data_nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data);
        for op in operations {
            match op {
                Operation::Write(bytes) => match **bytes {
                    [reg] => self.pointer = reg,
                    [reg, hi, lo] => {
                        self.pointer = reg;
                        self.write(reg, u16::from_be_bytes([hi, lo]))
                            .ok_or(data_nack)?;
                    }
                    _ => return Err(data_nack),
                },
                Operation::Read(buf) => {
                    let value = self.read(self.pointer).ok_or(data_nack)?.to_be_bytes();
                    // The chip sends the register MSB first and repeats nothing.
                    for (i, b) in buf.iter_mut().enumerate() {
                        *b = value.get(i).copied().unwrap_or(0xFF);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A simulator shared between a driver that owns its bus (a sampler's thread)
/// and the test, which changes the analog inputs while the driver reads: every
/// clone is the same chip, and each bus transaction holds the lock throughout,
/// so a register never reads half old, half new.
#[derive(Debug, Clone)]
pub struct SharedSim(Arc<Mutex<Ina3221Sim>>);

impl SharedSim {
    /// Shares `sim`.
    pub fn new(sim: Ina3221Sim) -> Self {
        SharedSim(Arc::new(Mutex::new(sim)))
    }

    /// Runs `f` on the chip (set inputs, read the config).
    pub fn with<R>(&self, f: impl FnOnce(&mut Ina3221Sim) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ErrorType for SharedSim {
    type Error = ErrorKind;
}

impl I2c for SharedSim {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind> {
        self.with(|sim| sim.transaction(address, operations))
    }
}
