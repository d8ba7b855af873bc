#!/usr/bin/env bash
# On a GPU machine: one generation of the Colorized MNIST config at full MNIST size in bf16; prints images/s per
# stage and the projected time of the paper's protocol (10 generations x 5 classifiers x 3 seeds).
#   bash benchmarks/gpu_check.sh [extra cli.py overrides, e.g. --data.batch_size 256]
# Assumes MNIST in torchvision's layout under data/MNIST (override the root with
# --data.source.init_args.root DIR). CONFIG=path picks another config (default: configs/colored_mnist.yaml,
# else configs/quickstart.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU on this machine: skipped"
  exit 0
fi
CONFIG="${CONFIG:-configs/colored_mnist.yaml}"
[ -f "$CONFIG" ] || CONFIG=configs/quickstart.yaml
ROOT=data
for ((i = 1; i <= $#; i++)); do
  if [ "${!i}" = "--data.source.init_args.root" ]; then j=$((i + 1)); ROOT="${!j}"; fi
done
if [ ! -d "$ROOT/MNIST" ]; then
  echo "gpu_check: MNIST not found at $ROOT/MNIST (torchvision layout: $ROOT/MNIST/raw/*-ubyte):"
  echo "  copy it there or pass --data.source.init_args.root DIR"
  exit 2
fi
exec "$PYTHON" benchmarks/gpu_check.py --config "$CONFIG" --json benchmarks/gpu_check.jsonl -- \
  --trainer.accelerator gpu --trainer.devices 1 --trainer.precision bf16-mixed --loop.generations 1 \
  --data.source.init_args.source torchvision --data.source.init_args.root data \
  --data.source.init_args.max_train_samples null "$@"
