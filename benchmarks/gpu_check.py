"""One generation of a loop config on a GPU in bf16: images/s of every stage and the paper protocol's projected time.

Called by ``gpu_check.sh`` (which skips on machines without a GPU). Runs ``cli.py fit`` as a child with the
given config and overrides, times its ``[genbias]`` lines as they arrive and reads the run's config and result
rows to turn stage durations into images/s:

* generator training: (real + synthetic samples per epoch) x generator_epochs / stage seconds;
* generation: samples_per_generation / seconds until the block is on the stack (includes merge + push);
* classifier training: (real + synthetic per epoch) x epochs run / seconds; evaluation: seconds.

Projection of the paper's protocol (10 generations x 5 classifiers x 3 seeds): per seed, generation 0's
classifier time + 10 x generation 1's time, with the classifier part scaled to 5 classifiers from the mean of
the configured ones (the paper's five differ in cost: treat it as an order of magnitude).

    python benchmarks/gpu_check.py --config CONFIG [--allow-cpu] [-- cli overrides]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import yaml
from harness import REPO_ROOT, run_child

MARK = re.compile(r"^\[genbias\] generation (\d+)")
TRAIN = re.compile(r"- training (?:generator )?(\S+) on (\d+) real \+ (\d+) synthetic")
GENERATE = re.compile(r"- generating (\d+) samples")
PAPER_GENERATIONS, PAPER_CLASSIFIERS, PAPER_SEEDS = 10, 5, 3


def stage_report(lines: list[tuple[float, str]], end: float, config: dict, rows: list[dict]) -> dict:
    """Per-stage seconds and images/s of each generation from the timestamped ``[genbias]`` lines."""
    marks = [(t, line) for t, line in lines if MARK.match(line)]
    epochs = {(r["generation"], r["classifier"]): r["epochs"] for r in rows}
    generator_epochs = int(config.get("loop", {}).get("generator_epochs", 1))
    stages: list[dict] = []
    for i, (t, line) in enumerate(marks):
        seconds = (marks[i + 1][0] if i + 1 < len(marks) else end) - t
        generation = int(MARK.match(line).group(1))
        if (m := TRAIN.search(line)) is not None:
            name, n_real, n_syn = m.group(1), int(m.group(2)), int(m.group(3))
            is_generator = " generator " in line
            # Lightning's current_epoch after fit = epochs run
            n_epochs = generator_epochs if is_generator else max(1, int(epochs.get((generation, name), 1)))
            stages.append({"generation": generation, "stage": "generator_train" if is_generator else f"train/{name}",
                           "seconds": seconds, "images_per_s": (n_real + n_syn) * n_epochs / seconds})
        elif (m := GENERATE.search(line)) is not None:
            stages.append({"generation": generation, "stage": "generate", "seconds": seconds,
                           "images_per_s": int(m.group(1)) / seconds})
        elif "- evaluating" in line:
            stages.append({"generation": generation, "stage": "evaluate/" + line.split("evaluating ")[1].split()[0],
                           "seconds": seconds, "images_per_s": None})
        elif "- stack holds" in line and stages:  # merge + push belongs to the generation stage
            stages[-1]["seconds"] += seconds
    return {"stages": stages, "projection_s": project(stages)}


def project(stages: list[dict]) -> float | None:
    def total(generation: int, classifier: bool) -> float:
        return sum(s["seconds"] for s in stages if s["generation"] == generation
                   and (s["stage"].startswith(("train/", "evaluate/")) == classifier))

    n_clf = len({s["stage"] for s in stages if s["stage"].startswith("train/")})
    if n_clf == 0 or not any(s["generation"] == 1 for s in stages):
        return None
    scale = PAPER_CLASSIFIERS / n_clf
    per_seed = total(0, True) * scale + PAPER_GENERATIONS * (total(1, False) + total(1, True) * scale)
    return PAPER_SEEDS * per_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (to test this script)")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    if not args.allow_cpu:
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: no CUDA GPU on this machine: skipped")
            return 0
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        run_dir = Path(tmp) / "run"
        command = [sys.executable, str(REPO_ROOT / "cli.py"), "fit", "--config", args.config,
                   "--loop.run_dir", str(run_dir), *args.overrides]
        print("gpu_check:", " ".join(command), flush=True)
        code, wall, peak_rss, lines = run_child(command, echo=True)
        if code != 0:
            print(f"gpu_check: the run failed with exit code {code}")
            return code
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        rows = [json.loads(ln) for ln in (run_dir / "results.jsonl").read_text().splitlines() if ln.strip()]
    result = stage_report(lines, wall, config, rows)
    print(f"\ngpu_check: wall {wall:.1f}s, peak host RSS {peak_rss / 1024**3:.2f} GiB")
    for s in result["stages"]:
        rate = f"{s['images_per_s']:,.0f} images/s" if s["images_per_s"] else "-"
        print(f"  generation {s['generation']} {s['stage']:<24} {s['seconds']:8.1f}s  {rate}")
    if result["projection_s"] is not None:
        hours = result["projection_s"] / 3600
        print(f"PROJECTION paper protocol ({PAPER_GENERATIONS} generations x {PAPER_CLASSIFIERS} classifiers x "
              f"{PAPER_SEEDS} seeds) on this machine: {hours:.1f} h")
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps({"benchmark": "gpu_check", "wall_s": wall, "peak_rss_bytes": peak_rss,
                                     **result}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
