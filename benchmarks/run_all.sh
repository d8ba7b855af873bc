#!/usr/bin/env bash
# Run every benchmark at its default size (or with --quick) and collect their JSON lines in one file.
#   bash benchmarks/run_all.sh [--quick] [results.jsonl]
# Each script's full output goes to <results>.<name>.log; its summary and RATIO lines are shown here.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python
QUICK=()
if [ "${1:-}" = "--quick" ]; then QUICK=(--quick); shift; fi
OUT="${1:-benchmarks/results.jsonl}"
: > "$OUT"
failed=()
for bench in classifier dcgan loader generation evaluation stack quickstart concurrency startup latent_cache view_store classifier_parallel; do
  log="${OUT%.jsonl}.${bench}.log"
  echo "=== bench_${bench} ${QUICK[*]:-}"
  if "$PYTHON" "benchmarks/bench_${bench}.py" "${QUICK[@]}" --json "$OUT" > "$log" 2>&1; then
    grep -E "^(RATIO|dcgan|lenet|resnet|tiny_cnn|epoch of|generator epoch|classifier epoch|classifier stages|[0-9]+ (images|test)|pushed|load average|[a-z_]+\.yaml)" "$log"
  else
    failed+=("$bench"); tail -20 "$log"
  fi
done
echo "=== JSON lines in $OUT"
if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}"; exit 1; fi
