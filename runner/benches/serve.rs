//! `ecoedge serve` against `ecoedge run`: what the HTTP front end costs.
//!
//! `cargo bench -p ecoedge-runner --bench serve [-- --requests N --seconds S
//! --models mlp,bert-tiny --load F]` (`--models none`: the memory part only). Both commands run the same service loop
//! on the host board (an empty sysfs tree: the batch is the only knob) with
//! `--optimizer fixed:max`, i.e. batch 16, so what differs is only where the
//! samples come from: `run`'s in-process arrival thread, or HTTP clients.
//! Per model:
//!
//! 1. throughput: `run` saturated by a Poisson workload well above capacity
//!    (saturation is checked: its queue refused requests) against `serve`
//!    saturated by a closed-loop client on 32 keep-alive connections, one
//!    sample per request, outputs as JSON and, in a second run, as binary
//!    tensor data. Goal: serve/run >= 0.9.
//! 2. added latency: both at the same moderate load (`--load` times the
//!    smaller of the two capacities, default 0.25) with the same Poisson
//!    arrival instants (`ecoedge_runner::workload`, same seed): `run`'s p50
//!    from its summary against the p50 the client measures for `serve`, each
//!    request sent at its arrival instant over a pool of keep-alive
//!    connections opened beforehand (open loop). `serve`'s own summary p50
//!    (queued to answered, inside the server, over the same requests) is
//!    shown too, to tell the HTTP and client share from the service loop's.
//!    Goal: at most 200 us added.
//! 3. memory: `serve`'s resident set (VmRSS) on `mlp` after a warm-up of
//!    50 000 requests (a quarter of `--requests` when that is fewer) and after
//!    `--requests` (default 200 000; the figure is 1 000 000). Goal:
//!    under 10 MB of growth (requests stream to the logs and the summary's
//!    figures are running ones, so nothing per request is kept).
//!
//! The client is hyper's (the HTTP stack `serve` itself is built on) on a
//! tokio runtime in this process, so on a small machine the client competes
//! with the server for the same cores: the figures are a bound on the
//! server's overhead, not a measure of it alone. Models come from the usual
//! cache (`ECOEDGE_CACHE`), generated on first use.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ecoedge_runner::workload::Workload;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

/// Connections of the closed-loop client: enough to keep batches of 16 full
/// while earlier answers travel back.
const CONNECTIONS: usize = 32;

/// Readiness checks timed for the bare HTTP round trip.
const ROUND_TRIPS: usize = 2000;

/// Most requests the open-loop client has in flight (connections).
const MAX_IN_FLIGHT: usize = 256;

/// Seed of the Poisson arrivals, as `--seed` of `run`.
const SEED: u64 = 1;
const SEED_FLAG: &str = "1";

/// `--max-wait` of both commands: how long a partial batch may wait.
const MAX_WAIT: &str = "2ms";

/// Time given to warm up before a measurement (calibration windows, pools).
const WARMUP: Duration = Duration::from_secs(1);

/// The bench's command line.
struct Options {
    /// Requests of the memory part (3).
    requests: u64,
    /// Length of each measurement, seconds.
    seconds: u64,
    /// Models of parts 1 and 2.
    models: Vec<String>,
    /// The moderate load of part 2, as a fraction of the smaller capacity.
    load: f64,
}

impl Options {
    /// Parses `--requests N --seconds S --models a,b --load F`; ignores what
    /// cargo adds (`--bench`).
    fn parse() -> Result<Options> {
        let mut o = Options {
            requests: 200_000,
            seconds: 8,
            models: vec!["mlp".into(), "bert-tiny".into()],
            load: 0.25,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--requests" => o.requests = value()?.parse()?,
                "--seconds" => o.seconds = value()?.parse()?,
                "--models" => {
                    o.models = value()?
                        .split(',')
                        .filter(|m| !m.is_empty() && *m != "none")
                        .map(str::to_string)
                        .collect()
                }
                "--load" => o.load = value()?.parse()?,
                _ => {}
            }
        }
        ensure!(o.seconds >= 2, "--seconds: at least 2");
        ensure!(
            o.load > 0.0 && o.load < 1.0,
            "--load: a fraction of capacity"
        );
        Ok(o)
    }
}

/// The flags `run` and `serve` share here: host board, batch 16 throughout.
fn service_flags<'a>(model: &'a str, sysfs: &'a Path) -> Vec<&'a str> {
    let root = sysfs.to_str().expect("a UTF-8 temp path");
    vec![
        "--board",
        "host",
        "--sysfs-root",
        root,
        "--model",
        model,
        "--optimizer",
        "fixed:max",
        "--seed",
        SEED_FLAG,
        // Pinned: by default each process times its largest batch at start
        // for the wait, and that timing's noise would show as latency.
        "--max-wait",
        MAX_WAIT,
        "--json",
    ]
}

