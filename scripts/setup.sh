#!/usr/bin/env bash
# One command that installs tmkt and its test tools into ./.venv on a fresh machine.
# torch is pinned first so that no CUDA build is pulled; spikingjelly and tonic are test-only
# oracles installed without their (broken here / heavy) declared dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-dev.txt
.venv/bin/python -m pip install -q --no-deps -r requirements-oracles.txt
.venv/bin/python -c "import tmkt, torch; print('tmkt', tmkt.__version__, 'torch', torch.__version__)"
