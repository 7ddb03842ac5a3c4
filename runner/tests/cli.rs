//! End-to-end tests of the `ecoedge` binary: `sim`, `profile` and `board` as a user
//! runs them, bad input included.

use std::path::Path;
use std::process::{Command, Output};

use ecoedge_core::optimizer::NAMES;
use ecoedge_tests::sysfs::FakeBoard;
use serde_json::Value;

fn ecoedge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args(args)
        .output()
        .unwrap()
}

fn json(args: &[&str]) -> Value {
    let out = ecoedge(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Exits non-zero with exactly one `error:` line naming `what`, and no panic.
fn fails_clearly(args: &[&str], what: &str) {
    let out = ecoedge(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines[0].starts_with("error"), "{args:?}: {err}");
    assert!(err.contains(what), "{args:?}: expected `{what}` in: {err}");
}

#[test]
fn sim_json_is_byte_identical_for_a_seed() {
    let args = [
        "sim",
        "--workload",
        "trace:twitter",
        "--duration",
        "20m",
        "--seed",
        "7",
        "--json",
    ];
    let a = ecoedge(&args);
    let b = ecoedge(&args);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let mut other = args;
    other[6] = "8";
    assert_ne!(a.stdout, ecoedge(&other).stdout);
}

#[test]
fn sim_summary_has_the_cli_keys() {
    let v = json(&["sim", "--windows", "30", "--json"]);
    for key in [
        "board",
        "model",
        "workload",
        "optimizer",
        "requests",
        "latency_s",
        "energy_j_per_request",
        "cost",
        "windows",
        "final_config",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["board"], "sim");
    assert_eq!(v["windows"], 30);
    let r = &v["requests"];
    let total = r["served"].as_u64().unwrap()
        + r["refused"].as_u64().unwrap()
        + r["pending"].as_u64().unwrap();
    assert_eq!(total, r["arrived"].as_u64().unwrap());
    assert_eq!(v["energy_j_per_request"]["scope"], "total");
    assert!(v["final_config"]["cpu_khz"].as_u64().unwrap() >= 115_200);
}

#[test]
fn sim_runs_every_optimizer_on_every_workload() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    std::fs::write(&trace, "start_s,count\n0,5\n1,40\n2,3\n3,20\n").unwrap();
    let file = format!("file:{}", trace.display());
    let workloads = [
        "fixed:50ms",
        "fixed:90ms",
        "bursty:10@500ms",
        "bursty:10@900ms",
        "poisson:15",
        "trace:bellevue",
        "trace:twitter",
        "trace:azure",
        &file,
    ];
    // Every name the core knows, its placeholders filled in: a new optimizer is
    // covered without touching this list.
    let optimizers: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|n| !n.contains(char::is_uppercase))
        .chain(["dvfs:16", "fixed:3,4,8"])
        .collect();
    for w in workloads {
        for &o in &optimizers {
            let v = json(&[
                "sim",
                "--workload",
                w,
                "--optimizer",
                o,
                "--windows",
                "12",
                "--window",
                "32",
                "--warmup",
                "8",
                "--json",
            ]);
            assert_eq!(v["optimizer"], o);
            assert!(
                v["requests"]["served"].as_u64().unwrap() > 0,
                "{w} {o}: {v}"
            );
        }
    }
    let v = json(&["sim", "--optimizer", "oracle", "--windows", "14", "--json"]);
    assert!(v["cost"]["mean"].as_f64().unwrap() < 1.0);
}

#[test]
fn log_dir_holds_request_and_window_logs() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let v = json(&[
        "sim",
        "--windows",
        "5",
        "--log-dir",
        logs.to_str().unwrap(),
        "--json",
    ]);
    let requests = std::fs::read_to_string(logs.join("requests.csv")).unwrap();
    let windows = std::fs::read_to_string(logs.join("windows.csv")).unwrap();
    assert!(requests.starts_with("arrival_s,done_s,latency_s,energy_j,window\n"));
    assert_eq!(
        requests.lines().count() as u64 - 1,
        v["requests"]["served"].as_u64().unwrap()
    );
    assert!(windows.starts_with("window,end_s,cpu_khz,gpu_hz,batch,"));
    assert_eq!(windows.lines().count(), 6);
    // Each window's service: a batch time and the board's power, running and idle.
    let header = windows.lines().next().unwrap();
    assert!(header.ends_with(",batch_fixed_s,batch_per_request_s,active_w,idle_w"));
    for row in windows.lines().skip(1) {
        let cells: Vec<f64> = row
            .rsplit(',')
            .take(4)
            .map(|c| c.parse().unwrap())
            .collect();
        let (idle_w, active_w, fixed_s) = (cells[0], cells[1], cells[3]);
        assert!(fixed_s > 0.0 && active_w > idle_w && idle_w > 0.0, "{row}");
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(logs.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary, v);
}

