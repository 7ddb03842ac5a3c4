//! The soak, in seconds: a simulated day of `trace:twitter` with EcoGD and
//! streamed logs runs in the memory an hour does. Alone in its test binary,
//! because it reads the peak memory of this process's children.

use std::path::Path;
use std::process::Command;

use ecoedge_tests::cli::succeeded;

/// Runs `sim` for `duration` with its logs in `dir`; the summary.
fn sim(duration: &str, dir: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args(["sim", "--model", "resnet50", "--workload", "trace:twitter"])
        .args([
            "--optimizer",
            "ecogd",
            "--duration",
            duration,
            "--json",
            "--log-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    succeeded(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The largest resident set of any child waited for so far, KiB.
fn peak_child_rss_kib() -> i64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    usage.ru_maxrss
}

#[test]
fn a_simulated_day_streams_its_logs_in_the_memory_of_an_hour() {
    let tmp = tempfile::tempdir().unwrap();
    sim("1h", &tmp.path().join("hour"));
    let hour = peak_child_rss_kib();
    let day = sim("24h", &tmp.path().join("day"));
    let growth_kib = peak_child_rss_kib() - hour;
    assert!(
        growth_kib < 5 * 1024,
        "a day took {growth_kib} KiB more than an hour"
    );
    let r = &day["requests"];
    let n = |k: &str| r[k].as_u64().unwrap();
    assert!(n("arrived") > 500_000, "{r}");
    assert_eq!(
        n("arrived"),
        n("served") + n("refused") + n("pending"),
        "{r}"
    );
    // The simulator keeps the paper's full-batch rule to the end: at most
    // one partial batch is left.
    assert!(n("pending") < 16, "{r}");
    let rows = std::fs::read_to_string(tmp.path().join("day/requests.csv"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(
        rows,
        n("served") + 1,
        "every served request in requests.csv"
    );
}
