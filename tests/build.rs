//! Compiles the fake `libnvidia-ml.so` (`fake-nvml/fake_nvml.rs`, std only)
//! with the same `rustc`, for the NVML board's tests: see
//! [`ecoedge_tests::nvml`](src/nvml.rs).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "fake-nvml/fake_nvml.rs";
    println!("cargo::rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let lib = out.join("libnvidia-ml.so.1");
    let rustc = std::env::var_os("RUSTC").expect("cargo sets RUSTC");
    let status = Command::new(rustc)
        .args(["--edition", "2024", "--crate-type", "cdylib", "-O"])
        .args(["--crate-name", "fake_nvml", source, "-o"])
        .arg(&lib)
        .status()
        .expect("running rustc for the fake NVML library");
    assert!(status.success(), "compiling {source} failed");
    println!("cargo::rustc-env=FAKE_NVML_LIB={}", lib.display());
}
