"""End-to-end tests of `ecoedge serve` (KServe v2 / Open Inference Protocol REST).

What is tested, against the real binary on 127.0.0.1 (ephemeral ports, the host
board on an empty sysfs root, so the batch size is the only knob):

- outputs: Triton's official HTTP client (`tritonclient.http`) with JSON and with
  binary tensors, several batch sizes per request (1 to more than --max-batch),
  on the generated MLP, on bert-tiny (two INT64 inputs, two outputs) and on an
  ONNX file given by path; every output equals onnxruntime's on the same inputs;
  model metadata equals onnxruntime's session; server metadata and health;
- concurrency: 32 clients at once, each answer is the one of its own inputs;
- overload (`--queue 8`): 503s with a JSON error, and the refusals in the
  summary (samples) and in /metrics (requests) agree with what clients saw;
- shutdown under load (SIGTERM): every accepted request answered right, new
  ones refused, nothing pending, exit status 0;
- bad requests: a 400/404 with a JSON `error` for each malformed request,
  clients that send part of a body or nothing; the server answers afterwards;
- /metrics: parsed as OpenMetrics (the server's content type; prometheus_client's
  plain text parser misreads its counters), every metric present, counts equal
  to what the clients got and to the summary.

Units: the summary's `requests` counts samples (a request of shape [n, ...] is
n samples, the unit the controller batches) while /metrics'
`ecoedge_requests_total` counts HTTP requests.

Run (ECOEDGE_BIN names the binary; default target/debug/ecoedge of this repo):

    PY=$(bash .ci/pyenv.sh | tail -n1)
    ECOEDGE_BIN=target/debug/ecoedge "$PY" -m pytest tests/python/test_serve.py -q

Built-in models are generated into a per-session ECOEDGE_CACHE directory, and
those very files are onnxruntime's reference.
"""
from __future__ import annotations

import functools
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as tc
from prometheus_client.openmetrics.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("ECOEDGE_BIN", ROOT / "target" / "debug" / "ecoedge")).resolve()
BERT_VOCAB = 30_522  # models/src/bert.rs
RTOL, ATOL = 1e-4, 1e-6


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------

class Server:
    """One `ecoedge serve` process; stderr is drained by a thread."""

    def __init__(self, model: str, flags: list[str], cache: Path, sysfs: Path):
        self.model = model
        self.name = Path(model).stem if model.endswith(".onnx") else model
        env = dict(os.environ, ECOEDGE_CACHE=str(cache))
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--board", "host", "--sysfs-root", str(sysfs),
             "--model", model, "--listen", "127.0.0.1:0", "--json", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.stderr: list[str] = []
        self.port: int | None = None
        ready = threading.Event()

        def drain():
            for line in self.proc.stderr:
                self.stderr.append(line)
                m = re.search(r"serving (\S+) on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    assert m.group(1) == self.name, line
                    self.port = int(m.group(2))
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        ready.wait(180)
        assert self.port, f"the server did not say where it listens: {''.join(self.stderr)}"
        self.host = f"127.0.0.1:{self.port}"

    def client(self) -> tc.InferenceServerClient:
        return tc.InferenceServerClient(self.host, connection_timeout=60, network_timeout=60)

    def stop(self, timeout: float = 60) -> dict:
        """SIGTERM; the summary JSON once the process exited with status 0."""
        self.proc.send_signal(signal.SIGTERM)
        out = self.proc.stdout.read()
        rc = self.proc.wait(timeout=timeout)
        assert rc == 0, f"exit status {rc}: {''.join(self.stderr[-20:])}"
        return json.loads(out)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ecoedge-cache")


@pytest.fixture(scope="session")
def launch(tmp_path_factory, cache):
    """Factory: launch(model, *flags) -> a listening Server (killed at the end if left)."""
    assert BIN.is_file(), f"no binary at {BIN} (set ECOEDGE_BIN)"
    sysfs = tmp_path_factory.mktemp("sysfs")  # empty: no knobs but the batch size
    servers: list[Server] = []

    def start(model: str, *flags: str) -> Server:
        s = Server(model, list(flags), cache, sysfs)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.kill()


def model_file(cache: Path, name: str) -> Path:
    """The ONNX file the server generated for built-in `name`."""
    files = sorted(cache.glob(f"{name}-*.onnx"))
    assert len(files) == 1, files
    return files[0]


@functools.lru_cache(maxsize=None)
def session(path: str) -> ort.InferenceSession:
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def reference(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime's outputs, by name, for `feeds`."""
    s = session(str(path))
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, feeds)))


