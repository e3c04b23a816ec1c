#!/usr/bin/env bash
# The main job: set up .venv, then train on a scene and save a model bundle (see geoxr/quickstart.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m geoxr.quickstart "$@"
