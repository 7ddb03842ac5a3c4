//! `ecoedge serve --board auto` on a fake Xavier NX tree, end to end: eight
//! clients send KServe v2 JSON requests while the random search moves the
//! clocks, SIGTERM arrives mid-load, and the server drains what it accepted,
//! refuses the rest, restores every clock file and exits 0 with a summary
//! that counts exactly the samples the clients got answers for.
//!
//! The client is a minimal HTTP/1.1 one over `TcpStream` (one request per
//! connection, `Connection: close`) with socket timeouts, so a server that
//! stops answering fails the test instead of hanging it.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ecoedge_tests::sysfs::{FakeBoard, xavier_nx_clock_files};
use serde_json::{Value, json};

/// Longest any socket operation may block: far above a batch of the MLP, so
/// only a server that stopped answering reaches it.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// The MLP's features per sample (`input: f32[N, 64]`).
const FEATURES: usize = 64;

/// Every clock setting the server may touch, as the files hold them.
fn clock_files(board: &FakeBoard) -> Vec<(String, String)> {
    board.snapshot(xavier_nx_clock_files())
}

/// What one request came to.
#[derive(Debug)]
enum Reply {
    /// A complete HTTP response.
    Http { status: u16, body: Vec<u8> },
    /// The server refused the connection or closed it without an answer.
    Gone(String),
}

/// One HTTP/1.1 exchange on a fresh connection. Panics on a socket timeout:
/// the server must never leave a client waiting.
fn exchange(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut stream = match TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT) {
        Ok(s) => s,
        Err(e) => return Reply::Gone(format!("connect: {e}")),
    };
    stream.set_read_timeout(Some(SOCKET_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(SOCKET_TIMEOUT)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut raw = Vec::new();
    let sent = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
    let read = sent.and_then(|()| stream.read_to_end(&mut raw));
    match read {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("{method} {path}: no answer within {SOCKET_TIMEOUT:?}")
        }
        // A reset after a complete answer (the server closed with our
        // bytes unread) still counts as that answer.
        Err(e) if raw.is_empty() => Reply::Gone(format!("{e}")),
        _ if raw.is_empty() => Reply::Gone("closed without an answer".into()),
        _ => parse_response(&raw),
    }
}

/// Status and body of a `Content-Length` response.
fn parse_response(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers: {}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    assert!(
        !head.contains("transfer-encoding: chunked"),
        "this client reads Content-Length bodies: {head}"
    );
    Reply::Http {
        status,
        body: raw[split + 4..].to_vec(),
    }
}

/// A KServe v2 JSON request of `samples` rows for the MLP.
fn infer_body(id: &str, samples: usize) -> Vec<u8> {
    let data: Vec<f32> = (0..samples * FEATURES)
        .map(|i| (i % 17) as f32 / 17.0)
        .collect();
    serde_json::to_vec(&json!({
        "id": id,
        "inputs": [{
            "name": "input",
            "shape": [samples, FEATURES],
            "datatype": "FP32",
            "data": data,
        }],
    }))
    .unwrap()
}

/// What a client thread saw, in order: samples sent and the reply.
type Log = Vec<(usize, Reply)>;

/// A client sending requests of 1 to 3 samples back to back until `done`;
/// once refusals begin it sends three more to see they go on.
fn client(addr: SocketAddr, k: usize, done: Arc<AtomicBool>) -> JoinHandle<Log> {
    std::thread::spawn(move || {
        let mut log = Log::new();
        let mut refusals = 0;
        for i in 0.. {
            if refusals >= 3 || done.load(Ordering::Acquire) {
                break;
            }
            let samples = 1 + (i + k) % 3;
            let reply = exchange(
                addr,
                "POST",
                "/v2/models/mlp/infer",
                &infer_body(&format!("c{k}-{i}"), samples),
            );
            if !matches!(reply, Reply::Http { status: 200, .. }) {
                refusals += 1;
                // A refused connection comes back at once: no busy loop.
                std::thread::sleep(Duration::from_millis(5));
            }
            log.push((samples, reply));
        }
        log
    })
}

/// The server's process, killed if the test fails before it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `ecoedge serve` on `board`; returns the child and its address once
/// it says where it listens, and a thread that keeps draining stderr (the
/// server writes a line per closed window) and returns all of it.
fn start_server(
    board: &FakeBoard,
    cache: &std::path::Path,
) -> (Child, SocketAddr, JoinHandle<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .args([
            "serve",
            "--board",
            "auto",
            "--sysfs-root",
            board.root().to_str().unwrap(),
            "--model",
            "mlp",
            "--listen",
            "127.0.0.1:0",
            "--window",
            "32",
            "--warmup",
            "2",
            "--json",
            "--optimizer",
            "random",
        ])
        .env("ECOEDGE_CACHE", cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let addr = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("serve ended before listening:\n{seen}");
        }
        seen.push_str(&line);
        if let Some(rest) = line
            .split("http://")
            .nth(1)
            .filter(|_| line.starts_with("serving mlp on"))
        {
            let addr = rest.split_whitespace().next().unwrap();
            break addr.parse::<SocketAddr>().unwrap();
        }
    };
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        seen + &rest
    });
    (child, addr, drain)
}

