#!/usr/bin/env bash
# Set up a virtual environment (once) and run the main job:
#   ./run.sh [options of 0-transfer.py]
# Offline, point it at local data and weights, e.g.
#   ./run.sh --data-dir ../shared/cifar-10-batches-py \
#       --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r requirements.txt
exec .venv/bin/python 0-transfer.py "$@"
