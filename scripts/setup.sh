#!/usr/bin/env bash
# Creates .venv and installs jointportrait with the pinned stack.
# torch stays at the 2.13.0 CPU build through constraints.txt (an unpinned torch
# pulls several GB of CUDA wheels). The `faces` extra (dlib) is optional for users;
# the tests and CI use it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
export PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
.venv/bin/python -m pip install -q -e ".[dev,serve,faces]"
