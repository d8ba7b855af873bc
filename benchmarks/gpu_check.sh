#!/usr/bin/env bash
# On a GPU machine: generation 0 and 1 of the Colorized MNIST and CIFAR-20 paper configs at full size in bf16 (and,
# with CHECKS including ddpm, the DDPM variant). Prints images/s per stage, the share of each classifier epoch spent
# outside the network's forward/backward, and the projected time of each paper protocol (10 generations x 5
# classifiers x 3 seeds); appends JSON lines to benchmarks/gpu_check.jsonl.
#   bash benchmarks/gpu_check.sh [extra cli.py overrides, e.g. --data.batch_size 512]
# Environment:
#   CHECKS="mnist cifar20"  which configs (mnist, cifar20, ddpm)
#   EPOCHS=3 GENERATOR_EPOCHS=2   epochs per model in the check (the projection scales to the configs' epochs)
#   DATA=data               where MNIST/raw and cifar-100-python are; when missing, full-size stand-ins are built in
#                           TIMING_DATA (default /tmp/genbias_timing_data): speed is real, accuracies are not
#   PAPER_WEIGHTS=1         keep the CLIP filter and the Inception FID (needs their local weights, docs/datasets.md); by default
#                           the MC-dropout filter and the classifier FID stand in for them
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU on this machine: skipped"
  exit 0
fi
CHECKS="${CHECKS:-mnist cifar20}"
DATA="${DATA:-data}"
if [ ! -f "$DATA/MNIST/raw/train-images-idx3-ubyte" ] || [ ! -f "$DATA/cifar-100-python/train" ]; then
  echo "gpu_check: MNIST or CIFAR-100 not found under $DATA: building full-size stand-ins (timing only)"
  DATA="${TIMING_DATA:-/tmp/genbias_timing_data}"
  "$PYTHON" benchmarks/timing_data.py "$DATA"
fi
WEIGHTS=(--stand-in-weights)
[ "${PAPER_WEIGHTS:-0}" = "1" ] && WEIGHTS=()
"$PYTHON" -c "import torch; print('gpu_check:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"
status=0
for check in $CHECKS; do
  case "$check" in
    mnist) config=configs/colored_mnist.yaml; source=(--data.source.init_args.source torchvision) ;;
    cifar20) config=configs/cifar20.yaml; source=() ;;
    ddpm) config=configs/colored_mnist_ddpm.yaml; source=(--data.source.init_args.source torchvision) ;;
    *) echo "gpu_check: unknown check $check (use mnist, cifar20, ddpm)"; exit 2 ;;
  esac
  "$PYTHON" benchmarks/gpu_check.py --config "$config" --epochs "${EPOCHS:-3}" \
    --generator-epochs "${GENERATOR_EPOCHS:-2}" "${WEIGHTS[@]}" --json benchmarks/gpu_check.jsonl -- \
    --trainer.accelerator gpu --trainer.devices 1 --trainer.precision bf16-mixed \
    "${source[@]}" --data.source.init_args.root "$DATA" "$@" || status=$?
done
exit $status