def make_inputs(model: str, n: int, seed: int) -> dict[str, np.ndarray]:
    """`n` samples of valid inputs; different seeds give different outputs."""
    rng = np.random.default_rng(seed)
    if model == "bert-tiny":
        ids = rng.integers(0, BERT_VOCAB, size=(n, 128), dtype=np.int64)
        lengths = rng.integers(1, 129, size=n)
        mask = (np.arange(128)[None, :] < lengths[:, None]).astype(np.int64)
        return {"input_ids": ids, "attention_mask": mask}
    return {"input": rng.standard_normal((n, 64), dtype=np.float32)}


def assert_close(got: np.ndarray, want: np.ndarray):
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def triton_infer(client, name, feeds, binary, request_id=None, outputs=None):
    inputs = []
    for k, v in feeds.items():
        i = tc.InferInput(k, list(v.shape), tc.np_to_triton_dtype(v.dtype))
        i.set_data_from_numpy(v, binary_data=binary)
        inputs.append(i)
    wanted = [tc.InferRequestedOutput(o, binary_data=binary) for o in outputs] if outputs else None
    return client.infer(name, inputs, outputs=wanted, request_id=request_id or "")


def raw(server: Server, method: str, path: str, body: bytes | None = None,
        headers: dict | None = None):
    """(status, parsed JSON body or None, raw body, headers) over a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        return r.status, doc, data, dict(r.getheaders())
    finally:
        c.close()


def json_infer_body(feeds: dict[str, np.ndarray], request_id: str | None = None) -> bytes:
    doc = {"inputs": [{"name": k, "shape": list(v.shape),
                       "datatype": tc.np_to_triton_dtype(v.dtype),
                       "data": v.ravel().tolist()} for k, v in feeds.items()]}
    if request_id is not None:
        doc["id"] = request_id
    return json.dumps(doc).encode()


def scrape(server: Server) -> dict:
    """/metrics as {family name: family}, parsed as OpenMetrics."""
    status, _, text, headers = raw(server, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("application/openmetrics-text")
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def requests_counted(families: dict, outcome: str) -> float:
    fam = families.get("ecoedge_requests")
    if fam is None:
        return 0
    return sum(s.value for s in fam.samples
               if s.name == "ecoedge_requests_total" and s.labels.get("outcome") == outcome)


def served_requests(server: Server) -> float:
    return requests_counted(scrape(server), "served")


# --------------------------------------------------------------------------
# Shared servers
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp(launch):
    s = launch("mlp")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bert(launch):
    s = launch("bert-tiny")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def by_path(launch, mlp, cache, tmp_path_factory):
    """The generated MLP, copied to mymodel.onnx and served by path (URL name `mymodel`)."""
    path = tmp_path_factory.mktemp("model") / "mymodel.onnx"
    shutil.copy(model_file(cache, "mlp"), path)
    s = launch(str(path))
    yield s
    s.stop()


def server_and_file(request, cache):
    """(server, model name for make_inputs, ONNX file) of a parametrized model."""
    kind = request.param
    s = request.getfixturevalue({"mlp": "mlp", "bert-tiny": "bert", "path": "by_path"}[kind])
    if kind == "path":
        return s, "mlp", Path(s.model)
    return s, kind, model_file(cache, kind)


@pytest.fixture(params=["mlp", "bert-tiny", "path"])
def served_model(request, cache):
    return server_and_file(request, cache)


# --------------------------------------------------------------------------
# 1. Outputs and metadata
# --------------------------------------------------------------------------

def test_model_metadata_equals_onnxruntime(served_model):
    server, _, path = served_model
    c = server.client()
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(server.name)
    md = c.get_model_metadata(server.name)
    assert md["name"] == server.name
    s = session(str(path))
    dtypes = {"tensor(float)": "FP32", "tensor(int64)": "INT64"}

    def specs(args):
        return [{"name": a.name, "datatype": dtypes[a.type],
                 "shape": [d if isinstance(d, int) else -1 for d in a.shape]} for a in args]

    def strip(items):
        return [{k: t[k] for k in ("name", "datatype", "shape")} for t in items]

    assert strip(md["inputs"]) == specs(s.get_inputs())
    assert strip(md["outputs"]) == specs(s.get_outputs())
    assert all(t["shape"][0] == -1 for t in md["inputs"] + md["outputs"])
    # The versioned route answers the same.
    status, doc, _, _ = raw(server, "GET", f"/v2/models/{server.name}/versions/1")
    assert status == 200 and doc["inputs"] == md["inputs"]


def test_server_metadata_and_health(mlp):
    c = mlp.client()
    md = c.get_server_metadata()
    version = subprocess.run([str(BIN), "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[-1]
    assert md["name"] == "ecoedge" and md["version"] == version
    assert "binary_tensor_data" in md["extensions"]
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("mlp") and not c.is_model_ready("nope")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_outputs_equal_onnxruntime(served_model, binary):
    server, kind, path = served_model
    c = server.client()
    sizes = [1, 3, 17] if kind == "bert-tiny" else [1, 3, 16, 40]  # --max-batch is 16
    for k, n in enumerate(sizes):
        feeds = make_inputs(kind, n, seed=100 + k)
        want = reference(path, feeds)
        rid = f"{kind}-{binary}-{n}"
        # Every output asked for by name, then none named (all of them, as JSON).
        r = triton_infer(c, server.name, feeds, binary, request_id=rid, outputs=list(want))
        resp = r.get_response()
        assert resp["id"] == rid and resp["model_name"] == server.name
        assert [o["name"] for o in resp["outputs"]] == list(want)
        for o in resp["outputs"]:
            assert ("parameters" in o and "binary_data_size" in o["parameters"]) == binary
        for name, ref in want.items():
            assert_close(r.as_numpy(name), ref)
    # One output only, by name: just that one comes back.
    last = list(want)[-1]
    r = triton_infer(c, server.name, feeds, binary, outputs=[last])
    assert [o["name"] for o in r.get_response()["outputs"]] == [last]
    assert_close(r.as_numpy(last), want[last])


def test_raw_json_request_without_outputs_gets_every_output(mlp, cache):
    """No `outputs` and no tritonclient: every output as JSON, `id` echoed."""
    feeds = make_inputs("mlp", 2, seed=7)
    status, doc, _, headers = raw(mlp, "POST", "/v2/models/mlp/infer",
                                  json_infer_body(feeds, "plain-7"))
    assert status == 200 and headers["content-type"] == "application/json"
    assert doc["id"] == "plain-7"
    want = reference(model_file(cache, "mlp"), feeds)
    assert [o["name"] for o in doc["outputs"]] == list(want)
    for o in doc["outputs"]:
        ref = want[o["name"]]
        assert o["shape"] == list(ref.shape) and o["datatype"] == "FP32"
        assert_close(np.array(o["data"], dtype=np.float32).reshape(o["shape"]), ref)


# --------------------------------------------------------------------------
# 2. Concurrency
# --------------------------------------------------------------------------

def test_32_concurrent_clients_each_get_their_own_outputs(mlp, cache):
    path = model_file(cache, "mlp")
    clients, each = 32, 20
    before = served_requests(mlp)
    go = threading.Barrier(clients)

    def client(k):
        c = mlp.client()  # its own connection
        go.wait()
        bad = []
        for i in range(each):
            feeds = make_inputs("mlp", 1 + (k + i) % 4, seed=10_000 * k + i)
            rid = f"c{k}-r{i}"
            r = triton_infer(c, "mlp", feeds, binary=(i % 2 == 1), request_id=rid)
            if r.get_response()["id"] != rid:
                bad.append((rid, "id", r.get_response()["id"]))
            got, want = r.as_numpy("gemm_7"), reference(path, feeds)["gemm_7"]
            if got.shape != want.shape or not np.allclose(got, want, rtol=RTOL, atol=ATOL):
                bad.append((rid, "outputs"))
        c.close()
        return bad

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    assert [b for r in results for b in r] == []
    # Each request answered once: the server counted exactly these.
    assert served_requests(mlp) - before == clients * each


# --------------------------------------------------------------------------
# 3. Overload
# --------------------------------------------------------------------------

def test_overload_refuses_with_503_and_counts_agree(launch, cache):
    # A batch of 16 (fixed:max) never fills a queue of 8 samples, so partial
    # batches wait their 50 ms: a burst overflows the queue for certain.
    server = launch("mlp", "--queue", "8", "--optimizer", "fixed:max", "--max-wait", "50ms")
    path = model_file(cache, "mlp")
    threads, each = 16, 4

    def client(k):
        seen = []
        for i in range(each):
            n = 2 + (k + i) % 4  # 2..5 samples
            feeds = make_inputs("mlp", n, seed=20_000 * k + i)
            status, doc, _, _ = raw(server, "POST", "/v2/models/mlp/infer", json_infer_body(feeds))
            if status == 200:
                got = np.array(doc["outputs"][0]["data"], dtype=np.float32).reshape(doc["outputs"][0]["shape"])
                assert_close(got, reference(path, feeds)["gemm_7"])
            else:
                assert status == 503, (status, doc)
                assert isinstance(doc, dict) and "error" in doc and "queue" in doc["error"], doc
            seen.append((status, n))
        return seen

    with ThreadPoolExecutor(threads) as pool:
        seen = [x for r in pool.map(client, range(threads)) for x in r]
    # A request larger than the whole queue could never be queued: the
    # client's error (400, counted invalid), not a refusal to retry.
    status, doc, _, _ = raw(server, "POST", "/v2/models/mlp/infer",
                            json_infer_body(make_inputs("mlp", 9, seed=1)))
    assert status == 400 and "--queue 8" in doc["error"], doc

    ok = [n for s, n in seen if s == 200]
    refused = [n for s, n in seen if s == 503]
    assert ok and len(refused) > 1, seen
    fams = scrape(server)
    assert requests_counted(fams, "refused") == len(refused)
    assert requests_counted(fams, "served") == len(ok)
    assert requests_counted(fams, "invalid") == 1
    summary = server.stop()
    assert summary["requests"] == {"arrived": sum(ok) + sum(refused), "served": sum(ok),
                                   "failed": 0, "refused": sum(refused), "pending": 0}


# --------------------------------------------------------------------------
# 4. Shutdown under load
# --------------------------------------------------------------------------

def test_sigterm_under_load_answers_every_accepted_request(launch, cache):
    # Full batches only (fixed:max, no max wait): whatever is short of 16
    # samples waits until the drain, so requests are in flight at the signal.
    server = launch("mlp", "--optimizer", "fixed:max", "--max-wait", "none")
    path = model_file(cache, "mlp")
    signalled = threading.Event()
    closed = threading.Event()  # set once a fresh connection saw 503 or was refused
    log = []  # (started after the signal, ended after it, started after closed, outcome, samples)
    lock = threading.Lock()

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)  # keep-alive
        for i in range(200):
            n = 1 + (k + i) % 3
            feeds = make_inputs("mlp", n, seed=30_000 * k + i)
            started, started_closed = signalled.is_set(), closed.is_set()
            try:
                conn.request("POST", "/v2/models/mlp/infer", json_infer_body(feeds))
                r = conn.getresponse()
                status, body = r.status, r.read()
            except (http.client.HTTPException, OSError) as e:
                outcome = f"connection: {type(e).__name__}"
            else:
                doc = json.loads(body)
                if status == 200:
                    out = doc["outputs"][0]
                    got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
                    want = reference(path, feeds)["gemm_7"]
                    right = got.shape == want.shape and np.allclose(got, want, rtol=RTOL, atol=ATOL)
                    outcome = "200" if right else "200 wrong outputs"
                elif status == 503 and "error" in doc:
                    outcome = "503"
                else:
                    outcome = f"{status} {doc}"
            with lock:
                log.append((started, signalled.is_set(), started_closed, outcome, n))
            if outcome != "200":
                break
        conn.close()

    pool = ThreadPoolExecutor(12)
    futures = [pool.submit(client, k) for k in range(12)]
    time.sleep(1.0)
    signalled.set()
    server.proc.send_signal(signal.SIGTERM)
    # Probe with fresh connections until the server refuses.
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if raw(server, "GET", "/v2/health/ready")[0] == 503:
                break
        except OSError:
            break
        time.sleep(0.01)
    closed.set()
    # Requests sent from now on are refused (503 or no connection).
    for seed in range(3):
        try:
            status, doc, _, _ = raw(server, "POST", "/v2/models/mlp/infer",
                                    json_infer_body(make_inputs("mlp", 1, seed)))
            assert status == 503 and "error" in doc, (status, doc)
        except OSError:
            pass
    for f in futures:
        f.result(timeout=60)
    pool.shutdown()
    out = server.proc.stdout.read()
    assert server.proc.wait(timeout=60) == 0
    summary = json.loads(out)

    outcomes = {x[3] for x in log}
    assert outcomes <= {"200", "503"} | {o for o in outcomes if o.startswith("connection")}, log
    # Before the signal everything is served (the default queue never fills here).
    assert all(x[3] == "200" for x in log if not x[1]), log
    assert not [x for x in log if x[2] and x[3] == "200"], "served after the server refused"
    # Some request waited over the signal and was still answered.
    assert [x for x in log if not x[0] and x[1] and x[3] == "200"], log
    # Every accepted (queued) sample was answered to its client, and every
    # sample refused while closing is counted as refused: clients got 200s
    # for exactly the served samples and 503s for the refused ones (the
    # probes above are refused too, or find no listener).
    served_samples = sum(x[4] for x in log if x[3] == "200")
    refused_samples = sum(x[4] for x in log if x[3] == "503")
    r = summary["requests"]
    assert (r["served"], r["pending"]) == (served_samples, 0), (r, log)
    assert refused_samples <= r["refused"] <= refused_samples + 3, (r, log)
    assert r["arrived"] == r["served"] + r["refused"]


# --------------------------------------------------------------------------
# 5. Bad requests
# --------------------------------------------------------------------------

def mlp_body(**change) -> bytes:
    doc = {"name": "input", "shape": [2, 64], "datatype": "FP32", "data": [0.5] * 128}
    doc.update(change)
    return json.dumps({"inputs": [doc]}).encode()


BAD_REQUESTS = {
    "malformed json": (b'{"inputs": [', {}, "malformed"),
    "not an object": (b"[1, 2]", {}, "malformed"),
    "unknown input": (mlp_body(name="x"), {}, "unknown input `x`"),
    "wrong datatype": (mlp_body(datatype="INT32", data=[1] * 128), {}, "datatype INT32"),
    "unknown datatype": (mlp_body(datatype="BYTES"), {}, "unknown datatype"),
    "wrong sample shape": (mlp_body(shape=[2, 32]), {}, "shape"),
    "zero samples": (mlp_body(shape=[0, 64], data=[]), {}, "N >= 1"),
    "too few elements": (mlp_body(data=[0.5] * 127), {}, "127 elements"),
    "too many elements": (mlp_body(data=[0.5] * 129), {}, "more than"),
    "not numbers": (mlp_body(data=["a"] * 128), {}, "not a number"),
    "missing input": (b'{"inputs": []}', {}, "missing input `input`"),
    "unknown output": (json.dumps({"inputs": json.loads(mlp_body())["inputs"],
                                   "outputs": [{"name": "nope"}]}).encode(), {}, "unknown output"),
    "header length not a number": (mlp_body(), {"Inference-Header-Content-Length": "abc"},
                                   "Inference-Header-Content-Length"),
    "header length past the body": (mlp_body(), {"Inference-Header-Content-Length": "999999"},
                                    "past the body"),
    "binary size wrong": (mlp_body(parameters={"binary_data_size": 16}, data=None)
                          + b"\0" * 16, None, "binary_data_size"),
    "binary bytes missing": (mlp_body(parameters={"binary_data_size": 512}, data=None),
                             None, "left in the body"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_is_400_with_json_error(mlp, case):
    body, headers, says = BAD_REQUESTS[case]
    if headers is None:  # binary: the JSON head is the body minus its tail
        head = body.rstrip(b"\0")
        headers = {"Inference-Header-Content-Length": str(len(head))}
    status, doc, raw_body, h = raw(mlp, "POST", "/v2/models/mlp/infer", body,
                                   {"Content-Type": "application/json", **headers})
    assert status == 400, (status, raw_body)
    assert h["content-type"] == "application/json"
    assert isinstance(doc, dict) and says in doc["error"], doc
    assert_still_serves(mlp)


def assert_still_serves(server: Server):
    status, doc, _, _ = raw(server, "POST", f"/v2/models/{server.name}/infer",
                            json_infer_body(make_inputs("mlp", 1, seed=3)))
    assert status == 200 and doc["outputs"][0]["shape"] == [1, 10]


@pytest.mark.parametrize("method,path", [
    ("GET", "/v2/models/nope"),
    ("GET", "/v2/models/nope/versions/1"),
    ("GET", "/v2/models/nope/ready"),
    ("POST", "/v2/models/nope/infer"),
    ("POST", "/v2/models/nope/versions/1/infer"),
    ("GET", "/v3/nothing"),
    ("GET", "/"),
])
def test_unknown_model_or_route_is_404_with_json_error(mlp, method, path):
    body = json_infer_body(make_inputs("mlp", 1, seed=3)) if method == "POST" else None
    status, doc, raw_body, _ = raw(mlp, method, path, body)
    assert status == 404, (status, raw_body)
    assert isinstance(doc, dict) and "error" in doc, raw_body
    if "models/nope" in path:
        assert "nope" in doc["error"] and "mlp" in doc["error"]
    assert_still_serves(mlp)


def test_body_over_max_body_is_400(launch):
    server = launch("mlp", "--max-body", "4KiB")
    small = json_infer_body(make_inputs("mlp", 1, seed=1))
    big = json_infer_body(make_inputs("mlp", 16, seed=1))
    assert len(small) < 4096 < len(big)
    status, doc, _, _ = raw(server, "POST", "/v2/models/mlp/infer", big)
    assert status == 400 and "--max-body" in doc["error"], doc
    # Chunked (no Content-Length): the limit holds too.
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    c.request("POST", "/v2/models/mlp/infer", body=iter([big[:3000], big[3000:]]),
              encode_chunked=True)
    r = c.getresponse()
    assert r.status == 400 and "error" in json.loads(r.read())
    c.close()
    status, _, _, _ = raw(server, "POST", "/v2/models/mlp/infer", small)
    assert status == 200
    assert server.stop()["requests"]["served"] == 1


def test_half_sent_body_and_silent_client_do_not_stop_the_server(mlp):
    # Headers announce 100000 bytes, 100 come, then the client goes away.
    s = socket.create_connection(("127.0.0.1", mlp.port), timeout=10)
    s.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + b"{" * 100)
    time.sleep(0.2)
    s.close()
    assert_still_serves(mlp)
    # Connects and says nothing, while others are served; then goes away.
    silent = [socket.create_connection(("127.0.0.1", mlp.port), timeout=10) for _ in range(4)]
    # Half a body and then waiting (no close): others are served meanwhile.
    slow = socket.create_connection(("127.0.0.1", mlp.port), timeout=10)
    slow.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
    for _ in range(5):
        assert_still_serves(mlp)
    for sock in silent + [slow]:
        sock.close()
    assert_still_serves(mlp)


# --------------------------------------------------------------------------
# 6. /metrics
# --------------------------------------------------------------------------

METRICS = {  # family name (OpenMetrics) -> type
    "ecoedge_requests": "counter",
    "ecoedge_request_latency_seconds": "histogram",
    "ecoedge_batch_size": "histogram",
    "ecoedge_queue_depth": "gauge",
    "ecoedge_energy_joules": "counter",
    "ecoedge_power_watts": "gauge",
    "ecoedge_energy_per_request_joules": "gauge",
    "ecoedge_cpu_frequency_hertz": "gauge",
    "ecoedge_gpu_frequency_hertz": "gauge",
    "ecoedge_memory_frequency_hertz": "gauge",
    "ecoedge_batch_size_setting": "gauge",
    "ecoedge_window_cost": "gauge",
    "ecoedge_windows": "counter",
    "ecoedge_build": "info",
}


def sample(fams, family, name=None, **labels):
    got = [s.value for s in fams[family].samples
           if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(got) == 1, (family, name, labels, fams[family].samples)
    return got[0]


def test_metrics_count_what_clients_got_and_agree_with_the_summary(launch):
    server = launch("mlp", "--window", "20", "--warmup", "5")
    fams = scrape(server)
    assert requests_counted(fams, "served") == 0
    c = server.client()
    samples = [1 + i % 5 for i in range(40)]  # 120 samples in 40 requests
    for i, n in enumerate(samples):
        r = triton_infer(c, "mlp", make_inputs("mlp", n, seed=40_000 + i), binary=bool(i % 2))
        assert r.as_numpy("gemm_7").shape == (n, 10)
    fams = scrape(server)
    assert set(METRICS) <= set(fams), set(METRICS) - set(fams)
    for name, kind in METRICS.items():
        assert fams[name].type == kind, (name, fams[name].type)
    assert sample(fams, "ecoedge_build", "ecoedge_build_info", model="mlp", board="host") == 1
    assert requests_counted(fams, "served") == len(samples)
    assert requests_counted(fams, "refused") == 0
    assert requests_counted(fams, "failed") == 0
    lat = "ecoedge_request_latency_seconds"
    assert sample(fams, lat, lat + "_count") == len(samples)
    assert sample(fams, lat, lat + "_bucket", le="+Inf") == len(samples)
    assert sample(fams, lat, lat + "_sum") > 0
    # Every sample goes through exactly one batch of at most --max-batch.
    bs = "ecoedge_batch_size"
    assert sample(fams, bs, bs + "_sum") == sum(samples)
    assert sample(fams, bs, bs + "_bucket", le="16.0") == sample(fams, bs, bs + "_count")
    assert sample(fams, "ecoedge_queue_depth") == 0
    assert 1 <= sample(fams, "ecoedge_batch_size_setting") <= 16
    assert sample(fams, "ecoedge_energy_joules", "ecoedge_energy_joules_total") > 0
    windows = sample(fams, "ecoedge_windows", "ecoedge_windows_total")
    assert windows >= 1  # 120 samples, windows of 20 after 5 of warm-up
    assert sample(fams, "ecoedge_window_cost") > 0
    assert sample(fams, "ecoedge_energy_per_request_joules") > 0
    assert sample(fams, "ecoedge_cpu_frequency_hertz") == 0  # not a knob of this host

    summary = server.stop()
    assert summary["requests"] == {"arrived": sum(samples), "served": sum(samples),
                                   "failed": 0, "refused": 0, "pending": 0}
    assert summary["windows"] == windows
    assert summary["model"] == "mlp" and summary["board"] == "host"


def test_request_counter_exports_every_outcome_from_the_start(launch):
    """Each outcome's series exists (at 0) before its first event, so rate() and alerts see it."""
    server = launch("mlp")
    fams = scrape(server)
    assert "ecoedge_requests" in fams
    for outcome in ("served", "refused", "failed", "invalid"):
        assert sample(fams, "ecoedge_requests", "ecoedge_requests_total", outcome=outcome) == 0
    server.stop()