/// A `run` of `workload` for `seconds`: its summary and the completion times
/// of its requests (seconds, from `requests.csv`).
fn run(model: &str, sysfs: &Path, workload: &str, seconds: u64) -> Result<(Value, Vec<f64>)> {
    let logs = tempfile::tempdir()?;
    let duration = format!("{seconds}s");
    let out = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
        .arg("run")
        .args(service_flags(model, sysfs))
        .args(["--workload", workload, "--duration", &duration])
        .arg("--log-dir")
        .arg(logs.path())
        .stderr(Stdio::piped())
        .output()?;
    ensure!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout)?;
    let mut done = Vec::new();
    let mut csv = csv::Reader::from_path(logs.path().join("requests.csv"))?;
    let column = csv
        .headers()?
        .iter()
        .position(|h| h == "done_s")
        .context("requests.csv: no done_s")?;
    for row in csv.records() {
        done.push(row?[column].parse::<f64>()?);
    }
    done.sort_by(f64::total_cmp);
    Ok((summary, done))
}

/// Samples per second completed after the warm-up: the calibration windows
/// and the start are left out, the drain at the end (still at full speed
/// when saturated) is kept.
fn steady_rate(done: &[f64]) -> f64 {
    let (Some(&first), Some(&last)) = (done.first(), done.last()) else {
        return 0.0;
    };
    let from = first + WARMUP.as_secs_f64();
    let n = done.iter().filter(|&&t| t >= from).count();
    n as f64 / (last - from)
}

/// A running `ecoedge serve`; stderr is drained on a thread (a line per
/// closed window) so the server never blocks on it.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Option<JoinHandle<String>>,
}

/// A bench that fails half-way leaves no server behind.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// Starts `serve` on any free port; returns once it says where.
    fn start(model: &str, sysfs: &Path) -> Result<Server> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ecoedge"))
            .arg("serve")
            .args(service_flags(model, sysfs))
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stderr = BufReader::new(child.stderr.take().context("stderr")?);
        let mut seen = String::new();
        let addr = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line)? == 0 {
                let _ = child.wait();
                bail!("serve ended before listening:\n{seen}");
            }
            seen.push_str(&line);
            if line.starts_with("serving ")
                && let Some(url) = line.split("http://").nth(1)
            {
                break url.split_whitespace().next().unwrap_or("").parse()?;
            }
        };
        let stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
            seen + &rest
        });
        Ok(Server {
            child,
            addr,
            stderr: Some(stderr),
        })
    }

    /// Resident set size, KiB (`VmRSS` of /proc/PID/status).
    fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("no VmRSS")
    }

    /// SIGTERM, then the summary it prints once drained; checks that nothing
    /// was left pending.
    fn stop(mut self) -> Result<Value> {
        // SAFETY: kill(2) on our own child's pid.
        if unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) } != 0 {
            bail!("kill: {}", std::io::Error::last_os_error());
        }
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .context("stdout")?
            .read_to_string(&mut stdout)?;
        let status = self.child.wait()?;
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        ensure!(status.success(), "serve: {status}\n{stderr}");
        let summary: Value = serde_json::from_str(&stdout)?;
        ensure!(summary["requests"]["pending"] == 0, "pending: {summary}");
        Ok(summary)
    }
}

/// An HTTP client for one server's model: a keep-alive connection pool and
/// a one-sample inference request built from the model's metadata.
struct Load {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    body: Bytes,
}

impl Load {
    /// Reads the model's inputs (`GET /v2/models/NAME`) and builds the
    /// request, asking for the outputs as JSON arrays or, when `binary`, as
    /// raw bytes (the binary tensor data extension).
    async fn new(addr: SocketAddr, model: &str, binary: bool) -> Result<Arc<Load>> {
        let mut connector = HttpConnector::new();
        // Requests are small and latency is measured: no Nagle delays.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let meta: Uri = format!("http://{addr}/v2/models/{model}").parse()?;
        let req = Request::get(meta).body(Full::default())?;
        let resp = client.request(req).await?;
        ensure!(
            resp.status() == StatusCode::OK,
            "metadata: {}",
            resp.status()
        );
        let meta: Value = serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
        let mut request = one_sample(&meta)?;
        if binary {
            request["parameters"] = json!({ "binary_data_output": true });
        }
        let body = Bytes::from(serde_json::to_vec(&request)?);
        let uri = format!("http://{addr}/v2/models/{model}/infer").parse()?;
        Ok(Arc::new(Load { client, uri, body }))
    }

