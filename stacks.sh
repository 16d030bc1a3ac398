#!/usr/bin/env bash
# Sourced by run.sh and test.sh: one virtual environment per stack.
#   today: TensorFlow 2.21 (Keras 3, or tf_keras with TF_USE_LEGACY_KERAS=1)
#          on the machine's python3, in .venv
#   task:  the task's grading stack, Python 3.8 with TensorFlow 2.6.5 and
#          numpy 1.19.2, in .venv-task
# stack_python STACK REQUIREMENTS prints the environment's python, after
# creating it (once) and installing REQUIREMENTS into it.

# Print a Python 3.8 interpreter that runs (python3.8 on PATH, else
# pyenv's; pyenv's python3.8 shim fails unless 3.8 is selected), or nothing.
find_python38() {
    local candidate
    for candidate in "$(command -v python3.8)" \
            "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.8*/bin/python3.8; do
        if [ -n "$candidate" ] && "$candidate" -c '' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
}

stack_python() {
    local stack=$1 requirements=$2 venv base
    case "$stack" in
        today) venv=.venv base=python3 ;;
        task) venv=.venv-task base=$(find_python38) ;;
        *) echo "unknown stack $stack (today or task)" >&2; return 1 ;;
    esac
    if [ ! -x "$venv/bin/python" ]; then
        [ -n "$base" ] || { echo "no Python 3.8 found" >&2; return 1; }
        "$base" -m venv "$venv" >&2 || { rm -rf "$venv"; return 1; }
    fi
    "$venv/bin/python" -m pip install -q -r "$requirements" >&2 || return 1
    echo "$venv/bin/python"
}
