//! Replays the fuzz corpora: every input committed under `fuzz/corpus/<target>/`
//! and `fuzz/regressions/<target>/` runs through the harness its target
//! fuzzes (`ecoedge_tests::fuzzing`), on stable, in `cargo test`. A target
//! whose corpus is missing or empty fails, so the replay cannot pass by
//! finding nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ecoedge_tests::fuzzing;

/// Every cargo-fuzz target (`fuzz/fuzz_targets/<name>.rs`): each has a
/// replay test of the same name below.
const TARGETS: [&str; 9] = [
    "workload_spec",
    "duration",
    "optimizer",
    "meter_spec",
    "trace_file",
    "profile",
    "sysfs",
    "kserve",
    "onnx",
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, harness: fn(&[u8])) {
    let corpus = inputs(&fuzz_dir().join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target}/ is missing or empty: run the fuzzer and commit its minimised corpus"
    );
    let regressions = inputs(&fuzz_dir().join("regressions").join(target));
    let started = Instant::now();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("read a corpus input");
        // A panic names the input, so it can be run alone with
        // `cargo fuzz run <target> <file>`.
        eprintln!("{}", path.display());
        harness(&data);
    }
    eprintln!(
        "{target}: {} corpus and {} regression inputs in {:.2} s",
        corpus.len(),
        regressions.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    for target in TARGETS {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        assert!(file.is_file(), "{} is missing", file.display());
    }
    let files = inputs(&fuzz_dir().join("fuzz_targets"));
    assert_eq!(
        files.len(),
        TARGETS.len(),
        "a fuzz target without a replay: {files:?}"
    );
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name), fuzzing::$name);
            }
        )*
    };
}

replay_tests!(
    workload_spec,
    duration,
    optimizer,
    meter_spec,
    trace_file,
    profile,
    sysfs,
    kserve,
    onnx,
);