    /// One inference request; fails unless answered 200.
    async fn infer(&self) -> Result<()> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header("content-type", "application/json")
            .body(Full::new(self.body.clone()))?;
        let resp = self.client.request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            bail!("{status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }

    /// Opens `n` keep-alive connections with as many concurrent readiness
    /// checks, so that an open loop measures serving, not connecting; no
    /// inference, so the server's summary counts exactly the measured
    /// requests (the same arrivals as `run`'s).
    async fn open_connections(&self, n: usize) -> Result<()> {
        let ready = self.ready_uri()?;
        let checks: Vec<_> = (0..n)
            .map(|_| {
                let (client, uri) = (self.client.clone(), ready.clone());
                tokio::spawn(async move {
                    let resp = client.get(uri).await?;
                    ensure!(resp.status() == StatusCode::OK, "ready: {}", resp.status());
                    resp.into_body().collect().await?;
                    anyhow::Ok(())
                })
            })
            .collect();
        for c in checks {
            c.await??;
        }
        Ok(())
    }

    /// The readiness route of the same server.
    fn ready_uri(&self) -> Result<Uri> {
        let ready: Uri = format!(
            "http://{}/v2/health/ready",
            self.uri.authority().context("authority")?
        )
        .parse()?;
        Ok(ready)
    }

    /// Latencies (s) of `n` readiness checks one after another: the bare
    /// HTTP round trip of this client and server, no inference.
    async fn round_trips(&self, n: usize) -> Result<Vec<f64>> {
        let ready = self.ready_uri()?;
        let mut latencies = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let resp = self.client.get(ready.clone()).await?;
            ensure!(resp.status() == StatusCode::OK, "ready: {}", resp.status());
            resp.into_body().collect().await?;
            latencies.push(start.elapsed().as_secs_f64());
        }
        Ok(latencies)
    }

    /// Closed loop on `connections` connections until `requests` are
    /// answered or `time` is up: answered requests and the time taken.
    async fn closed_loop(
        self: &Arc<Self>,
        connections: usize,
        requests: u64,
        time: Duration,
    ) -> Result<(u64, Duration)> {
        let start = Instant::now();
        let issued = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let (load, issued) = (Arc::clone(self), Arc::clone(&issued));
                tokio::spawn(async move {
                    let mut answered = 0u64;
                    while start.elapsed() < time
                        && issued.fetch_add(1, Ordering::Relaxed) < requests
                    {
                        load.infer().await?;
                        answered += 1;
                    }
                    anyhow::Ok(answered)
                })
            })
            .collect();
        let mut answered = 0;
        for t in tasks {
            answered += t.await??;
        }
        Ok((answered, start.elapsed()))
    }

    /// Open loop: each request sent at its instant after now (paced by an OS
    /// thread, as `run`'s arrival thread does: tokio's timer ticks in whole
    /// milliseconds). Returns each request's latency from its instant.
    fn open_loop(self: &Arc<Self>, runtime: &Runtime, instants: Vec<Duration>) -> Result<Vec<f64>> {
        // Past this many in flight, requests wait for a connection (and the
        // wait counts): an overloaded server shows as latency, not as the
        // client running out of file descriptors.
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let start = Instant::now();
        let tasks: Vec<_> = instants
            .into_iter()
            .map(|at| {
                let due = start + at;
                if let Some(left) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(left);
                }
                let (load, slots) = (Arc::clone(self), Arc::clone(&slots));
                runtime.spawn(async move {
                    let _slot = slots.acquire().await?;
                    load.infer().await?;
                    anyhow::Ok(due.elapsed().as_secs_f64())
                })
            })
            .collect();
        runtime.block_on(async {
            let mut latencies = Vec::with_capacity(tasks.len());
            for t in tasks {
                latencies.push(t.await??);
            }
            Ok(latencies)
        })
    }
}

