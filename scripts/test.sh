#!/usr/bin/env bash
# Run geoxr's whole test suite (doctests included) and lint, after setting up .venv.
# Real test data is read from $GEOXR_DATA (default: ../shared/data beside the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check geoxr tests benchmarks properties
.venv/bin/ruff format --check geoxr tests benchmarks properties
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
