//! Board detection, the board report and the sysfs power monitors on fake trees
//! of real boards.

use ecoedge_bsp_jetson::power::SensorDriver;
use ecoedge_bsp_jetson::sampler::PowerSource;
use ecoedge_bsp_jetson::{BoardKind, CpuFreq, Error, GpuFreq, PowerMonitor, Sysfs, detect, report};
use ecoedge_core::board::FrequencyKnob;
use ecoedge_core::space::Knob;
use ecoedge_tests::sysfs::{
    FakeBoard, NANO_CPU_KHZ, NANO_GPU_HZ, ORIN_NX_CPU_KHZ, ORIN_NX_GPU_HZ, XAVIER_NX_CPU_KHZ,
    XAVIER_NX_GPU_HZ,
};

fn kind(board: &FakeBoard) -> BoardKind {
    detect(&Sysfs::new(board.root())).unwrap().kind
}

#[test]
fn detects_each_board() {
    let b = FakeBoard::xavier_nx_jp4();
    let info = detect(&Sysfs::new(b.root())).unwrap();
    assert_eq!(info.kind, BoardKind::XavierNx);
    assert_eq!(info.chip_id, Some(25));
    assert_eq!(
        info.model.as_deref(),
        Some("NVIDIA Jetson Xavier NX Developer Kit")
    );
    // JetPack 5: no fuse parameter, the SoC bus's id instead.
    assert_eq!(kind(&FakeBoard::xavier_nx_jp5()), BoardKind::XavierNx);
    assert_eq!(kind(&FakeBoard::orin_nx_jp6()), BoardKind::Orin);
    assert_eq!(kind(&FakeBoard::nano()), BoardKind::Nano);
    let tx2 = FakeBoard::empty();
    tx2.identity(Some(24), "quill");
    assert_eq!(kind(&tx2), BoardKind::Tx2);
}

#[test]
fn an_unknown_board_still_reports_what_discovery_finds() {
    let b = FakeBoard::empty();
    b.file("/sys/devices/soc0/soc_id", "jep106:036b:0099\n");
    b.cpu_policy(0, &[0, 1], &[300_000, 600_000], "ondemand");
    let r = report(b.root()).unwrap();
    assert_eq!(r.board, BoardKind::Unknown);
    assert_eq!(r.chip_id, Some(0x99));
    assert_eq!(r.model, None);
    assert_eq!(r.cpu.unwrap().levels_khz, vec![300_000, 600_000]);
    assert!(r.gpu.is_none() && r.emc.is_none() && r.rails.is_empty());
    assert_eq!(r.notes.len(), 3, "{:?}", r.notes);
    assert!(r.notes[0].contains("GPU devfreq"));
    assert!(r.notes[1].contains("EMC clock"));
}

#[test]
fn garbage_in_an_identity_file_is_an_error_naming_it() {
    let b = FakeBoard::empty();
    b.file("/sys/module/tegra_fuse/parameters/tegra_chip_id", "T194\n");
    let err = detect(&Sysfs::new(b.root())).unwrap_err();
    assert!(matches!(err, Error::Parse { .. }));
    assert!(err.to_string().contains("tegra_chip_id"), "{err}");
}

#[test]
fn levels_are_read_from_the_board() {
    for (board, cpu, gpu, gpu_name) in [
        (
            FakeBoard::xavier_nx_jp4(),
            &XAVIER_NX_CPU_KHZ[..],
            &XAVIER_NX_GPU_HZ[..],
            "17000000.gv11b",
        ),
        (
            FakeBoard::orin_nx_jp6(),
            &ORIN_NX_CPU_KHZ[..],
            &ORIN_NX_GPU_HZ[..],
            "17000000.gpu",
        ),
        (
            FakeBoard::nano(),
            &NANO_CPU_KHZ[..],
            &NANO_GPU_HZ[..],
            "57000000.gpu",
        ),
    ] {
        let sysfs = Sysfs::new(board.root());
        let c = CpuFreq::open(&sysfs).unwrap();
        assert_eq!(c.levels(), cpu);
        assert!(c.levels_common());
        assert_eq!(c.knob(), Knob::Cpu);
        assert_eq!(c.dimension().unwrap().len(), cpu.len());
        let g = GpuFreq::open(&sysfs).unwrap();
        assert_eq!(g.levels(), gpu);
        assert_eq!(g.name(), gpu_name);
        assert_eq!(g.knob(), Knob::Gpu);
    }
}

#[test]
fn policies_without_common_levels_use_the_first_policys_table() {
    let b = FakeBoard::empty();
    b.cpu_policy(0, &[0, 1], &[100_000, 200_000, 300_000], "schedutil");
    b.cpu_policy(2, &[2, 3], &[150_000, 250_000, 350_000], "schedutil");
    let c = CpuFreq::open(&Sysfs::new(b.root())).unwrap();
    assert_eq!(c.levels(), &[100_000, 200_000, 300_000]);
    assert!(!c.levels_common());
}

