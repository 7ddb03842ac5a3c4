//! Signals and crashes at the CLI, on a fake Xavier NX tree: whatever ends a
//! run, the clocks come back - at once (INT, TERM, HUP, QUIT, a second
//! signal), at the next start (SIGKILL: the store file), or by hand
//! (`ecoedge board --restore`); and a second run on a held board is refused.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ecoedge_tests::sysfs::{FakeBoard, xavier_nx_clock_files};

/// Every clock setting a run may touch, as the files hold them.
fn clock_files(board: &FakeBoard) -> Vec<(String, String)> {
    board.snapshot(xavier_nx_clock_files())
}

fn store(board: &FakeBoard) -> PathBuf {
    board.root().join("run/ecoedge/store.json")
}

/// `ecoedge run` on `board` for `seconds` of mlp, stderr piped; a full-batch
/// rule at a low rate keeps requests waiting for the drain.
fn start(board: &FakeBoard, cache: &std::path::Path, seconds: u32) -> Child {
    start_with(board, cache, seconds, "mlp", "fixed:5ms")
}

/// `ecoedge run` of `model` under `workload`.
fn start_with(
    board: &FakeBoard,
    cache: &std::path::Path,
    seconds: u32,
    model: &str,
    workload: &str,
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args([
            "run",
            "--board",
            "auto",
            "--sysfs-root",
            board.root().to_str().unwrap(),
            "--model",
            model,
            "--workload",
            workload,
            "--duration",
            &format!("{seconds}s"),
            "--window",
            "32",
            "--warmup",
            "2",
            "--optimizer",
            "fixed:0,0,16",
            "--max-wait",
            "none",
            "--json",
        ])
        .env("ECOEDGE_CACHE", cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the run holds the board (its store file exists) and has
/// pinned the clocks.
fn wait_until_tuning(board: &FakeBoard, before: &[(String, String)]) {
    let t = Instant::now();
    while !(store(board).exists() && clock_files(board) != before) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the run never pinned the clocks"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(child: &Child, signal: i32) {
    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

/// Exit code, stdout, stderr.
fn finish(child: Child) -> (Option<i32>, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_stop_signal_drains_summarises_and_restores() {
    let cache = tempfile::tempdir().unwrap();
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        let board = FakeBoard::xavier_nx_jp5();
        let before = clock_files(&board);
        let child = start(&board, cache.path(), 60);
        wait_until_tuning(&board, &before);
        // The clocks are pinned before the first arrival: on a loaded
        // machine a signal sent at once raced it, and nothing had arrived.
        std::thread::sleep(Duration::from_millis(300));
        kill(&child, signal);
        let (code, stdout, stderr) = finish(child);
        assert_eq!(code, Some(0), "signal {signal}: {stderr}");
        let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(s["requests"]["pending"], 0, "signal {signal}: {s}");
        assert!(
            s["requests"]["served"].as_u64().unwrap() > 0,
            "signal {signal}: {s}"
        );
        assert_eq!(
            clock_files(&board),
            before,
            "signal {signal}: clocks restored"
        );
        assert!(
            !store(&board).exists(),
            "signal {signal}: the store goes with the restore"
        );
    }
}

#[test]
fn a_second_signal_restores_at_once_and_exits() {
    let cache = tempfile::tempdir().unwrap();
    let board = FakeBoard::xavier_nx_jp5();
    let before = clock_files(&board);
    // BERT-tiny at 1000 requests/s: a backlog of seconds builds up, so the
    // drain is still running when the second signal comes.
    let child = start_with(&board, cache.path(), 60, "bert-tiny", "fixed:1ms");
    wait_until_tuning(&board, &before);
    std::thread::sleep(Duration::from_secs(1));
    // Two different signals (two of one kind can merge into one); both may
    // be pending when the signal thread looks, in either order.
    kill(&child, libc::SIGINT);
    kill(&child, libc::SIGTERM);
    let (code, stdout, stderr) = finish(child);
    assert!(
        [Some(128 + libc::SIGINT), Some(128 + libc::SIGTERM)].contains(&code),
        "{code:?}: {stderr}"
    );
    assert!(stdout.is_empty(), "no summary: {stdout}");
    assert!(stderr.contains("clocks restored"), "{stderr}");
    assert_eq!(clock_files(&board), before);
}

#[test]
fn after_sigkill_the_next_start_or_board_restore_puts_the_clocks_back() {
    let cache = tempfile::tempdir().unwrap();
    let board = FakeBoard::xavier_nx_jp5();
    let before = clock_files(&board);

    // By hand: `ecoedge board --restore`.
    let child = start(&board, cache.path(), 60);
    wait_until_tuning(&board, &before);
    kill(&child, libc::SIGKILL);
    finish(child);
    assert_ne!(
        clock_files(&board),
        before,
        "SIGKILL leaves the clocks pinned"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args(["board", "--restore", "--sysfs-root"])
        .arg(board.root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("restored the clocks process"), "{stdout}");
    assert_eq!(clock_files(&board), before);
    assert!(!store(&board).exists());

    // At the next start: the run restores first, says so, and saves the
    // original clocks (not the pinned ones) as what to restore at its end.
    let child = start(&board, cache.path(), 60);
    wait_until_tuning(&board, &before);
    kill(&child, libc::SIGKILL);
    finish(child);
    let child = start(&board, cache.path(), 1);
    let (code, _, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("left pinned"), "{stderr}");
    assert_eq!(clock_files(&board), before);
}

#[test]
fn a_second_run_on_a_held_board_is_refused_naming_the_holder() {
    let cache = tempfile::tempdir().unwrap();
    let board = FakeBoard::xavier_nx_jp5();
    let before = clock_files(&board);
    let mut first = start(&board, cache.path(), 60);
    wait_until_tuning(&board, &before);
    let (code, _, err) = finish(start(&board, cache.path(), 1));
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("in use by process {}", first.id())),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    kill(&first, libc::SIGTERM);
    assert!(first.wait().unwrap().success());
    assert_eq!(clock_files(&board), before);
}