/// Waits for `child` at most `limit`; kills it and fails past that.
fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("serve did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks one client's log: answers with every output row until the first
/// refusal, then only refusals. Returns the samples answered.
fn check_log(k: usize, log: &Log) -> u64 {
    let mut answered = 0;
    let mut refused = false;
    for (i, (samples, reply)) in log.iter().enumerate() {
        match reply {
            Reply::Http { status: 200, body } => {
                assert!(!refused, "client {k} request {i}: answered after a refusal");
                let v: Value = serde_json::from_slice(body).unwrap();
                assert_eq!(v["id"], format!("c{k}-{i}"), "{v}");
                let outputs = v["outputs"].as_array().unwrap_or_else(|| panic!("{v}"));
                assert!(!outputs.is_empty(), "{v}");
                for o in outputs {
                    assert_eq!(o["shape"][0], *samples as u64, "{o}");
                    let per_row: u64 = o["shape"].as_array().unwrap()[1..]
                        .iter()
                        .map(|d| d.as_u64().unwrap())
                        .product();
                    assert_eq!(
                        o["data"].as_array().unwrap().len() as u64,
                        per_row * *samples as u64,
                        "{o}"
                    );
                }
                answered += *samples as u64;
            }
            Reply::Http { status: 503, .. } => refused = true,
            Reply::Gone(why) => {
                eprintln!("client {k} request {i}: {why}");
                refused = true;
            }
            Reply::Http { status, body } => panic!(
                "client {k} request {i}: {status} {}",
                String::from_utf8_lossy(body)
            ),
        }
    }
    assert!(refused, "client {k} never saw the shutdown: {log:?}");
    eprintln!(
        "client {k}: {answered} samples answered in {} requests",
        log.len()
    );
    answered
}

#[test]
fn serve_tunes_a_fake_xavier_nx_drains_on_sigterm_and_restores_it() {
    let board = FakeBoard::xavier_nx_jp5();
    let before = clock_files(&board);
    let cache = tempfile::tempdir().unwrap();
    let (child, addr, stderr) = start_server(&board, cache.path());
    let mut child = Server(child);

    // The model as the server describes it: what the requests below send.
    let Reply::Http { status: 200, body } = exchange(addr, "GET", "/v2/models/mlp", b"") else {
        panic!("model metadata")
    };
    let meta: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(meta["inputs"][0]["name"], "input", "{meta}");
    assert_eq!(meta["inputs"][0]["datatype"], "FP32", "{meta}");
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, FEATURES]), "{meta}");

    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8).map(|k| client(addr, k, Arc::clone(&done))).collect();

    // Under load, the random search pins clocks away from the boot settings;
    // tract runs on the CPU, so the GPU clock stays pinned at its lowest level.
    let gpu = "/sys/devices/gpu.0/devfreq/17000000.gv11b";
    let lowest = board
        .read(&format!("{gpu}/available_frequencies"))
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap())
        .min()
        .unwrap()
        .to_string();
    let mut moved = false;
    let load = Instant::now();
    while load.elapsed() < Duration::from_secs(3) {
        moved |= clock_files(&board) != before;
        for f in ["min_freq", "max_freq"] {
            assert_eq!(board.read(&format!("{gpu}/{f}")).trim(), lowest, "GPU {f}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let status = wait(&mut child.0, Duration::from_secs(30));
    // Clients that never hit the refusal (none should) stop here.
    done.store(true, Ordering::Release);
    let logs: Vec<Log> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let stderr = stderr.join().unwrap();
    let mut stdout = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();

    assert!(status.success(), "{status}\n{stderr}");
    assert!(
        stderr.contains("window"),
        "windows closed under load:\n{stderr}"
    );
    assert!(moved, "the clocks never moved under load:\n{stderr}");
    assert!(
        stderr.contains("GPU clock is pinned at its lowest level (114 MHz) and not searched"),
        "{stderr}"
    );
    let answered: u64 = logs.iter().enumerate().map(|(k, l)| check_log(k, l)).sum();
    assert!(answered > 0);
    let s: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(s["board"], "jetson", "{s}");
    assert_eq!(s["requests"]["pending"], 0, "{s}");
    assert_eq!(s["requests"]["served"], answered, "{s}");
    assert_eq!(clock_files(&board), before, "clocks restored");
}
