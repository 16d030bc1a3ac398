#!/usr/bin/env bash
# Set up a virtual environment with the dev requirements (once) and run the
# test suite on Keras 3 (the default) and again on Keras 2 (tf_keras).
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r requirements-dev.txt
echo "== Keras 3 =="
.venv/bin/python -m pytest -q tests "$@"
echo "== Keras 2 (TF_USE_LEGACY_KERAS=1) =="
TF_USE_LEGACY_KERAS=1 .venv/bin/python -m pytest -q tests "$@"
