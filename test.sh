#!/usr/bin/env bash
# Run the test suite on each stack the script supports, each in its own
# virtual environment (set up once):
#   1. TensorFlow 2.21 with Keras 3,
#   2. the same with tf_keras (Keras 2, TF_USE_LEGACY_KERAS=1),
#   3. the task's stack: Python 3.8, TensorFlow 2.6.5, numpy 1.19.2.
# The third needs a Python 3.8 (python3.8 on PATH or pyenv's); without one
# it is skipped with a message, except under CI=true, where that fails.
set -euo pipefail
cd "$(dirname "$0")"
source stacks.sh
task_stack=yes
if [ -z "$(find_python38)" ] && [ ! -x .venv-task/bin/python ]; then
    [ "${CI:-}" != true ] || { echo "CI needs Python 3.8 for the task's stack" >&2; exit 1; }
    task_stack=
fi
python=$(stack_python today requirements-dev.txt)
echo "== Keras 3 (TensorFlow 2.21) =="
"$python" -m pytest -q tests "$@"
echo "== Keras 2 (TensorFlow 2.21, TF_USE_LEGACY_KERAS=1) =="
TF_USE_LEGACY_KERAS=1 "$python" -m pytest -q tests "$@"
echo "== the task's stack (Python 3.8, TensorFlow 2.6.5) =="
if [ -z "$task_stack" ]; then
    echo "skipped: no Python 3.8 on this machine (python3.8 or pyenv's)"
    exit 0
fi
python=$(stack_python task requirements-task-dev.txt)
"$python" -m pytest -q tests "$@"
