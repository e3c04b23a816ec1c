#!/usr/bin/env bash
# Set up geoxr in ./.venv on a fresh machine: torch first (CPU wheel), then geoxr and its dev tools.
# Installing torch first and alone keeps pip from pulling a second (CUDA) torch.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="${GEOXR_TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3}"
# A fresh machine gains nothing from pip's wheel cache: it would only hold a second copy.
export PIP_NO_CACHE_DIR=1

# The environment takes about 1.8 GB (torch alone about 0.8 GB): warn before pip runs out midway.
free_kb=$(df -Pk . 2>/dev/null | awk 'NR == 2 {print $4}') || free_kb=""
if [ ! -x .venv/bin/python ] && [[ "$free_kb" =~ ^[0-9]+$ ]] && [ "$free_kb" -lt $((2048 * 1024)) ]; then
    echo "geoxr set-up: warning: only $((free_kb / 1024)) MB free where .venv goes;" \
        "the environment needs about 1.8 GB. If pip fails with 'No space left on device'," \
        "free some space and run this again." >&2
fi

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
