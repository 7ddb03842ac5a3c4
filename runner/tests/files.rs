//! Files a run writes: logs never over existing files (unless `--force`)
//! and never through a link; the model cache never in a shared directory.

use std::path::Path;
use std::process::{Command, Output};

/// A short simulation with its logs in `dir`.
fn sim(dir: &Path, force: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecoedge"));
    cmd.args(["sim", "--model", "bert-tiny", "--windows", "3", "--log-dir"])
        .arg(dir);
    if force {
        cmd.arg("--force");
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn logs_are_never_written_over_existing_files_or_through_links() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    assert!(sim(&logs, false).status.success());
    let first = std::fs::read_to_string(logs.join("summary.json")).unwrap();

    let again = sim(&logs, false);
    assert!(!again.status.success());
    let e = stderr(&again);
    assert!(e.contains("already exists; pass --force"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert_eq!(
        std::fs::read_to_string(logs.join("summary.json")).unwrap(),
        first
    );

    // A link planted where a log goes: refused, and with --force the link
    // itself is replaced while what it points to stays untouched.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::remove_file(logs.join("requests.csv")).unwrap();
    std::os::unix::fs::symlink(&victim, logs.join("requests.csv")).unwrap();
    assert!(!sim(&logs, false).status.success());
    let forced = sim(&logs, true);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!logs.join("requests.csv").is_symlink());
    assert!(
        std::fs::read_to_string(logs.join("requests.csv"))
            .unwrap()
            .lines()
            .count()
            > 1
    );
}

#[test]
fn an_unwritable_log_dir_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be: no one, root included, can
    // create files under it.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "").unwrap();
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args([
            "run",
            "--board",
            "host",
            "--model",
            "mlp",
            "--duration",
            "30s",
            "--sysfs-root",
        ])
        .arg(root.path())
        .arg("--log-dir")
        .arg(blocked.join("logs"))
        .env("ECOEDGE_CACHE", cache.path())
        .output()
        .unwrap();
    let e = stderr(&out);
    assert!(!out.status.success());
    assert!(e.contains("cannot create log directory"), "{e}");
    assert!(!e.contains("window "), "refused before serving: {e}");
}

#[test]
fn without_a_home_the_model_cache_is_an_error_not_a_shared_directory() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args(["run", "--board", "host", "--model", "mlp", "--sysfs-root"])
        .arg(root.path())
        .env_remove("HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("ECOEDGE_CACHE")
        .output()
        .unwrap();
    let e = stderr(&out);
    assert!(!out.status.success());
    assert!(
        e.contains("set HOME, XDG_CACHE_HOME or ECOEDGE_CACHE"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
}