#[test]
fn a_written_profile_simulates_like_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nx.csv");
    let out = ecoedge(&[
        "profile",
        "--model",
        "bert-tiny",
        "--out",
        p.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let run = |device: &str| {
        let mut v = json(&[
            "sim",
            "--device",
            device,
            "--model",
            "bert-tiny",
            "--windows",
            "20",
            "--json",
        ]);
        v["device"] = Value::Null;
        v
    };
    assert_eq!(run(p.to_str().unwrap()), run("xavier-nx"));
}

#[test]
fn bad_input_gets_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_trace = dir.path().join("bad.csv");
    std::fs::write(&bad_trace, "0.5\n0.7\noops\n").unwrap();
    let bad_profile = dir.path().join("bad-profile.csv");
    std::fs::write(
        &bad_profile,
        "cpu_khz,gpu_hz,batch,latency_s,busy_power_w,idle_power_w\n1,2,3\n",
    )
    .unwrap();
    let trace = format!("file:{}", bad_trace.display());
    fails_clearly(
        &["sim", "--device", "jetson-tx9"],
        "unknown device `jetson-tx9`",
    );
    fails_clearly(
        &["sim", "--device", bad_profile.to_str().unwrap()],
        "bad-profile.csv:2: expected 6 fields",
    );
    fails_clearly(&["sim", "--model", "gpt2"], "unknown model `gpt2`");
    fails_clearly(&["sim", "--workload", "zipf:3"], "workload `zipf:3`");
    fails_clearly(
        &["sim", "--workload", &trace],
        "bad.csv:3: `oops` is not a time",
    );
    fails_clearly(
        &["sim", "--workload", "file:/nonexistent.csv"],
        "cannot read trace file",
    );
    fails_clearly(&["sim", "--optimizer", "sgd"], "or oracle in simulation");
    fails_clearly(&["sim", "--optimizer", "fixed:99,0,1"], "--optimizer");
    fails_clearly(&["sim", "--duration", "3 fortnights"], "duration");
    fails_clearly(&["sim", "--alpha", "2"], "--alpha");
    fails_clearly(&["sim", "--window", "10", "--warmup", "10"], "warm-up");
    fails_clearly(&["sim", "--windows", "0"], "--windows");
    fails_clearly(&["sim", "--knobs", "cpu,fan"], "unknown knob `fan`");
}

