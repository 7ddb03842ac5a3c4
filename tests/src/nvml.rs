//! A fake NVIDIA GPU for the NVML board's tests: the fake
//! `libnvidia-ml.so.1` that `build.rs` compiles from `fake-nvml/fake_nvml.rs`,
//! and the directory that configures it and records what was locked (see
//! that file's doc for the keys). Like a real driver's, its state outlives
//! the process that set it, so a test sees what a killed run left.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

/// The fake library.
pub const LIB: &str = env!("FAKE_NVML_LIB");

/// Graphics clocks of the default fake GPU, MHz as NVML lists them
/// (descending): 100 levels 15 MHz apart, as a data-centre GPU's.
pub fn graphics_mhz() -> Vec<u32> {
    (0..100).rev().map(|i| 495 + 15 * i).collect()
}

/// One fake GPU.
pub struct FakeGpu {
    dir: TempDir,
}

impl FakeGpu {
    /// A GPU (`NVIDIA Fake H100`, 100 graphics clocks, 60 W idle plus
    /// 100 mW per MHz) with `extra` `key=value` lines added to its config.
    pub fn new(extra: &str) -> FakeGpu {
        let dir = tempfile::tempdir().expect("temp dir");
        let levels: Vec<String> = graphics_mhz().iter().map(ToString::to_string).collect();
        let config = format!(
            "name=NVIDIA Fake H100\nuuid=GPU-fake-0001\nmem_mhz=2619\ngraphics_mhz={}\nidle_mw=60000\nmw_per_mhz=100\n{extra}\n",
            levels.join(",")
        );
        std::fs::write(dir.path().join("config"), config).expect("config");
        FakeGpu { dir }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `cmd` pointed at this GPU through `ECOEDGE_NVML_LIB`.
    pub fn command<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("ECOEDGE_NVML_LIB", LIB)
            .env("FAKE_NVML_DIR", self.dir.path())
    }

    /// The locked graphics clocks now (min, max MHz), if locked.
    pub fn locked(&self) -> Option<(u32, u32)> {
        let text = std::fs::read_to_string(self.dir.path().join("locked")).ok()?;
        let mut it = text.split_whitespace().map(|v| v.parse().ok());
        Some((it.next()??, it.next()??))
    }

    /// Every lock and reset call so far, in order (`lock MIN MAX`, `reset`).
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .map(|t| t.lines().map(String::from).collect())
            .unwrap_or_default()
    }

    /// Sets a lock as another process would have.
    pub fn lock(&self, mhz: u32) {
        std::fs::write(self.dir.path().join("locked"), format!("{mhz} {mhz}\n")).expect("lock");
    }
}
