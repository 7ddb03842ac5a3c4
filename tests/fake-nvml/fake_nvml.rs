//! A fake `libnvidia-ml.so`: the NVML entry points EcoEdge's NVML board calls,
//! over one simulated GPU, so that the board, its meter, its clock lock and its
//! restore are tested through the real `nvml-wrapper` bindings without a GPU.
//!
//! `tests/build.rs` compiles this file alone with `rustc` (no crates) into
//! `libnvidia-ml.so.1`. The test fixture (`ecoedge_tests::nvml`) drives it
//! through files in the directory `FAKE_NVML_DIR` names, as the driver's state
//! outlives a process on a real GPU:
//!
//! - `config`: `key=value` lines. `name`, `uuid`, `mem_mhz` (one memory clock),
//!   `graphics_mhz` (comma-separated, descending as NVML lists them),
//!   `idle_mw` and `mw_per_mhz` (power = idle + slope x the graphics clock),
//!   `devices` (count, default 1); `energy=unsupported` (pre-Volta: no energy
//!   counter), `lock=no_permission` (not root), `init=driver_not_loaded`.
//! - `locked`: `MIN MAX` in MHz while graphics clocks are locked (written by
//!   the lock call, removed by the reset), and `calls`: one line per lock or
//!   reset call, for tests that check what was written and in which order.
//!
//! Energy is power integrated over wall-clock time since the process started
//! (a counter in millijoules, as NVML's), with power at the locked clock, or
//! at the highest clock when unlocked.

#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::c_char;
use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

type Return = i32;
const SUCCESS: Return = 0;
const ERROR_UNINITIALIZED: Return = 1;
const ERROR_INVALID_ARGUMENT: Return = 2;
const ERROR_NOT_SUPPORTED: Return = 3;
const ERROR_NO_PERMISSION: Return = 4;
const ERROR_INSUFFICIENT_SIZE: Return = 7;
const ERROR_DRIVER_NOT_LOADED: Return = 9;
const CLOCK_GRAPHICS: u32 = 0;
const CLOCK_SM: u32 = 1;
const CLOCK_MEM: u32 = 2;

/// An opaque device handle: the index plus one, as a pointer.
type Device = *mut u8;

fn dir() -> PathBuf {
    PathBuf::from(std::env::var_os("FAKE_NVML_DIR").unwrap_or_default())
}

fn config(key: &str) -> Option<String> {
    let text = fs::read_to_string(dir().join("config")).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

fn number(key: &str, default: u64) -> u64 {
    config(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn graphics_mhz() -> Vec<u32> {
    config("graphics_mhz")
        .unwrap_or_else(|| "1410,1200,900,600,210".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

fn locked() -> Option<(u32, u32)> {
    let text = fs::read_to_string(dir().join("locked")).ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse().ok());
    Some((it.next()??, it.next()??))
}

fn record(call: &str) {
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir().join("calls"))
    {
        let _ = writeln!(f, "{call}");
    }
}

/// The graphics clock now: the locked one, else the highest.
fn current_mhz() -> u32 {
    locked().map_or_else(
        || graphics_mhz().into_iter().max().unwrap_or(0),
        |(_, max)| max,
    )
}

fn power_mw() -> u64 {
    number("idle_mw", 60_000) + number("mw_per_mhz", 100) * u64::from(current_mhz())
}

static START: OnceLock<Instant> = OnceLock::new();
/// Initialisations not yet shut down: NVML counts them, and only the last
/// shutdown ends the library's use.
static INIT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn ready(device: Device) -> Result<(), Return> {
    if INIT.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        return Err(ERROR_UNINITIALIZED);
    }
    let index = (device as usize).wrapping_sub(1);
    if device.is_null() || index as u64 >= number("devices", 1) {
        return Err(ERROR_INVALID_ARGUMENT);
    }
    Ok(())
}

macro_rules! check {
    ($device:expr) => {
        if let Err(code) = ready($device) {
            return code;
        }
    };
}

unsafe fn write_str(s: &str, out: *mut c_char, len: u32) -> Return {
    if out.is_null() || s.len() >= len as usize {
        return ERROR_INSUFFICIENT_SIZE;
    }
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr().cast::<c_char>(), out, s.len());
        *out.add(s.len()) = 0;
    }
    SUCCESS
}

