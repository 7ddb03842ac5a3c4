//! Fuzz harnesses: one function per parser of outside input, taking the
//! fuzzer's bytes. The cargo-fuzz targets (`fuzz/fuzz_targets/`, nightly) call
//! them, and so does the corpus replay (`tests/tests/fuzz_corpus.rs`, stable),
//! which runs every committed corpus and regression input through them in
//! `cargo test`.
//!
//! Each harness asserts properties beyond "does not panic" where they are
//! cheap: what parses prints back to the same value, tensors hold the bytes
//! their shape needs, levels are ascending, distinct and within the limits.
//!
//! | harness | parser |
//! |---|---|
//! | [`workload_spec`] | `--workload` ([`Workload::parse`]) |
//! | [`duration`] | durations ([`parse_duration`]) |
//! | [`optimizer`] | `--optimizer` names and `fixed:` configs ([`by_name`]), `--knobs` ([`KnobSet`]) |
//! | [`meter_spec`] | `--meter i2c:...` ([`MeterSpec::parse`]) |
//! | [`trace_file`] | `file:` trace files ([`trace_arrivals`]) |
//! | [`profile`] | device profile CSVs ([`Profile::parse`]) |
//! | [`sysfs`] | the board's sysfs files and the state store, on a fake Xavier NX |
//! | [`kserve`] | KServe v2 inference requests ([`parse_infer`]) |
//! | [`onnx`] | ONNX model files ([`TractEngine::load`]) under a memory cap |

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use ecoedge_bsp_jetson::emc::parse_rates;
use ecoedge_bsp_jetson::{
    CpuFreq, EmcFreq, GpuFreq, MeterSpec, PowerMonitor, StateDir, Sysfs, detect, report,
};
use ecoedge_core::board::FrequencyKnob;
use ecoedge_core::optimizer::{NAMES, Optimizer, by_name};
use ecoedge_core::space::{Dimension, Knob, MAX_LEVELS, Space};
use ecoedge_core::time::Instant;
use ecoedge_runner::inference::tensor::elements;
use ecoedge_runner::inference::{
    DataType, Engine, PlanMode, TensorSpec, TractEngine, TractOptions,
};
use ecoedge_runner::knobs::KnobSet;
use ecoedge_runner::serve::kserve::parse_infer;
use ecoedge_runner::sim::model::DeviceModel;
use ecoedge_runner::sim::profile::{
    LATENCY_RANGE_S, MAX_POWER_W, MAX_PROFILE_BATCH, Profile, write_profile,
};
use ecoedge_runner::units::{format_duration, parse_duration};
use ecoedge_runner::workload::{MAX_TRACE_S, Workload, trace_arrivals};

use crate::sysfs::{FakeBoard, XAVIER_NX_INA3221};

/// The fuzzer's bytes as text; parsers of text get nothing else (the files
/// they read are read as UTF-8 and refused otherwise).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Asserts `values` ascend strictly.
fn assert_ascending(what: &str, values: &[u32]) {
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "{what}: not ascending and distinct: {values:?}"
    );
}

/// `--workload`: a spec that parses prints back to a spec that parses to
/// the same workload, and (but for `file:`, which reads a path) gives a
/// non-decreasing arrival stream. Errors name the spec.
pub fn workload_spec(data: &[u8]) {
    let Some(spec) = text(data) else { return };
    let w = match Workload::parse(spec) {
        Ok(w) => w,
        Err(e) => {
            let e = e.to_string();
            assert!(e.starts_with("workload `"), "{spec:?}: {e}");
            return;
        }
    };
    let printed = w.to_string();
    let again = Workload::parse(&printed)
        .unwrap_or_else(|e| panic!("{spec:?} printed as {printed:?}, which fails: {e}"));
    assert_eq!(again, w, "{spec:?} printed as {printed:?}");
    if matches!(w, Workload::File(_)) {
        return;
    }
    let arrivals = w
        .arrivals(1)
        .unwrap_or_else(|e| panic!("{spec:?} parses but gives no arrivals: {e}"));
    let times: Vec<u64> = arrivals.take(256).map(Instant::as_micros).collect();
    assert!(
        times.windows(2).all(|t| t[0] <= t[1]),
        "{spec:?}: arrivals go back in time"
    );
}

/// Durations: a duration that parses prints back to the same duration.
pub fn duration(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(d) = parse_duration(s) {
        let printed = format_duration(d);
        assert_eq!(
            parse_duration(&printed),
            Ok(d),
            "{s:?} printed as {printed:?}"
        );
    }
}

