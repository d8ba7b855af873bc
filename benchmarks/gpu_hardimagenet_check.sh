#!/usr/bin/env bash
# On a GPU machine without internet: full-size Stable Diffusion 1.5 architecture (random weights) LoRA training
# steps/s, generated images/s and LoRA images/s with and without the latent cache in bf16, then the tiny Hard
# ImageNet loop on the GPU, classifiers one after another and side by side, and the protocol's projected hours.
# About 6-8 minutes (estimated; not yet run on a GPU).
#   bash benchmarks/gpu_hardimagenet_check.sh [--train-batch 4 --gen-batch 8 --steps 30]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python
export HF_HUB_OFFLINE=1
exec "$PYTHON" benchmarks/gpu_hardimagenet_check.py --json benchmarks/gpu_hardimagenet_check.jsonl "$@"
