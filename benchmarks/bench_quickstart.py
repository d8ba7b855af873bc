"""The quickstart end to end: wall time, peak memory, and time per generation (which must stay flat).

Runs ``python cli.py fit --config configs/quickstart.yaml --loop.run_dir <tmp>`` as a child (falling back to
tests/configs/tiny_mnist.yaml while the quickstart config does not exist), timestamps its ``[genbias]
generation g/M`` progress lines as they arrive, and reports the child's wall time, its peak RSS (``ru_maxrss``
of that child via ``os.wait4``) and each generation's seconds. Generation 0 trains only the classifiers (no
generator, no stack), so flatness is ``max / min`` over generations 1..M (target <= 1.25: later generations
hold a fuller stack, so epochs are the same size but the stack files grow). The classifier rows' ``wall_s``
are reported too.

    python benchmarks/bench_quickstart.py [--quick] [--config PATH] [--json PATH] [-- extra cli overrides]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from harness import REPO_ROOT, base_parser, generation_times, machine_facts, ratio_entry, report, run_child

QUICK_OVERRIDES = ["--loop.generations", "2", "--loop.samples_per_generation", "100",
                   "--data.source.init_args.max_train_samples", "100", "--loop.generator_epochs", "1"]


def default_config() -> str:
    quickstart = REPO_ROOT / "configs" / "quickstart.yaml"
    return str(quickstart if quickstart.exists() else REPO_ROOT / "tests" / "configs" / "tiny_mnist.yaml")


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="loop config (default: configs/quickstart.yaml)")
    parser.add_argument("--echo", action="store_true", help="print the child's output as it runs")
    parser.add_argument("overrides", nargs="*", help="extra cli.py arguments, after --")
    args = parser.parse_args(argv)
    config = args.config or (str(REPO_ROOT / "tests" / "configs" / "tiny_mnist.yaml") if args.quick
                             else default_config())
    overrides = (QUICK_OVERRIDES if args.quick else []) + list(args.overrides)
    with tempfile.TemporaryDirectory(prefix="bench_quickstart_") as tmp:
        command = [sys.executable, str(REPO_ROOT / "cli.py"), "fit", "--config", config,
                   "--loop.run_dir", str(Path(tmp) / "run"), *overrides]
        env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else None  # torch reads it at start-up
        code, wall, peak_rss, lines = run_child(command, echo=args.echo, env=env)
        if code != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({code}):\n" + "\n".join(ln for _, ln in lines[-40:]))
        results_path = Path(tmp) / "run" / "results.jsonl"
        rows = [json.loads(line) for line in results_path.read_text().splitlines() if line.strip()]
    per_generation = generation_times(lines, wall)
    # Generation 1's generator trains on real data only (the stack is still empty), so its epochs are half the size
    # of later ones at p = 0.5; from generation 2 on every epoch has the same composition (the FIFO stack bounds the
    # synthetic share), and that is where time per generation must stay flat.
    later = {g: s for g, s in per_generation.items() if g >= 2} or {g: s for g, s in per_generation.items() if g >= 1}
    flatness = max(later.values()) / min(later.values()) if len(later) >= 2 else 1.0
    row_wall = [{"generation": r["generation"], "classifier": r["classifier"], "wall_s": r["wall_s"]} for r in rows]
    print(f"{Path(config).name}: wall {wall:.1f}s, peak RSS {peak_rss / 1024**2:.0f} MiB; per generation "
          + ", ".join(f"g{g} {s:.1f}s" for g, s in sorted(per_generation.items()))
          + "; classifier stages " + ", ".join(f"g{r['generation']} {r['classifier']} {r['wall_s']:.1f}s"
                                               for r in row_wall), flush=True)
    out = {"quick": args.quick, "machine": machine_facts(), "config": config, "overrides": overrides,
           "threads": args.threads, "wall_s": wall, "peak_rss_bytes": peak_rss,
           "generation_s": {str(g): s for g, s in per_generation.items()},
           "classifier_rows": row_wall,
           "ratios": [ratio_entry("generation_time_max_over_min", flatness, "<= 1.25")]}
    report("quickstart", out, args.json)
    return out


if __name__ == "__main__":
    main()
