#!/usr/bin/env bash
# Create (or reuse) the Python test environment and print its interpreter's path.
#
#   PY=$(bash .ci/pyenv.sh | tail -n1)
#   "$PY" -m pytest tests/python
#
# - Location: target/pyenv, or $ECOEDGE_PYENV when set.
# - Interpreter used to create it: $ECOEDGE_PYTHON, else python3 on PATH (3.11 tested).
# - Packages: the pins in tests/python/requirements.txt, from PyPI only.
# - Idempotent: a stamp file inside the venv records the hash of the requirements
#   (and of this script) and the base interpreter's version; when they match,
#   nothing is installed and the script returns at once. When they differ, the
#   venv is rebuilt from scratch (a half-built venv from an interrupted run has no
#   stamp, so it is rebuilt too). A directory that is neither empty nor a venv is
#   never deleted: the script stops instead.
# - Progress goes to stderr; stdout is exactly one line: the venv's python path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${ECOEDGE_PYENV:-$root/target/pyenv}"
req="$root/tests/python/requirements.txt"
base_python="${ECOEDGE_PYTHON:-python3}"

if ! command -v "$base_python" >/dev/null 2>&1; then
  echo "pyenv.sh: no Python interpreter '$base_python' on PATH (set ECOEDGE_PYTHON)" >&2
  exit 1
fi

# What the venv was built from: the interpreter's version and machine, the pins,
# and this script.
key="$("$base_python" -c 'import sys, platform; print(sys.version.split()[0], platform.machine())') $(cat "$req" "$0" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.ecoedge-pyenv-stamp"
py="$venv/bin/python"

if [ -x "$py" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  echo "pyenv.sh: up to date: $venv" >&2
  echo "$py"
  exit 0
fi

if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv" 2>/dev/null)" ]; then
  echo "pyenv.sh: $venv exists and is not a virtual environment; not touching it" >&2
  exit 1
fi
start=$(date +%s)
echo "pyenv.sh: creating $venv with $("$base_python" --version 2>&1)" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$base_python" -m venv "$venv" >&2
# pip's output goes to stderr, so that stdout carries only the interpreter path.
# The venv's own pip (bundled with the interpreter) is used as it is: upgrading
# it would pull an unpinned version.
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
"$py" -m pip install --quiet --prefer-binary -r "$req" >&2
# Fail now, not in the middle of a test, if an import is broken.
"$py" -c 'import tritonclient.http, onnxruntime, numpy, prometheus_client, yaml, pytest' >&2
echo "$key" >"$stamp"
echo "pyenv.sh: ready in $(( $(date +%s) - start ))s: $venv" >&2
echo "$py"
