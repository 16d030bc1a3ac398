#!/usr/bin/env bash
# Set up a virtual environment (once) and run the main job:
#   ./run.sh [options of 0-transfer.py]
# on TensorFlow 2.21 with Keras 3; TF_USE_LEGACY_KERAS=1 ./run.sh ... runs
# it on tf_keras, and STACK=task ./run.sh ... on the task's grading stack
# (Python 3.8, TensorFlow 2.6.5, numpy 1.19.2).  Offline, point it at local
# data and weights, e.g.
#   ./run.sh --data-dir ../shared/cifar-10-batches-py \
#       --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
set -euo pipefail
cd "$(dirname "$0")"
source stacks.sh
stack=${STACK:-today}
requirements=requirements.txt
[ "$stack" != task ] || requirements=requirements-task.txt
python=$(stack_python "$stack" "$requirements")
exec "$python" 0-transfer.py "$@"