def test_out_of_range_token_id_fails_only_its_own_request(launch, cache):
    """A token id past the vocabulary panics tract's Gather: the batch is rerun
    sample by sample, so only the bad request fails (500, counted) and its
    batch-mate is answered."""
    # Both requests land in one batch: batch 16, partial batches wait 300 ms.
    server = launch("bert-tiny", "--optimizer", "fixed:max", "--max-wait", "300ms")
    good = make_inputs("bert-tiny", 1, seed=5)
    bad = {k: v.copy() for k, v in good.items()}
    bad["input_ids"][0, 3] = BERT_VOCAB + 70_000
    want = reference(model_file(cache, "bert-tiny"), good)["tanh_143"]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(
            lambda f: raw(server, "POST", "/v2/models/bert-tiny/infer", json_infer_body(f)),
            [good, bad]))
    (s_good, d_good, _, _), (s_bad, d_bad, _, _) = answers
    assert s_bad in (400, 500) and "error" in d_bad, (s_bad, d_bad)
    assert s_good == 200, (s_good, d_good)
    out = {o["name"]: o for o in d_good["outputs"]}["tanh_143"]
    assert_close(np.array(out["data"], dtype=np.float32).reshape(out["shape"]), want)
    status, _, _, _ = raw(server, "POST", "/v2/models/bert-tiny/infer", json_infer_body(good))
    assert status == 200
    assert requests_counted(scrape(server), "failed") == 1
    r = server.stop()["requests"]
    assert (r["served"], r["failed"], r["pending"]) == (2, 1, 0), r
    assert r["arrived"] == r["served"] + r["failed"] + r["refused"]


