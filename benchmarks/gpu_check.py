"""One generation of a paper config at full size: images/s of every stage, where each classifier epoch's time goes, and
the projected time of the paper's protocol.

Called by ``gpu_check.sh`` (once per config; it skips on machines without a GPU). Runs ``cli.py fit`` as a child for
generation 0 and generation 1 with a few epochs per model (``--epochs``, ``--generator-epochs``), with the
``StepTiming`` callback on every stage, then reads the run's progress lines, result rows and timing records:

* per stage: seconds and images/s (training: samples per epoch x epochs run / seconds; generation: samples / s);
* per classifier: the share of a training epoch spent outside the network's forward, backward and optimizer step
  (``StepTiming``: the first epoch, which includes cuDNN autotuning or compilation, and the median of the others);
* the projection of the protocol (10 generations x 5 classifiers x 3 seeds): the measured seconds per training
  sample-epoch of every model x the samples an epoch holds at each generation (the stack fills for K generations)
  x the config's epochs (max_epochs: an upper bound, early stopping only shortens it), plus generation, filtering
  and evaluation as measured.

    python benchmarks/gpu_check.py --config CONFIG [--allow-cpu] [--stand-in-weights] [-- cli overrides]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from harness import REPO_ROOT, run_child

from datamodules.regime import DataRegime
from datamodules.regime_migration import to_current_layout

STAGE_DONE = re.compile(r"\[genbias\] generation (\d+)/\d+ - stage (\S+) done in")
TRAIN = re.compile(r"\[genbias\] generation (\d+)/\d+ - training (generator )?(\S+) on (\d+) real \+ (\d+) synthetic")
GENERATE = re.compile(r"\[genbias\] generation (\d+)/\d+ - generating (\d+) samples")
PAPER_GENERATIONS, PAPER_CLASSIFIERS, PAPER_SEEDS = 10, 5, 3


def check_config(config: dict, epochs: int, generator_epochs: int, stand_in_weights: bool) -> dict:
    """The config the check runs: 1 generation, at most ``epochs`` per classifier (no early stop) and
    ``generator_epochs`` for the generator; with ``stand_in_weights`` the CLIP filter becomes the MC-dropout filter at
    the same ratio and FID uses the reference classifier (for machines without the CLIP and Inception weights)."""
    config = copy.deepcopy(config)
    config.setdefault("loop", {}).update(generations=1, run_dir=None)
    config["loop"]["generator_epochs"] = min(generator_epochs, int(config["loop"].get("generator_epochs", 1)))
    for classifier in config.get("classifiers", []):
        classifier.update(max_epochs=min(epochs, int(classifier.get("max_epochs", 50))), patience=0)
    if stand_in_weights:
        for spec in config.get("filters") or []:
            if spec.get("class_path", "").endswith("ClipScoreFilter"):
                ratio = spec.get("init_args", {}).get("ratio", 0.1)
                spec.clear()
                spec.update(class_path="filters.UncertaintyFilter", init_args={"ratio": ratio, "mc_passes": 10})
        fid = config.setdefault("quality", {}).setdefault("fid", {})
        if fid.get("extractor", "classifier") != "classifier":
            fid["extractor"] = "classifier"
    config["loop"].pop("run_dir")
    return config


def stage_report(lines: list[tuple[float, str]], rows: list[dict], timing: dict[str, list[dict]],
                 generator_epochs: int) -> list[dict]:
    """Seconds and images/s of every stage, from the timestamped progress lines (a stage runs from the previous
    stage's end to its own ``stage ... done`` line) and the result rows (epochs run)."""
    epochs = {(r["generation"], r["classifier"]): r["epochs"] for r in rows}
    per_epoch: dict[tuple[int, str], int] = {}
    generated: dict[int, int] = {}
    stages: list[dict] = []
    start = next((t for t, line in lines if "[genbias] generation" in line), 0.0)
    for t, line in lines:
        if (m := TRAIN.search(line)) is not None:
            per_epoch[(int(m.group(1)), "generator" if m.group(2) else m.group(3))] = int(m.group(4)) + int(m.group(5))
        elif (m := GENERATE.search(line)) is not None:
            generated[int(m.group(1))] = int(m.group(2))
        elif (m := STAGE_DONE.search(line)) is not None:
            generation, key = int(m.group(1)), m.group(2)
            parts = key.split("/")  # g1/generator, g1/generate, g1/push, g0/classifier/lenet, g0/evaluate/lenet
            kind, name = parts[1], (parts[2] if len(parts) > 2 else "")
            stage = {"generation": generation, "stage": key.split("/", 1)[1], "seconds": t - start,
                     "images_per_s": None, "samples_per_epoch": None}
            if kind == "generator":
                stage["samples_per_epoch"] = per_epoch.get((generation, "generator"))
                stage["epochs"] = generator_epochs
            elif kind == "classifier":
                stage["samples_per_epoch"] = per_epoch.get((generation, name))
                stage["epochs"] = max(1, int(epochs.get((generation, name), 1)))
                stage["step_timing"] = summarize_timing(timing.get(f"gen_{generation:02d}/{name}", []))
            elif kind == "generate" and generation in generated:
                stage["images_per_s"] = generated[generation] / stage["seconds"]
            if stage["samples_per_epoch"]:
                stage["images_per_s"] = stage["samples_per_epoch"] * stage["epochs"] / stage["seconds"]
            stages.append(stage)
            start = t
    return stages


def summarize_timing(records: list[dict]) -> dict | None:
    """The first epoch's share outside the model (warm-up included) and the median of the later epochs."""
    if not records:
        return None
    later = records[1:] or records
    return {"first_epoch_outside": records[0]["outside_model_fraction"],
            "outside_model_fraction": statistics.median(r["outside_model_fraction"] for r in later),
            "samples_per_s": statistics.median(r["samples_per_s"] for r in later)}


def project(stages: list[dict], config: dict, rows: list[dict], generations: int = PAPER_GENERATIONS,
            n_classifiers: int = PAPER_CLASSIFIERS, seeds: int = PAPER_SEEDS) -> float | None:
    """Seconds of the whole protocol from one measured generation: training time per sample-epoch x the samples
    an epoch holds at generation g (the stack grows to ``data.regime.window`` blocks) x the config's epochs."""
    by_key = {(s["generation"], s["stage"]): s for s in stages}
    first = {r["classifier"]: r for r in rows if r["generation"] == 1}
    if not first or (1, "generator") not in by_key:
        return None
    loop = config.get("loop", {})
    regime = DataRegime(**(to_current_layout(config).get("data", {}).get("regime") or {}))
    window = regime.kept_generations
    row = next(iter(first.values()))
    n_real, kept_per_block = row["n_real"], row["stack_size"]

    def samples_per_epoch(g: int) -> int:
        stack = 0 if g == 0 else kept_per_block * (g if window is None else min(g, window))
        return n_real + regime.synthetic_per_epoch(n_real, stack)

    def per_sample_epoch(stage: dict) -> float:
        return stage["seconds"] / (stage["samples_per_epoch"] * stage["epochs"])

    max_epochs = {c.get("name") or c["arch"]: int(c.get("max_epochs", 50)) for c in config.get("classifiers", [])}
    scale = n_classifiers / max(1, len(max_epochs))
    generator = by_key[(1, "generator")]
    fixed = sum(by_key[(1, k)]["seconds"] for k in ("generate", "push") if (1, k) in by_key)
    total = 0.0
    for g in range(generations + 1):
        if g > 0:
            total += per_sample_epoch(generator) * samples_per_epoch(g - 1) * int(loop.get("generator_epochs", 1))
            total += fixed
        for name, epochs in max_epochs.items():
            measured = by_key.get((min(g, 1), f"classifier/{name}"))
            evaluate = by_key.get((min(g, 1), f"evaluate/{name}"))
            if measured is None:
                continue
            total += scale * (per_sample_epoch(measured) * samples_per_epoch(g) * epochs
                              + (evaluate["seconds"] if evaluate else 0.0))
    return seeds * total


def read_timing(run_dir: Path) -> dict[str, list[dict]]:
    """StepTiming records per ``gen_XX/<classifier>``."""
    out = {}
    for path in sorted(run_dir.glob("gen_*/classifiers/*/step_timing.jsonl")):
        out[f"{path.parts[-4]}/{path.parts[-2]}"] = [json.loads(x) for x in path.read_text().splitlines() if x]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (to test this script)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per classifier in the check (default 3)")
    parser.add_argument("--generator-epochs", type=int, default=2, help="generator epochs in the check (default 2)")
    parser.add_argument("--stand-in-weights", action="store_true",
                        help="MC-dropout filter instead of CLIP and classifier FID instead of Inception (no weights)")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    if not args.allow_cpu:
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: no CUDA GPU on this machine: skipped")
            return 0
    config = yaml.safe_load(Path(args.config).read_text())
    checked = check_config(config, args.epochs, args.generator_epochs, args.stand_in_weights)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        run_dir, config_path = Path(tmp) / "run", Path(tmp) / Path(args.config).name
        config_path.write_text(yaml.safe_dump(checked, sort_keys=False))
        command = [sys.executable, str(REPO_ROOT / "cli.py"), "fit", "--config", str(config_path),
                   "--loop.run_dir", str(run_dir), "--trainer.callbacks+=callbacks.step_timing.StepTiming",
                   *args.overrides]
        print("gpu_check:", " ".join(command), flush=True)
        code, wall, peak_rss, lines = run_child(command, echo=True)
        if code != 0:
            print(f"gpu_check: the run failed with exit code {code}")
            return code
        rows = [json.loads(ln) for ln in (run_dir / "results.jsonl").read_text().splitlines() if ln.strip()]
        timing = read_timing(run_dir)
    stages = stage_report(lines, rows, timing, checked["loop"]["generator_epochs"])
    projection = project(stages, config, rows)
    name = Path(args.config).stem
    print(f"\ngpu_check {name}: wall {wall:.1f}s, peak host RSS {peak_rss / 1024**3:.2f} GiB"
          + (" (stand-in weights: MC-dropout filter, classifier FID)" if args.stand_in_weights else ""))
    for s in stages:
        rate = f"{s['images_per_s']:>9,.0f} images/s" if s["images_per_s"] else " " * 18
        timing_note = ""
        if s.get("step_timing"):
            t = s["step_timing"]
            timing_note = (f"  outside forward/backward: {t['outside_model_fraction']:.0%} "
                           f"(first epoch {t['first_epoch_outside']:.0%})")
        print(f"  generation {s['generation']} {s['stage']:<24} {s['seconds']:8.1f}s {rate}{timing_note}")
    if projection is not None:
        print(f"PROJECTION {name}: paper protocol ({PAPER_GENERATIONS} generations x {PAPER_CLASSIFIERS} classifiers "
              f"x {PAPER_SEEDS} seeds, max_epochs, no early stop) on this machine: {projection / 3600:.1f} h")
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps({"benchmark": "gpu_check", "config": args.config, "wall_s": wall,
                                     "peak_rss_bytes": peak_rss, "stand_in_weights": args.stand_in_weights,
                                     "stages": stages, "projection_s": projection}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