#[test]
fn sim_tunes_the_memory_clock_only_when_asked() {
    let three = json(&["sim", "--model", "bert-tiny", "--windows", "40", "--json"]);
    assert!(three["final_config"].get("emc_hz").is_none(), "{three}");
    let dir = tempfile::tempdir().unwrap();
    let four = json(&[
        "sim",
        "--model",
        "bert-tiny",
        "--workload",
        "fixed:90ms",
        "--knobs",
        "cpu,gpu,batch,emc",
        "--windows",
        "120",
        "--log-dir",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    let emc = four["final_config"]["emc_hz"].as_u64().unwrap();
    assert!(emc < 1_600_000_000, "{four}");
    let windows = std::fs::read_to_string(dir.path().join("windows.csv")).unwrap();
    assert!(windows.starts_with("window,end_s,cpu_khz,gpu_hz,emc_hz,batch,"));
    // A profile is measured at one memory clock: it cannot tune it.
    let p = dir.path().join("nx.csv");
    assert!(
        ecoedge(&["profile", "--out", p.to_str().unwrap()])
            .status
            .success()
    );
    fails_clearly(
        &[
            "sim",
            "--device",
            p.to_str().unwrap(),
            "--knobs",
            "cpu,gpu,batch,emc",
        ],
        "no memory (EMC) levels",
    );
}

fn board_json(board: &FakeBoard) -> Value {
    json(&[
        "board",
        "--sysfs-root",
        board.root().to_str().unwrap(),
        "--json",
    ])
}

#[test]
fn board_reports_a_fake_xavier_nx() {
    for board in [FakeBoard::xavier_nx_jp4(), FakeBoard::xavier_nx_jp5()] {
        let v = board_json(&board);
        assert_eq!(v["board"], "xavier-nx");
        assert_eq!(v["cpu"]["levels_khz"].as_array().unwrap().len(), 25);
        assert_eq!(v["gpu"]["levels_hz"].as_array().unwrap().len(), 15);
        assert!(v["gpu"]["path"].as_str().unwrap().contains("gv11b"));
        let notes = v["notes"].as_array().unwrap();
        assert!(
            notes.iter().any(|n| n
                .as_str()
                .unwrap()
                .contains("with tract or --ep cpu it is pinned at its lowest level (114 MHz)")),
            "{notes:?}"
        );
        let rails = v["rails"].as_array().unwrap();
        assert!(
            rails
                .iter()
                .any(|r| r["label"] == "VDD_IN" && r["power_mw"].as_i64().unwrap() > 0)
        );
    }
    let v = board_json(&FakeBoard::orin_nx_jp6());
    assert_eq!(v["board"], "orin");
    let text = ecoedge(&[
        "board",
        "--sysfs-root",
        FakeBoard::nano().root().to_str().unwrap(),
    ]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.starts_with("board:  nano"), "{text}");
}

#[test]
fn board_on_a_machine_without_jetson_says_what_is_missing() {
    let empty = tempfile::tempdir().unwrap();
    let v = json(&[
        "board",
        "--sysfs-root",
        empty.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["board"], "unknown");
    assert!(v["notes"].as_array().unwrap().len() >= 3, "{v}");
    assert!(
        !Path::new(empty.path()).join("sys").exists(),
        "board only reads"
    );
}

#[test]
fn compare_reports_the_schema_tables_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cmp");
    let v = json(&[
        "compare",
        "--workload",
        "fixed:90ms",
        "--workload",
        "bursty:10@900ms",
        "--optimizers",
        "ecogd,ecogd:paper,grid,dvfs,oracle",
        "--repeats",
        "2",
        "--windows",
        "40",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    for key in [
        "device",
        "model",
        "alpha",
        "seed",
        "repeats",
        "results",
        "paired",
        "penalty_latency_s",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["seed"], 1000, "reported seeds are held out by default");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    for r in results {
        // A run that settled at once has no "during" phase: null, not zeros.
        let phases: &[&str] = if r["converge_window"].as_f64() == Some(0.0) {
            assert!(r["during"].is_null(), "{r}");
            &["after", "overall"]
        } else {
            &["during", "after", "overall"]
        };
        for phase in phases {
            for key in [
                "mean_cost",
                "p95_cost",
                "p99_cost",
                "mean_energy_j",
                "mean_latency_s",
                "p99_latency_s",
                "served",
                "refused",
                "unserved",
            ] {
                assert!(r[phase].get(key).is_some(), "{phase}.{key} missing in {r}");
            }
        }
        // Equal horizons: the arrivals of 40 windows for everyone; windows
        // cut short (EcoGD's abandoned probes) make more of them.
        let windows = r["windows"].as_u64().unwrap();
        assert!(r.get("converge_window").is_some() && windows >= 39, "{r}");
        assert!(
            r["regret"].as_f64().is_some(),
            "the oracle gives regrets: {r}"
        );
        for key in ["cpu_khz", "gpu_hz", "batch"] {
            assert!(r["final_config"].get(key).is_some());
        }
    }
    // The oracle is the floor: no optimizer beats it after convergence by more than noise.
    for w in ["fixed:90ms", "bursty:10@900ms"] {
        let cost = |o: &str| {
            results
                .iter()
                .find(|r| r["workload"] == w && r["optimizer"] == o)
                .unwrap()["after"]["mean_cost"]
                .as_f64()
                .unwrap()
        };
        for o in ["ecogd", "ecogd:paper", "grid", "dvfs"] {
            assert!(
                cost(o) > 0.95 * cost("oracle"),
                "{w}: {o} {} < oracle {}",
                cost(o),
                cost("oracle")
            );
        }
    }
    // Every run of a workload saw the same arrivals: served, refused and
    // unserved add up to the same number.
    for w in ["fixed:90ms", "bursty:10@900ms"] {
        let totals: Vec<u64> = results
            .iter()
            .filter(|r| r["workload"] == w)
            .map(|r| {
                let o = &r["overall"];
                ["served", "refused", "unserved"]
                    .iter()
                    .map(|k| o[k].as_u64().unwrap())
                    .sum()
            })
            .collect();
        assert!(totals.iter().all(|&t| t == totals[0]), "{w}: {totals:?}");
        let bound = v["baselines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["workload"] == w)
            .unwrap()["window_oracle_mean_cost"]
            .as_f64()
            .unwrap();
        assert!(bound > 0.0, "{w}: per-window oracle {bound}");
    }
    // EcoGD against grid and dvfs on two workloads; its own variant is no baseline.
    assert!(v["headline"]["pairs"].as_u64().unwrap() == 4);
    // Paired against every other optimizer, with an interval over 2 repeats.
    let paired = v["paired"].as_array().unwrap();
    assert_eq!(paired.len(), 8);
    for p in paired {
        let ci = p["mean_cost_pct"]["ci95"].as_array().unwrap();
        let mean = p["mean_cost_pct"]["mean"].as_f64().unwrap();
        let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
        assert!(lo <= mean && mean <= hi, "{p}");
        assert_eq!(p["repeats"], 2);
    }
    for f in [
        "tables.md",
        "results.json",
        "cost-fixed-90ms.svg",
        "time-fixed-90ms.svg",
        "phases-bursty-10at900ms.svg",
        "scatter-fixed-90ms.svg",
    ] {
        let text = std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.len() > 200, "{f} is nearly empty");
    }
    let svg = std::fs::read_to_string(out.join("cost-fixed-90ms.svg")).unwrap();
    assert!(
        svg.contains("ecogd") && svg.contains("window"),
        "legend and axis label"
    );
    let svg = std::fs::read_to_string(out.join("time-fixed-90ms.svg")).unwrap();
    assert!(
        svg.contains("ecogd") && svg.contains("hours") && svg.contains("arrivals/s"),
        "legend, time axis and the arrival panel"
    );
    for (f, size) in [
        ("cost-fixed-90ms.png", (1000, 520)),
        ("time-fixed-90ms.png", (1000, 680)),
        ("phases-bursty-10at900ms.png", (1000, 520)),
        ("scatter-fixed-90ms.png", (800, 560)),
    ] {
        let (width, height, rgb) = decode_png(&out.join(f));
        assert_eq!((width, height), size, "{f}");
        // Text and axes are near black; the series are coloured. A chart whose
        // text failed to render, or that is blank, has neither.
        let dark = rgb.chunks(3).filter(|p| p.iter().all(|&c| c < 60)).count();
        let coloured = rgb
            .chunks(3)
            .filter(|p| p.iter().max().unwrap() - p.iter().min().unwrap() > 100)
            .count();
        assert!(dark > 2000, "{f}: {dark} dark pixels");
        assert!(coloured > 500, "{f}: {coloured} coloured pixels");
    }
    fails_clearly(&["compare", "--suite", "nips"], "unknown suite `nips`");
    fails_clearly(
        &["compare", "--suite", "paper", "--optimizers", "ecogd,sgd"],
        "--optimizers",
    );
    fails_clearly(
        &["compare", "--workload", "fixed:50ms", "--repeats", "0"],
        "--repeats",
    );
    fails_clearly(
        &[
            "compare",
            "--workload",
            "fixed:50ms",
            "--penalty-latency",
            "0s",
        ],
        "--penalty-latency",
    );
    fails_clearly(
        &[
            "compare",
            "--workload",
            "fixed:50ms",
            "--optimizers",
            "grid+pattern",
        ],
        "--optimizers",
    );
}

#[test]
fn compare_ablation_lists_every_addition_and_baseline_variant() {
    let out = ecoedge(&[
        "compare",
        "--workload",
        "fixed:90ms",
        "--ablation",
        "--repeats",
        "1",
        "--windows",
        "8",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let summary = text
        .split("### Overall mean cost")
        .nth(1)
        .expect("the summary table");
    for row in [
        "| ecogd:paper |",
        "| ecogd:paper+abandon |",
        "| ecogd:paper+pattern |",
        "| ecogd:paper+replay |",
        "| ecogd:paper+scan |",
        "| ecogd:paper+replay+scan |",
        "| ecogd:paper+probe |",
        "| ecogd |",
        "| grid+replay+abandon |",
        "| linear+replay+abandon |",
        "| mab+replay+abandon |",
        "| bayes+replay+abandon |",
        "| oracle |",
    ] {
        assert!(summary.contains(row), "{row} missing in {summary}");
    }
}

/// Width, height and 8-bit RGB pixels of a PNG file.
fn decode_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}