def test_binary_data_output_parameter_and_per_output_override(mlp, cache):
    """`binary_data_output: true` sends every output as bytes unless an output says otherwise."""
    feeds = make_inputs("mlp", 3, seed=9)
    want = reference(model_file(cache, "mlp"), feeds)["gemm_7"]
    doc = json.loads(json_infer_body(feeds))
    doc["parameters"] = {"binary_data_output": True}
    status, head, body, headers = raw(mlp, "POST", "/v2/models/mlp/infer", json.dumps(doc).encode())
    assert status == 200
    n = int(headers["inference-header-content-length"])
    head = json.loads(body[:n])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == len(body) - n == want.nbytes
    assert_close(np.frombuffer(body[n:], dtype="<f4").reshape(head["outputs"][0]["shape"]), want)
    doc["outputs"] = [{"name": "gemm_7", "parameters": {"binary_data": False}}]
    status, head, _, headers = raw(mlp, "POST", "/v2/models/mlp/infer", json.dumps(doc).encode())
    assert status == 200 and "inference-header-content-length" not in headers
    assert_close(np.array(head["outputs"][0]["data"], dtype=np.float32).reshape(3, 10), want)


def test_sigint_stops_like_sigterm(launch):
    server = launch("mlp")
    assert_still_serves(server)
    server.proc.send_signal(signal.SIGINT)
    out = server.proc.stdout.read()
    assert server.proc.wait(timeout=60) == 0
    assert json.loads(out)["requests"] == {"arrived": 1, "served": 1, "failed": 0, "refused": 0, "pending": 0}