/// The spaces optimizer names are parsed against: the Xavier NX's CPU, GPU
/// and batch sizes 1..=16 (the paper's), and a board without a GPU knob.
fn optimizer_spaces() -> [Space; 2] {
    use ecoedge_runner::sim::model::{XAVIER_NX_CPU_KHZ, XAVIER_NX_GPU_HZ};
    let cpu = Dimension::new(Knob::Cpu, &XAVIER_NX_CPU_KHZ).expect("cpu levels");
    let gpu = Dimension::new(Knob::Gpu, &XAVIER_NX_GPU_HZ).expect("gpu levels");
    let batch = Dimension::batch(16).expect("batch sizes");
    [
        Space::new(&[cpu.clone(), gpu, batch.clone()]).expect("space"),
        Space::new(&[cpu, batch]).expect("space"),
    ]
}

/// `--optimizer` and `--knobs`: a name that gives an optimizer is one of
/// [`NAMES`] (placeholders filled in), and its first config lies in the
/// space; a knob set that parses prints back to the same set.
pub fn optimizer(data: &[u8]) {
    let Some(name) = text(data) else { return };
    for space in optimizer_spaces() {
        match by_name(name, &space, 7) {
            Ok(mut o) => {
                let known = NAMES.contains(&name)
                    || name.starts_with("fixed:")
                    || name.starts_with("dvfs:");
                assert!(known, "{name:?} gives an optimizer but is not in NAMES");
                let start = o.start(&space);
                assert_eq!(space.check(&start), Ok(()), "{name:?}: start {start:?}");
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    if let Ok(knobs) = name.parse::<KnobSet>() {
        let printed = knobs.to_string();
        assert_eq!(
            printed.parse::<KnobSet>(),
            Ok(knobs),
            "{name:?} as {printed:?}"
        );
    }
}

/// `--meter i2c:/dev/i2c-N@0xADDR[:CHANNEL]`: a spec that parses prints back
/// to the same spec.
pub fn meter_spec(data: &[u8]) {
    let Some(s) = text(data) else { return };
    match MeterSpec::parse(s) {
        Ok(spec) => {
            let printed = spec.to_string();
            assert_eq!(MeterSpec::parse(&printed), Ok(spec), "{s:?} as {printed:?}");
            assert!(spec.device_path().starts_with("/dev"));
            assert!(!spec.client_name().is_empty());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Arrivals a harness takes from a stream at most.
const ARRIVALS_TAKEN: usize = 10_000;

/// `file:` trace files: a trace that parses replays non-decreasing times no
/// later than a second past [`MAX_TRACE_S`]; errors name the file and line.
pub fn trace_file(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let origin = Path::new("trace.csv");
    match trace_arrivals(origin, t) {
        Ok(arrivals) => {
            let last = ((MAX_TRACE_S + 1.0) * 1e6) as u64;
            let mut prev = 0;
            for (i, at) in arrivals
                .take(ARRIVALS_TAKEN)
                .map(Instant::as_micros)
                .enumerate()
            {
                assert!(at >= prev, "arrival {i} at {at} us, before {prev} us");
                assert!(at <= last, "arrival {i} at {at} us, past the longest trace");
                prev = at;
            }
        }
        Err(e) => {
            let e = e.to_string();
            assert!(e.starts_with("trace.csv"), "{e}");
        }
    }
}

/// Configs of a profile whose values the harness checks at most (a corner
/// of the table and a stride through the rest).
const PROFILE_SAMPLES: usize = 4096;

/// Device profile CSVs: a profile that parses has ascending distinct
/// levels, at most [`MAX_LEVELS`] of each, batches up to
/// [`MAX_PROFILE_BATCH`], every value within the documented limits; a small
/// one written back out parses to the same table.
pub fn profile(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let p = match Profile::parse(t) {
        Ok(p) => p,
        Err(e) => {
            let e = e.to_string();
            let line = e.split(':').next().unwrap_or("");
            assert!(line.parse::<usize>().is_ok(), "error without a line: {e}");
            return;
        }
    };
    let (cpu, gpu, batch) = (p.cpu_levels_khz(), p.gpu_levels_hz(), p.max_batch());
    for (what, levels) in [("cpu", cpu), ("gpu", gpu)] {
        assert!(
            !levels.is_empty() && levels.len() <= MAX_LEVELS,
            "{what}: {levels:?}"
        );
        assert_ascending(what, levels);
    }
    assert!(
        (1..=MAX_PROFILE_BATCH).contains(&batch),
        "max batch {batch}"
    );
    let size = cpu.len() * gpu.len() * batch as usize;
    let stride = size.div_ceil(PROFILE_SAMPLES).max(1);
    // Interpolated values are weighted means of measured ones: within the
    // limits, up to rounding.
    let within = |v: f64, (lo, hi): (f64, f64)| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    for k in (0..size).step_by(stride) {
        let (c, rest) = (
            k / (gpu.len() * batch as usize),
            k % (gpu.len() * batch as usize),
        );
        let (g, b) = (rest / batch as usize, rest % batch as usize + 1);
        let at = ecoedge_runner::sim::model::Clocks {
            cpu_khz: cpu[c],
            gpu_hz: gpu[g],
            emc_hz: 0,
        };
        let b = b as u32;
        let t = p.service_time_s(at, b);
        assert!(
            within(t, LATENCY_RANGE_S),
            "latency {t} s at {at:?} batch {b}"
        );
        for w in [p.busy_power_w(at, b), p.idle_power_w(at)] {
            assert!(
                within(w, (0.0, MAX_POWER_W)),
                "power {w} W at {at:?} batch {b}"
            );
        }
    }
    if size <= 512 {
        let again = Profile::parse(&write_profile(&p)).expect("a written profile parses");
        assert_eq!(again.cpu_levels_khz(), cpu);
        assert_eq!(again.gpu_levels_hz(), gpu);
        assert_eq!(again.max_batch(), batch);
        assert_eq!(write_profile(&again), write_profile(&p));
    }
}

/// What the [`sysfs`] harness reads after writing the fuzzer's bytes to a
/// file of the fake board.
#[derive(Debug, Clone, Copy)]
enum SysfsRead {
    Cpu,
    Gpu,
    Emc,
    Identity,
    Power,
    Store,
}

const NX_POLICY0: &str = "/sys/devices/system/cpu/cpufreq/policy0";
const NX_POLICY2: &str = "/sys/devices/system/cpu/cpufreq/policy2";
const NX_GPU: &str = "/sys/devices/gpu.0/devfreq/17000000.gv11b";
const NX_EMC: &str = "/sys/kernel/debug/bpmp/debug/clk/emc";
const STORE: &str = "/run/ecoedge/store.json";

/// The files of the fake Xavier NX (JetPack 5) the harness writes, and what
/// it reads after: the first byte of the input picks one.
fn sysfs_files() -> Vec<(String, SysfsRead)> {
    use SysfsRead::*;
    let hwmon = format!("{XAVIER_NX_INA3221}/hwmon/hwmon5");
    let mut files = vec![
        (format!("{NX_POLICY0}/scaling_available_frequencies"), Cpu),
        (format!("{NX_POLICY2}/scaling_available_frequencies"), Cpu),
        (format!("{NX_POLICY0}/scaling_available_governors"), Cpu),
        (format!("{NX_POLICY0}/related_cpus"), Cpu),
        (format!("{NX_POLICY0}/scaling_cur_freq"), Cpu),
        (format!("{NX_POLICY0}/scaling_min_freq"), Cpu),
        (format!("{NX_POLICY0}/cpuinfo_max_freq"), Cpu),
        (format!("{NX_GPU}/available_frequencies"), Gpu),
        (format!("{NX_GPU}/available_governors"), Gpu),
        (format!("{NX_GPU}/cur_freq"), Gpu),
        (format!("{NX_GPU}/max_freq"), Gpu),
        (
            "/sys/kernel/debug/bpmp/debug/emc/possible_rates".to_string(),
            Emc,
        ),
        (format!("{NX_EMC}/min_rate"), Emc),
        (format!("{NX_EMC}/max_rate"), Emc),
        (format!("{NX_EMC}/rate"), Emc),
        (format!("{NX_EMC}/mrq_rate_locked"), Emc),
        ("/sys/kernel/nvpmodel_emc_cap/emc_iso_cap".to_string(), Emc),
        ("/sys/devices/soc0/soc_id".to_string(), Identity),
        ("/proc/device-tree/model".to_string(), Identity),
        (format!("{hwmon}/in1_label"), Power),
        (format!("{hwmon}/in1_input"), Power),
        (format!("{hwmon}/curr1_input"), Power),
        (format!("{hwmon}/update_interval"), Power),
    ];
    files.push((STORE.to_string(), Store));
    files
}

/// Inputs of the [`sysfs`] harness that write each file back as the fake
/// board has it: the corpus's seeds.
pub fn sysfs_seeds() -> Vec<Vec<u8>> {
    let fixture = SysfsFixture::new();
    (0u8..)
        .zip(&fixture.files)
        .map(|(pick, (_, original, _))| [&[pick][..], original].concat())
        .collect()
}

/// The fake board of the [`sysfs`] harness, made once per thread, with each
/// file's original content to put back after every input.
struct SysfsFixture {
    board: FakeBoard,
    files: Vec<(PathBuf, Vec<u8>, SysfsRead)>,
}

impl SysfsFixture {
    fn new() -> Self {
        let board = FakeBoard::xavier_nx_jp5();
        board.file(STORE, "{\"pid\":1,\"clocks\":[],\"emc\":null}");
        let files = sysfs_files()
            .into_iter()
            .map(|(abs, read)| {
                let path = board.path(&abs);
                let original = std::fs::read(&path).unwrap_or_else(|e| panic!("{abs}: {e}"));
                (path, original, read)
            })
            .collect();
        SysfsFixture { board, files }
    }
}

thread_local! {
    static SYSFS: RefCell<Option<SysfsFixture>> = const { RefCell::new(None) };
}

/// Checks a clock knob opened from the fake board: levels ascending and
/// distinct, and a search dimension exactly when there are at most
/// [`MAX_LEVELS`].
fn check_knob<K: FrequencyKnob>(what: &str, knob: &K) {
    let levels = knob.levels();
    assert!(!levels.is_empty(), "{what}: no levels");
    assert_ascending(what, levels);
    assert_eq!(
        knob.dimension().is_ok(),
        levels.len() <= MAX_LEVELS,
        "{what}: {} levels",
        levels.len()
    );
}

/// The board's files: the first byte picks a file of a fake Xavier NX, the
/// rest becomes its content, then the readers of that file run (the knob,
/// detection, the power sensor, the state store) and `ecoedge board`'s
/// report, which reads them all. Knob levels must come out ascending and
/// distinct; a store that parses must serialise back to itself. The file is
/// put back afterwards, so every input runs on the same tree. Every input is
/// also parsed whole as a `possible_rates` list (the EMC's rate parser, the one
/// that takes text).
pub fn sysfs(data: &[u8]) {
    if let Some(t) = text(data)
        && let Ok(hz) = parse_rates(Path::new("possible_rates"), t)
    {
        assert!(!hz.is_empty());
        assert_ascending("possible_rates", &hz);
    }
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    SYSFS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let fixture = cell.get_or_insert_with(SysfsFixture::new);
        let (path, original, read) = &fixture.files[usize::from(pick) % fixture.files.len()];
        std::fs::write(path, content).expect("write the fake board's file");
        let root = fixture.board.root();
        let sysfs = Sysfs::new(root);
        match read {
            SysfsRead::Cpu => {
                if let Ok(cpu) = CpuFreq::open(&sysfs) {
                    check_knob("cpu", &cpu);
                    for p in cpu.policies() {
                        assert_ascending("policy", &p.levels_khz);
                    }
                }
            }
            SysfsRead::Gpu => {
                if let Ok(gpu) = GpuFreq::open(&sysfs) {
                    check_knob("gpu", &gpu);
                }
            }
            SysfsRead::Emc => {
                if let Ok(mut emc) = EmcFreq::open(&sysfs) {
                    check_knob("emc", &emc);
                    let _ = emc.locked();
                    let _ = emc.read_back();
                }
            }
            SysfsRead::Identity => {
                let _ = detect(&sysfs);
            }
            SysfsRead::Power => {
                if let Ok(monitor) = PowerMonitor::discover(&sysfs) {
                    let _ = monitor.read_all();
                    if let Ok(mut rail) = monitor.module_input_power() {
                        use ecoedge_bsp_jetson::sampler::PowerSource;
                        let _ = rail.power_w();
                    }
                }
            }
            SysfsRead::Store => {
                let state = StateDir::new(fixture.board.path("/run/ecoedge"));
                if let Ok(Some(stored)) = state.read_store() {
                    let json = serde_json::to_string(&stored).expect("a store serialises");
                    let again: ecoedge_bsp_jetson::Stored =
                        serde_json::from_str(&json).expect("a serialised store parses");
                    assert_eq!(again, stored);
                }
            }
        }
        let _ = report(root);
        std::fs::write(path, original).expect("put the fake board's file back");
    });
}

/// A model's tensors, as the KServe harness parses requests against them:
/// `(inputs, outputs)`.
type Signature = (Vec<TensorSpec>, Vec<TensorSpec>);

fn spec(name: &str, datatype: DataType, shape: &[usize]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        datatype,
        shape: shape.to_vec(),
    }
}

/// The models requests are checked against: the generated MLP's (one FP32
/// feature vector in, one out), a two-input one (FP32 features, INT64 token
/// ids) and one of the narrower types (UINT8 pixels, FP16, BOOL).
fn kserve_models() -> [Signature; 3] {
    [
        (
            vec![spec("input", DataType::F32, &[64])],
            vec![spec("output", DataType::F32, &[4])],
        ),
        (
            vec![
                spec("x", DataType::F32, &[2]),
                spec("ids", DataType::I64, &[3]),
            ],
            vec![
                spec("y", DataType::F32, &[1]),
                spec("z", DataType::I64, &[]),
            ],
        ),
        (
            vec![
                spec("pixels", DataType::U8, &[2, 2]),
                spec("h", DataType::F16, &[1]),
                spec("flag", DataType::Bool, &[]),
            ],
            vec![spec("out", DataType::F16, &[2])],
        ),
    ]
}

/// KServe v2 inference requests. Input layout: byte 0 picks the model
/// (low two bits) and whether the `Inference-Header-Content-Length` header
/// is sent (bit 2); if it is, bytes 1-2 are its value (little-endian); the
/// rest is the body. A request that parses holds one tensor per model
/// input, in the model's order, each of the model's type and per-sample
/// shape with the request's sample count, and exactly
/// product(shape) x element size bytes; its outputs are the model's.
pub fn kserve(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (header_length, body) = if flags & 4 != 0 {
        let Some((len, body)) = rest.split_first_chunk::<2>() else {
            return;
        };
        (Some(usize::from(u16::from_le_bytes(*len))), body)
    } else {
        (None, rest)
    };
    let models = kserve_models();
    let (inputs, outputs) = &models[usize::from(flags & 3) % models.len()];
    let Ok(req) = parse_infer(body, header_length, inputs, outputs) else {
        return;
    };
    assert_eq!(req.inputs.len(), inputs.len());
    assert!(req.samples >= 1);
    for (t, s) in req.inputs.iter().zip(inputs) {
        assert_eq!(t.datatype, s.datatype, "{}", s.name);
        assert_eq!(t.shape[0], req.samples, "{}", s.name);
        assert_eq!(t.shape[1..], s.shape[..], "{}", s.name);
        let bytes = elements(&t.shape).and_then(|n| n.checked_mul(t.datatype.size()));
        assert_eq!(Some(t.data.len()), bytes, "{}: shape {:?}", s.name, t.shape);
    }
    assert!(req.outputs.iter().all(|&(i, _)| i < outputs.len()));
}

/// Memory the ONNX harness lets a model's plans need: a quarter of the RSS
/// limit the fuzzer runs under (`-rss_limit_mb=2048`), since the check is a
/// floor (tract's buffers, the weights and the fuzzer come on top).
pub const ONNX_MEMORY_LIMIT: u64 = 512 << 20;

thread_local! {
    static ONNX_DIR: tempfile::TempDir = tempfile::tempdir().expect("temporary directory");
}

/// ONNX model files, loaded as `--model PATH` loads them (the bytes written
/// to a file, then [`TractEngine::load`]) with batches up to 2, one
/// symbolic plan and a memory cap of [`ONNX_MEMORY_LIMIT`]. A model that
/// loads has inputs and outputs, and runs its synthetic batches or fails
/// with an error (never a panic); a model that does not fit the cap is
/// refused before anything large is allocated.
pub fn onnx(data: &[u8]) {
    ONNX_DIR.with(|dir| {
        let path = dir.path().join("model.onnx");
        std::fs::write(&path, data).expect("write the model");
        let options = TractOptions {
            max_batch: 2,
            plans: PlanMode::Symbolic,
            threads: 1,
            seed: 1,
            memory_limit: Some(ONNX_MEMORY_LIMIT),
        };
        // The engine turns tract's panics into errors (catch_unwind), but
        // libFuzzer's panic hook aborts before any unwinding: a plain hook
        // while the engine runs, so that only a panic the engine lets out
        // (which the fuzz target turns into an abort) counts as a crash.
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
        let result = std::panic::catch_unwind(|| {
            let Ok(mut engine) = TractEngine::load(&path, &options) else {
                return;
            };
            let sig = engine.signature().clone();
            assert!(!sig.inputs.is_empty());
            assert_eq!(sig.inputs.len(), engine.inputs().len());
            for b in [1, 2] {
                let _ = engine.run_synthetic(b);
            }
        });
        std::panic::set_hook(fuzzer_hook);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
}
