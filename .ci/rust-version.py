#!/usr/bin/env python3
"""Checks that the workspace's `rust-version` is the highest any dependency
declares, so the README's minimum Rust is the one that really builds.

Reads `cargo metadata` (every package of the resolved graph, build and dev
dependencies included) and fails naming the packages that need more than the
workspace says, or says less than the highest need (the claim would be stale
upwards too).
"""
import json
import subprocess
import sys


def version(v):
    parts = [int(p) for p in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
members = set(meta["workspace_members"])
ours = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
if len(ours) != 1 or None in ours:
    sys.exit(f"rust-version: workspace members disagree or lack it: {sorted(map(str, ours))}")
ours = ours.pop()
needs = [
    (version(p["rust_version"]), p["name"], p["version"])
    for p in meta["packages"]
    if p["id"] not in members and p.get("rust_version")
]
top = max(needs)[0]
highest = sorted({f"{n} {v} ({'.'.join(map(str, r))})" for r, n, v in needs if r == top})
if version(ours) != top:
    sys.exit(
        f"rust-version: the workspace says {ours}, the dependencies need "
        f"{'.'.join(map(str, top))}: {', '.join(highest)}"
    )
print(f"rust-version {ours}: the highest any dependency needs ({', '.join(highest)})")