def test_body_sent_too_slowly_is_408(launch):
    """The server waits --client-timeout for a body, then answers 408 with a JSON error."""
    mlp = launch("mlp", "--client-timeout", "2s")
    s = socket.create_connection(("127.0.0.1", mlp.port), timeout=60)
    s.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    started = time.time()
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    s.close()
    assert 1.5 < time.time() - started < 15
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert "error" in json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert_still_serves(mlp)


def test_logs_stream_while_serving(launch, tmp_path):
    """requests.csv and windows.csv grow while the server runs (flushed within
    about a second), so a crash loses at most the last second; summary.json
    comes at the end."""
    logs = tmp_path / "logs"
    server = launch("mlp", "--log-dir", str(logs), "--window", "16", "--warmup", "2")
    for seed in range(25):
        status, _, _, _ = raw(server, "POST", "/v2/models/mlp/infer",
                              json_infer_body(make_inputs("mlp", 2, seed)))
        assert status == 200

    def rows(name):
        path = logs / name
        return path.read_text().count("\n") - 1 if path.exists() else -1

    deadline = time.time() + 5
    while time.time() < deadline and (rows("requests.csv") < 50 or rows("windows.csv") < 1):
        time.sleep(0.1)
    assert rows("requests.csv") == 50, "requests.csv: every served sample, while serving"
    assert rows("windows.csv") >= 1
    assert (logs / "summary.json").read_text() == "", "the summary comes at the end"
    summary = server.stop()
    assert json.loads((logs / "summary.json").read_text()) == summary
    assert rows("requests.csv") == summary["requests"]["served"] == 50
    assert rows("windows.csv") == summary["windows"]


def test_silent_and_idle_connections_are_closed_after_the_client_timeout(launch):
    """A client that sends nothing, or keeps an idle keep-alive connection, is
    disconnected after --client-timeout, so such clients cannot pile up."""
    server = launch("mlp", "--client-timeout", "2s")
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    idle.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(4096).startswith(b"HTTP/1.1 200")
    started = time.time()
    for s in (silent, idle):
        assert s.recv(4096) == b"", "the server closes the connection"
        s.close()
    assert 1.5 < time.time() - started < 15
    assert_still_serves(server)