/// A request of one sample for a model with `meta`'s inputs: every input at
/// batch 1, floats 0.5 and integers 1 (a valid token id and mask).
fn one_sample(meta: &Value) -> Result<Value> {
    let inputs = meta["inputs"].as_array().context("metadata: no inputs")?;
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|input| {
            let dims = input["shape"].as_array().context("no shape")?;
            let shape: Vec<i64> = std::iter::once(1)
                .chain(dims[1..].iter().map(|d| d.as_i64().unwrap_or(1)))
                .collect();
            let n = shape.iter().product::<i64>() as usize;
            let datatype = input["datatype"].as_str().context("no datatype")?;
            let data = if datatype.starts_with("FP") {
                json!(vec![0.5f32; n])
            } else {
                json!(vec![1; n])
            };
            Ok(json!({ "name": input["name"], "shape": shape, "datatype": datatype, "data": data }))
        })
        .collect::<Result<_>>()?;
    Ok(json!({ "inputs": inputs }))
}

/// The `q` quantile of `xs` (sorted here).
fn quantile(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[((xs.len() - 1) as f64 * q).round() as usize]
}

/// Fails unless the run really ran at batch 16 (`fixed:max` on the host).
fn check_batch(summary: &Value) -> Result<()> {
    let batch = &summary["final_config"]["batch"];
    ensure!(
        batch == 16,
        "fixed:max ran at batch {batch}, not 16: {summary}"
    );
    Ok(())
}

/// Part 1 for `run`: samples per second at saturation, raising the offered
/// rate until the queue refuses requests (proof that it was saturated).
fn run_capacity(model: &str, sysfs: &Path, seconds: u64, guess: f64) -> Result<f64> {
    let mut rate = guess;
    for _ in 0..4 {
        let (summary, done) = run(model, sysfs, &format!("poisson:{rate:.0}"), seconds)?;
        check_batch(&summary)?;
        if summary["requests"]["refused"].as_u64().unwrap_or(0) > 0 {
            return Ok(steady_rate(&done));
        }
        rate *= 4.0;
    }
    Err(anyhow!("run never saturated up to poisson:{rate:.0}"))
}

/// Part 1 for `serve`: samples per second of the closed-loop client, with
/// outputs as JSON or (`binary`) as bytes: a JSON array of floats costs
/// both sides far more than the bytes (BERT-tiny answers 16 512 per sample).
fn serve_capacity(
    runtime: &Runtime,
    model: &str,
    sysfs: &Path,
    seconds: u64,
    binary: bool,
) -> Result<f64> {
    let server = Server::start(model, sysfs)?;
    let rate = runtime.block_on(async {
        let load = Load::new(server.addr, model, binary).await?;
        load.closed_loop(CONNECTIONS, u64::MAX, WARMUP).await?;
        let (n, took) = load
            .closed_loop(CONNECTIONS, u64::MAX, Duration::from_secs(seconds))
            .await?;
        anyhow::Ok(n as f64 / took.as_secs_f64())
    })?;
    check_batch(&server.stop()?)?;
    Ok(rate)
}

/// Part 2: p50 latency (s) of `run` (its summary) and of `serve` (the
/// client's, and the server's own) at `rate`, same arrivals; and the p50 of
/// a bare HTTP round trip on the same connections.
fn latencies(
    runtime: &Runtime,
    model: &str,
    sysfs: &Path,
    rate: f64,
    seconds: u64,
) -> Result<[f64; 4]> {
    let workload = format!("poisson:{rate:.0}");
    let (summary, _) = run(model, sysfs, &workload, seconds)?;
    let run_p50 = summary["latency_s"]["p50"].as_f64().context("p50")?;

    // The instants `run --workload poisson:RATE --seed 1` follows, up to
    // its duration.
    let instants: Vec<Duration> = Workload::parse(&workload)?
        .arrivals(SEED)?
        .map(|t| Duration::from_micros(t.as_micros()))
        .take_while(|&t| t < Duration::from_secs(seconds))
        .collect();
    let server = Server::start(model, sysfs)?;
    let load = runtime.block_on(async {
        let load = Load::new(server.addr, model, false).await?;
        load.open_connections(CONNECTIONS * 2).await?;
        anyhow::Ok(load)
    })?;
    let mut client = load.open_loop(runtime, instants)?;
    let mut bare = runtime.block_on(load.round_trips(ROUND_TRIPS))?;
    let summary = server.stop()?;
    check_batch(&summary)?;
    let server_p50 = summary["latency_s"]["p50"].as_f64().context("p50")?;
    Ok([
        run_p50,
        quantile(&mut client, 0.5),
        server_p50,
        quantile(&mut bare, 0.5),
    ])
}

