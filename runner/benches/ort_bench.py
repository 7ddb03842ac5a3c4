#!/usr/bin/env python3
"""onnxruntime as the peer of the tract figures: the same ONNX files, batch
sizes and thread counts as `cargo bench -p ecoedge-runner --bench inference`.

Reads that bench's `target/ecoedge-bench.json`, times each (model, threads,
batch) row under onnxruntime (intra-op threads = tract's thread count, one
inter-op thread, sequential execution, all graph optimisations; one warm-up,
then the median of as many runs as fit ECOEDGE_BENCH_SECONDS, at least 3) and
prints a markdown table with tract's time over onnxruntime's.

    pip install onnxruntime numpy
    python3 runner/benches/ort_bench.py [target/ecoedge-bench.json]
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


def model_file(name):
    files = sorted(glob.glob(os.path.join(cache_dir(), f"{name}-g*.onnx")))
    if not files:
        sys.exit(f"error: no cached {name} model in {cache_dir()}: run the tract bench first")
    return files[-1]


def inputs(session, batch):
    """The same inputs as the tract bench: features 0.5, ids below 1000, masks of ones."""
    feed = {}
    for i in session.get_inputs():
        shape = [batch] + [int(d) for d in i.shape[1:]]
        n = int(np.prod(shape))
        if i.type == "tensor(float)":
            feed[i.name] = np.full(shape, 0.5, dtype=np.float32)
        elif "mask" in i.name.lower():
            feed[i.name] = np.ones(shape, dtype=np.int64)
        else:
            feed[i.name] = ((np.arange(n, dtype=np.int64) * 7919) % 1000).reshape(shape)
    return feed


def median_s(run, budget):
    t = time.perf_counter()
    run()
    first = time.perf_counter() - t
    runs = min(200, max(3, int(budget / max(first, 1e-6))))
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "ecoedge-bench.json")
    with open(path) as f:
        rows = [r for r in json.load(f) if "batch" in r and "exact_ms" in r]
    budget = float(os.environ.get("ECOEDGE_BENCH_SECONDS", "3"))
    print(f"onnxruntime {ort.__version__}")
    print("| model | threads | batch | tract ms | onnxruntime ms | tract / ort |")
    print("|---|---|---|---|---|---|")
    sessions = {}
    for r in rows:
        key = (r["model"], r["threads"])
        if key not in sessions:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = r["threads"]
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sessions[key] = ort.InferenceSession(
                model_file(r["model"]), opts, providers=["CPUExecutionProvider"]
            )
        s = sessions[key]
        feed = inputs(s, r["batch"])
        ms = median_s(lambda: s.run(None, feed), budget) * 1e3
        tract = r["exact_ms"]
        print(f"| {r['model']} | {r['threads']} | {r['batch']} | {tract:.2f} | {ms:.2f} | {tract / ms:.2f} |")


if __name__ == "__main__":
    main()
