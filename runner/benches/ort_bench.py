#!/usr/bin/env python3
"""onnxruntime's Python API as the peer of the Rust figures: the same ONNX
files, inputs, batch sizes and thread counts as the Rust bench whose JSON it
reads:

- `target/ecoedge-engines.json` (`cargo bench -p ecoedge-runner --bench
  engines`, the default): the ort engine and tract against onnxruntime Python;
- `target/ecoedge-bench.json` (`--bench inference`): tract's exact plans
  against onnxruntime Python.

Each (model, threads, batch) row is timed under onnxruntime (intra-op threads =
the row's thread count, one inter-op thread, sequential execution, all graph
optimisations, CPU provider; one warm-up, then as many runs as fit
ECOEDGE_BENCH_SECONDS, at least 3; the fastest run for the engines bench, as it
reports, the median for the inference bench) and a markdown table gives the ratios.

    bash .ci/pyenv.sh   # target/pyenv: onnxruntime and numpy from PyPI
    target/pyenv/bin/python runner/benches/ort_bench.py [JSON]

With `--worker` it reads `FILE THREADS BATCH SECONDS` lines on stdin and
answers each with the fastest run's milliseconds: the engines bench drives it
to time onnxruntime Python in turns with its own engines, so both see the same
load on a shared machine.
"""
import glob
import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort


def cache_dir():
    for var, sub in (("ECOEDGE_CACHE", ""), ("XDG_CACHE_HOME", "ecoedge")):
        if os.environ.get(var):
            return os.path.join(os.environ[var], sub)
    return os.path.join(os.path.expanduser("~"), ".cache", "ecoedge")


def model_file(row):
    if row.get("file"):
        return row["file"]
    name = row["model"]
    files = sorted(glob.glob(os.path.join(cache_dir(), f"{name}-g*.onnx")))
    if not files:
        sys.exit(f"error: no cached {name} model in {cache_dir()}: run the Rust bench first")
    return files[-1]


def inputs(session, batch):
    """The same inputs as the Rust benches (runner/benches/common/mod.rs):
    features 0.5, token ids (i * 7919) % 1000, masks of ones, token types of zeros."""
    feed = {}
    for i in session.get_inputs():
        shape = [batch] + [int(d) for d in i.shape[1:]]
        n = int(np.prod(shape))
        name = i.name.lower()
        if i.type == "tensor(float)":
            feed[i.name] = np.full(shape, 0.5, dtype=np.float32)
        elif "mask" in name:
            feed[i.name] = np.ones(shape, dtype=np.int64)
        elif "type" in name or "segment" in name:
            feed[i.name] = np.zeros(shape, dtype=np.int64)
        else:
            feed[i.name] = ((np.arange(n, dtype=np.int64) * 7919) % 1000).reshape(shape)
    return feed


def times_s(run, budget):
    """Seconds of each run after a warm-up, sorted: as many as fit the budget, 3 to 200."""
    t = time.perf_counter()
    run()
    first = time.perf_counter() - t
    runs = min(200, max(3, int(budget / max(first, 1e-6))))
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t)
    return sorted(samples)


def session(file, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(file, opts, providers=["CPUExecutionProvider"])


def worker():
    sessions = {}
    for line in sys.stdin:
        file, threads, batch, seconds = line.split()
        key = (file, int(threads))
        if key not in sessions:
            sessions[key] = session(file, int(threads))
        s = sessions[key]
        feed = inputs(s, int(batch))
        runs = times_s(lambda: s.run(None, feed), float(seconds))
        print(f"{runs[0] * 1e3:.6f}", flush=True)


def main():
    if sys.argv[1:] == ["--worker"]:
        return worker()
    default = os.path.join("target", "ecoedge-engines.json")
    path = sys.argv[1] if len(sys.argv) > 1 else default
    with open(path) as f:
        rows = [r for r in json.load(f) if "batch" in r]
    engines = bool(rows) and "ort_ms" in rows[0]
    budget = float(os.environ.get("ECOEDGE_BENCH_SECONDS", "3"))
    print(f"onnxruntime {ort.__version__} (Python), {path}")
    if engines:
        print("| model | threads | batch | onnxruntime Python ms | ort engine ms | ort / Python "
              "| ort per-batch ms | tract ms | tract / Python |")
        print("|---|---|---|---|---|---|---|---|---|")
    else:
        print("| model | threads | batch | tract ms | onnxruntime ms | tract / ort |")
        print("|---|---|---|---|---|---|")
    sessions = {}
    for r in rows:
        key = (r["model"], r["threads"])
        if key not in sessions:
            sessions[key] = session(model_file(r), r["threads"])
        s = sessions[key]
        feed = inputs(s, r["batch"])
        runs = times_s(lambda: s.run(None, feed), budget)
        # The engines bench reports its fastest run (least disturbed by other
        # load); the inference bench its median.
        ms = (runs[0] if engines else statistics.median(runs)) * 1e3
        if engines:
            print(f"| {r['model']} | {r['threads']} | {r['batch']} | {ms:.2f} | {r['ort_ms']:.2f} "
                  f"| {r['ort_ms'] / ms:.2f} | {r['ort_per_batch_ms']:.2f} | {r['tract_ms']:.2f} "
                  f"| {r['tract_ms'] / ms:.2f} |")
        else:
            tract = r["exact_ms"]
            print(f"| {r['model']} | {r['threads']} | {r['batch']} | {tract:.2f} | {ms:.2f} | {tract / ms:.2f} |")


if __name__ == "__main__":
    main()
