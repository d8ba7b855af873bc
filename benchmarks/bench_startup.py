"""How long ``cli.py`` takes to start: its help screens against importing the libraries they cannot do without.

Five child processes, each a fresh interpreter, alternate in every repetition (rotating which goes first):
``python -c "import torch"``, ``python cli.py --help``, ``python cli.py report --help``,
``python -c "import lightning.pytorch"`` and ``python cli.py fit --help``. Ratios (medians over repetitions of the
ratio of two runs of one repetition): ``cli.py --help`` and ``cli.py report --help`` over ``import torch`` (target
<= 1.5: they need neither Lightning nor torch), and ``cli.py fit --help`` over ``import lightning.pytorch`` (target
<= 1.3: jsonargparse resolves the LightningCLI's classes and every generator and data source for the help, so
Lightning is a floor). A child's time is its wall time from start to exit, the interpreter's own start included on
both sides. The machine's load average is recorded: other processes on the cores move every number.

    python benchmarks/bench_startup.py [--quick] [--repeats N] [--threads N] [--json PATH]
"""

from __future__ import annotations

import os
import sys

from harness import (
    REPO_ROOT,
    alternate,
    base_parser,
    machine_facts,
    median,
    paired_ratio,
    ratio_entry,
    report,
    run_child,
)

#: side -> the arguments after ``python``
COMMANDS = {
    "import_torch": ["-c", "import torch"],
    "cli_help": ["cli.py", "--help"],
    "report_help": ["cli.py", "report", "--help"],
    "import_lightning": ["-c", "import lightning.pytorch"],
    "fit_help": ["cli.py", "fit", "--help"],
}
#: (ratio name, numerator, denominator, target)
RATIOS = [("cli_help_over_import_torch", "cli_help", "import_torch", "<= 1.5"),
          ("report_help_over_import_torch", "report_help", "import_torch", "<= 1.5"),
          ("fit_help_over_import_lightning", "fit_help", "import_lightning", "<= 1.3")]


def start(arguments: list[str], threads: int | None = None) -> float:
    """Wall seconds of one fresh ``python ARGUMENTS`` in the repository root (``threads``: its OMP_NUM_THREADS); a
    failing child stops the benchmark."""
    env = {"HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    code, seconds, _, lines = run_child([sys.executable, *arguments], cwd=REPO_ROOT, env=env)
    if code != 0:
        tail = "\n".join(line for _, line in lines[-20:])
        raise RuntimeError(f"python {' '.join(arguments)} exited with {code}:\n{tail}")
    return seconds


def main(argv: list[str] | None = None) -> dict:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    load_before = os.getloadavg()
    sides = {name: (lambda arguments=arguments: start(arguments, args.threads)) for name, arguments in COMMANDS.items()}
    samples = alternate(sides, repeats=args.repeats or (1 if args.quick else 7), warmup=0 if args.quick else 1)
    load = [round(x, 2) for x in os.getloadavg()]
    medians = {name: median(values) for name, values in samples.items()}
    print(f"load average {load_before[0]:.1f} before / {load[0]:.1f} after; median seconds: "
          + ", ".join(f"{name} {seconds:.2f}" for name, seconds in medians.items()), flush=True)
    results = {"quick": args.quick, "machine": machine_facts(), "python": sys.version.split()[0],
               "omp_num_threads": args.threads or os.environ.get("OMP_NUM_THREADS"), "samples": samples,
               "medians": medians,
               "load_average_before": list(load_before), "load_average_after": load,
               "ratios": [ratio_entry(name, paired_ratio(samples, top, bottom), target)
                          for name, top, bottom, target in RATIOS]}
    report("startup", results, args.json)
    return results


if __name__ == "__main__":
    main()