unsafe fn write_list(values: &[u32], count: *mut u32, out: *mut u32) -> Return {
    unsafe {
        let room = *count as usize;
        *count = values.len() as u32;
        if room < values.len() || out.is_null() {
            return ERROR_INSUFFICIENT_SIZE;
        }
        std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len());
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> Return {
    if config("init").as_deref() == Some("driver_not_loaded") {
        return ERROR_DRIVER_NOT_LOADED;
    }
    START.get_or_init(Instant::now);
    INIT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> Return {
    use std::sync::atomic::Ordering::SeqCst;
    match INIT.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)) {
        Ok(_) => SUCCESS,
        Err(_) => ERROR_UNINITIALIZED,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(_code: Return) -> *const c_char {
    c"fake NVML error".as_ptr()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut u32) -> Return {
    if INIT.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        return ERROR_UNINITIALIZED;
    }
    unsafe { *count = number("devices", 1) as u32 };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(index: u32, device: *mut Device) -> Return {
    let handle = (index as usize + 1) as Device;
    check!(handle);
    unsafe { *device = handle };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(device: Device, name: *mut c_char, len: u32) -> Return {
    check!(device);
    let n = config("name").unwrap_or_else(|| "NVIDIA Fake GPU".into());
    unsafe { write_str(&n, name, len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(device: Device, uuid: *mut c_char, len: u32) -> Return {
    check!(device);
    let u = config("uuid").unwrap_or_else(|| "GPU-00000000-fake".into());
    unsafe { write_str(&u, uuid, len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(device: Device, power: *mut u32) -> Return {
    check!(device);
    unsafe { *power = power_mw() as u32 };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    device: Device,
    energy: *mut u64,
) -> Return {
    check!(device);
    if config("energy").as_deref() == Some("unsupported") {
        return ERROR_NOT_SUPPORTED;
    }
    let s = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    // A counter since the driver loaded: not zero at start.
    unsafe { *energy = 5_000_000 + (power_mw() as f64 * s) as u64 };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(device: Device, kind: u32, mhz: *mut u32) -> Return {
    check!(device);
    let value = match kind {
        CLOCK_GRAPHICS | CLOCK_SM => current_mhz(),
        CLOCK_MEM => number("mem_mhz", 1215) as u32,
        _ => return ERROR_INVALID_ARGUMENT,
    };
    unsafe { *mhz = value };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetSupportedMemoryClocks(
    device: Device,
    count: *mut u32,
    mhz: *mut u32,
) -> Return {
    check!(device);
    unsafe { write_list(&[number("mem_mhz", 1215) as u32], count, mhz) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetSupportedGraphicsClocks(
    device: Device,
    mem_mhz: u32,
    count: *mut u32,
    mhz: *mut u32,
) -> Return {
    check!(device);
    if u64::from(mem_mhz) != number("mem_mhz", 1215) {
        return ERROR_INVALID_ARGUMENT;
    }
    unsafe { write_list(&graphics_mhz(), count, mhz) }
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceSetGpuLockedClocks(device: Device, min: u32, max: u32) -> Return {
    check!(device);
    if config("lock").as_deref() == Some("no_permission") {
        return ERROR_NO_PERMISSION;
    }
    let levels = graphics_mhz();
    if min > max || !levels.contains(&min) || !levels.contains(&max) {
        return ERROR_INVALID_ARGUMENT;
    }
    record(&format!("lock {min} {max}"));
    match fs::write(dir().join("locked"), format!("{min} {max}\n")) {
        Ok(()) => SUCCESS,
        Err(_) => ERROR_INVALID_ARGUMENT,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceResetGpuLockedClocks(device: Device) -> Return {
    check!(device);
    if config("lock").as_deref() == Some("no_permission") {
        return ERROR_NO_PERMISSION;
    }
    record("reset");
    let _ = fs::remove_file(dir().join("locked"));
    SUCCESS
}
