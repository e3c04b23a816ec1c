#!/usr/bin/env bash
# Set up geoxr in ./.venv on a fresh machine: torch first (CPU wheel), then geoxr and its dev tools.
# Installing torch first and alone keeps pip from pulling a second (CUDA) torch.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="${GEOXR_TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION}"
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"
# Check that nothing replaced the torch installed above.
.venv/bin/python - <<'PY'
import torch
print(f"geoxr environment ready: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
PY