/// Part 3: VmRSS (KiB) of `serve` on mlp after the warm-up and after all
/// `requests`, and the time the whole took.
fn memory(runtime: &Runtime, sysfs: &Path, requests: u64) -> Result<(u64, u64, u64, Duration)> {
    let warmup = (requests / 4).min(50_000);
    let server = Server::start("mlp", sysfs)?;
    let start = Instant::now();
    let (after_warmup, at_end) = runtime.block_on(async {
        let load = Load::new(server.addr, "mlp", false).await?;
        let (n, _) = load.closed_loop(CONNECTIONS, warmup, Duration::MAX).await?;
        ensure!(n == warmup, "warm-up: {n} of {warmup} answered");
        let after_warmup = server.rss_kib()?;
        let (n, _) = load
            .closed_loop(CONNECTIONS, requests - warmup, Duration::MAX)
            .await?;
        ensure!(
            n == requests - warmup,
            "{n} of {} answered",
            requests - warmup
        );
        anyhow::Ok((after_warmup, server.rss_kib()?))
    })?;
    let took = start.elapsed();
    let summary = server.stop()?;
    let served = summary["requests"]["served"].as_u64().unwrap_or(0);
    // The metadata request is not an inference: every inference is served.
    ensure!(served == requests, "served {served} of {requests}");
    Ok((warmup, after_warmup, at_end, took))
}

/// Samples per second of `run`, `serve` (JSON outputs) and `serve` (binary
/// outputs), per model.
type Throughput<'a> = (&'a String, f64, f64, f64);

/// Load and p50 latencies of `run`, `serve` inside, `serve` at the client,
/// and a bare HTTP round trip.
type Latency<'a> = (&'a String, f64, f64, f64, f64, f64);

/// The tables of parts 1 and 2.
fn print_tables(throughput: &[Throughput<'_>], latency: &[Latency<'_>]) {
    println!(
        "| model | run samples/s | serve samples/s | serve/run (goal >= 0.9) | serve, binary outputs | serve/run |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (model, run, serve, binary) in throughput {
        println!(
            "| {model} | {run:.0} | {serve:.0} | {:.3} | {binary:.0} | {:.3} |",
            serve / run,
            binary / run
        );
    }
    println!();
    println!(
        "| model | load (req/s) | run p50 | serve p50, server | serve p50, client | added (goal <= 200 us) | bare HTTP round trip p50 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (model, rate, run, server, client, bare) in latency {
        println!(
            "| {model} | {rate:.0} | {:.0} us | {:.0} us | {:.0} us | {:+.0} us | {:.0} us |",
            run * 1e6,
            server * 1e6,
            client * 1e6,
            (client - run) * 1e6,
            bare * 1e6
        );
    }
    println!();
}

fn main() -> Result<()> {
    let o = Options::parse()?;
    // An empty tree: the host board with no clock knobs, only the batch.
    let sysfs = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bench = Instant::now();
    println!(
        "serve vs run, batch 16 (fixed:max, host board), {} s per measurement\n",
        o.seconds
    );

    let mut throughput = Vec::new();
    let mut latency = Vec::new();
    for model in &o.models {
        let serve = serve_capacity(&runtime, model, sysfs.path(), o.seconds, false)?;
        let binary = serve_capacity(&runtime, model, sysfs.path(), o.seconds, true)?;
        eprintln!(
            "{model}: serve saturated: {serve:.0} samples/s ({binary:.0} with binary outputs)"
        );
        let run = run_capacity(model, sysfs.path(), o.seconds, 8.0 * serve)?;
        eprintln!("{model}: run saturated: {run:.0} samples/s");
        throughput.push((model, run, serve, binary));
        // Below both capacities: an open loop past serve's would only
        // measure its queue growing.
        let rate = o.load * run.min(serve);
        let [run_p50, client_p50, server_p50, bare_p50] =
            latencies(&runtime, model, sysfs.path(), rate, o.seconds)?;
        eprintln!(
            "{model}: p50 at {rate:.0}/s: run {run_p50:.6} s, serve {client_p50:.6} s (server {server_p50:.6} s)"
        );
        latency.push((model, rate, run_p50, server_p50, client_p50, bare_p50));
    }

    if !o.models.is_empty() {
        print_tables(&throughput, &latency);
    }

    let (warmup, before, after, took) = memory(&runtime, sysfs.path(), o.requests)?;
    println!(
        "| mlp requests | VmRSS after {warmup} | VmRSS at end | growth (goal < 10 MB) | took |"
    );
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.1} MiB | {:.1} MiB | {:+.2} MiB | {:.1} s ({:.0} req/s) |",
        o.requests,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after as f64 - before as f64) / 1024.0,
        took.as_secs_f64(),
        o.requests as f64 / took.as_secs_f64()
    );
    println!("\nbench took {:.0} s", bench.elapsed().as_secs_f64());
    Ok(())
}