#[test]
fn report_of_xavier_nx_on_jetpack_4_as_json() {
    let b = FakeBoard::xavier_nx_jp4();
    let r = report(b.root()).unwrap();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["board"], "xavier-nx");
    assert_eq!(json["model"], "NVIDIA Jetson Xavier NX Developer Kit");
    assert_eq!(json["cpu"]["policies"].as_array().unwrap().len(), 3);
    assert_eq!(json["cpu"]["policies"][1]["name"], "policy2");
    assert_eq!(
        json["cpu"]["policies"][1]["cpus"],
        serde_json::json!([2, 3])
    );
    assert_eq!(json["cpu"]["policies"][0]["governor"], "schedutil");
    assert_eq!(json["cpu"]["levels_khz"].as_array().unwrap().len(), 25);
    assert_eq!(
        json["gpu"]["path"],
        "/sys/devices/gpu.0/devfreq/17000000.gv11b"
    );
    assert_eq!(json["gpu"]["governor"], "nvhost_podgov");
    assert_eq!(json["gpu"]["levels_hz"][14], 1_109_250_000);
    assert_eq!(json["power"]["driver"], "iio");
    assert_eq!(json["power"]["module_input"], "VDD_IN");
    assert_eq!(
        json["rails"][0],
        serde_json::json!({"label": "VDD_IN", "voltage_mv": 5048, "current_ma": 960, "power_mw": 4846})
    );
    assert!(r.notes.is_empty(), "{:?}", r.notes);
}

#[test]
fn report_of_orin_on_jetpack_6_finds_the_gpu_among_other_devfreq_devices() {
    let b = FakeBoard::orin_nx_jp6();
    let r = report(b.root()).unwrap();
    assert_eq!(r.board.name(), "orin");
    let gpu = r.gpu.unwrap();
    assert_eq!(
        gpu.path,
        "/sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu"
    );
    assert_eq!(gpu.levels_hz, ORIN_NX_GPU_HZ);
    let power = r.power.unwrap();
    assert_eq!(power.driver, SensorDriver::Hwmon);
    assert_eq!(
        power.devices,
        // The device as the kernel places it (the report resolves the links).
        vec!["/sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon/hwmon1".to_string()]
    );
    assert_eq!(power.update_interval_ms, Some(6));
    assert_eq!(r.rails[0].power_mw, 7_000);
}

#[test]
fn hwmon_and_iio_monitors_read_the_module_input() {
    for (board, driver, label, mw) in [
        (
            FakeBoard::xavier_nx_jp4(),
            SensorDriver::Iio,
            "VDD_IN",
            4_846,
        ),
        (
            FakeBoard::xavier_nx_jp5(),
            SensorDriver::Hwmon,
            "VDD_IN",
            4_846,
        ),
        (
            FakeBoard::orin_nx_jp6(),
            SensorDriver::Hwmon,
            "VDD_IN",
            7_000,
        ),
        (FakeBoard::nano(), SensorDriver::Iio, "POM_5V_IN", 3_000),
    ] {
        let m = PowerMonitor::discover(&Sysfs::new(board.root())).unwrap();
        assert_eq!(m.driver(), driver);
        assert_eq!(m.module_input_label().unwrap(), label);
        assert_eq!(m.read(label).unwrap().power_mw, mw);
        let mut p = m.module_input_power().unwrap();
        let w = p.power_w().unwrap();
        assert!((w - mw as f64 / 1e3).abs() < 1e-2, "{w}");
        assert_eq!(m.labels().len(), 3);
    }
}

#[test]
fn hwmon_power_follows_the_files_on_every_read() {
    let b = FakeBoard::xavier_nx_jp5();
    let m = PowerMonitor::discover(&Sysfs::new(b.root())).unwrap();
    let mut p = m.module_input_power().unwrap();
    assert_eq!(
        m.update_interval(),
        Some(std::time::Duration::from_millis(6))
    );
    b.file(
        "/sys/bus/i2c/drivers/ina3221/7-0040/hwmon/hwmon5/curr1_input",
        "2000\n",
    );
    assert!((p.power_w().unwrap() - 10.096).abs() < 1e-9);
}

#[test]
fn a_missing_sensor_is_a_clear_error() {
    let b = FakeBoard::empty();
    b.cpu_policy(0, &[0], &[100_000], "schedutil");
    let err = PowerMonitor::discover(&Sysfs::new(b.root())).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("INA3221") && msg.contains("sys/bus/i2c/drivers"),
        "{msg}"
    );

    // A bound driver whose rail the caller names wrongly.
    let b = FakeBoard::nano();
    let m = PowerMonitor::discover(&Sysfs::new(b.root())).unwrap();
    let err = m.rail_power("VDD_IN").unwrap_err();
    assert!(err.to_string().contains("POM_5V_GPU"), "{err}");

    // A rail file that vanished after discovery: the read names the file.
    std::fs::remove_file(
        b.path("/sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power0_input"),
    )
    .unwrap();
    let err = m.read("POM_5V_IN").unwrap_err();
    assert!(matches!(err, Error::Read { .. }));
    assert!(err.to_string().contains("in_power0_input"), "{err}");
}

#[test]
fn a_board_without_module_input_rail_says_which_rails_it_has() {
    let b = FakeBoard::empty();
    b.hwmon(
        "/sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040",
        2,
        &[
            ("VDD_GPU_SOC", 5000, 100),
            ("VDD_CPU_CV", 5000, 100),
            ("VIN_SYS_5V0", 5000, 300),
        ],
        6,
    );
    let m = PowerMonitor::discover(&Sysfs::new(b.root())).unwrap();
    let err = m.module_input_power().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("VDD_IN") && msg.contains("VIN_SYS_5V0"),
        "{msg}"
    );
}
