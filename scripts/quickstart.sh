#!/usr/bin/env bash
# The main job: set up .venv, then train on a scene, save a model bundle, predict a scene with
# dask and write Zarr and COG (see geoxr/quickstart.py). glibc's malloc is set up for torch on
# CPU first (geoxr.TORCH_CPU_MALLOC_ENV; settings already in the environment are kept).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
eval "$(.venv/bin/python -c 'import geoxr; print(geoxr.learn.cpu_malloc.shell_exports())')"
.venv/bin/python -m geoxr.quickstart "$@"
