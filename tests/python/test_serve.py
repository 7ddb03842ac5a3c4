"""`ecoedge serve` against Triton's official HTTP client and onnxruntime.

ECOEDGE_BIN names the binary (CI: target/debug/ecoedge). Each test starts
the server on an ephemeral port of 127.0.0.1 on the generated MLP, with an
empty sysfs root (the host board, batch knob only), and stops it with SIGTERM.
"""
import glob
import os
import re
import signal
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as http

BIN = os.environ.get("ECOEDGE_BIN", "target/debug/ecoedge")


@pytest.fixture()
def server():
    root = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [BIN, "serve", "--board", "host", "--sysfs-root", root, "--model", "mlp",
         "--listen", "127.0.0.1:0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.time() + 120
    while port is None and time.time() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"serving \S+ on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
    assert port, "the server did not say where it listens"
    yield proc, port
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def reference(x):
    path = glob.glob(os.path.expanduser("~/.cache/ecoedge/mlp-*.onnx"))
    session = ort.InferenceSession(path[0])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("binary", [False, True])
def test_outputs_equal_onnxruntime(server, binary):
    _, port = server
    c = http.InferenceServerClient(f"127.0.0.1:{port}")
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("mlp")
    md = c.get_model_metadata("mlp")
    assert md["inputs"][0]["shape"] == [-1, 64] and md["inputs"][0]["datatype"] == "FP32"
    out = md["outputs"][0]["name"]
    x = np.random.default_rng(1).random((3, 64), dtype=np.float32)
    i = http.InferInput("input", list(x.shape), "FP32")
    i.set_data_from_numpy(x, binary_data=binary)
    r = c.infer("mlp", [i], outputs=[http.InferRequestedOutput(out, binary_data=binary)],
                request_id="r1")
    assert r.get_response()["id"] == "r1"
    y = r.as_numpy(out)
    ref = reference(x)
    assert y.shape == ref.shape
    assert np.max(np.abs(y - ref) / (np.abs(ref) + 1e-6)) <= 1e-4


def test_sigterm_drains_and_prints_the_summary(server):
    proc, port = server
    c = http.InferenceServerClient(f"127.0.0.1:{port}")
    x = np.ones((1, 64), dtype=np.float32)
    i = http.InferInput("input", [1, 64], "FP32")
    i.set_data_from_numpy(x)
    for _ in range(5):
        c.infer("mlp", [i])
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    import json
    s = json.loads(out)
    assert s["requests"]["served"] == 5 and s["requests"]["pending"] == 0
