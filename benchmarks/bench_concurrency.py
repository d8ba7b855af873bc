"""Several runs on one machine: the slowdown of a torch training loop beside another one, with torch's default
threads (one per core each) and with the cores divided between the jobs as `scripts/sweep.py --jobs` does.

Each side runs child processes of the same plain training loop (a LeNet-size CNN on random 28x28 images, fixed
steps, no Lightning): ``alone_default`` / ``alone_divided`` = one child with the default threads / with
``threads_per_job(2, cores)`` threads; ``shared_default`` / ``shared_divided`` = two children at once, each with those
threads. Reported: each pair's makespan (both done) over the same child alone (the slowdown sharing causes), and
the ratio the sweep's division buys, makespan(divided pair) / makespan(default pair) (target <= 1.0). OpenMP threads
that outnumber the cores spin waiting for descheduled siblings, which is what makes the default pair slow. The
machine's load average is recorded: other processes on the cores move every number.

    python benchmarks/bench_concurrency.py [--quick] [--repeats N] [--steps N] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from harness import REPO_ROOT, alternate, base_parser, machine_facts, median, ratio_entry, report

from common.cores import available_cores, threads_per_job


def child(steps: int) -> None:
    """The measured workload: ``steps`` Adam steps of a small CNN on a fixed random batch of 64."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = torch.randn(64, 3, 28, 28), torch.randint(0, 10, (64,))
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()


def run_pair(count: int, threads: int | None, steps: int) -> float:
    """Start ``count`` children at once (``threads`` intra-op threads each; None = torch's default) and return the
    seconds until the last one is done."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [sys.executable, __file__, "--child", "--steps", str(steps)]
    start = time.perf_counter()
    processes = [subprocess.Popen(command, cwd=REPO_ROOT, env=env) for _ in range(count)]
    codes = [p.wait() for p in processes]
    if any(codes):
        raise RuntimeError(f"a benchmark child failed: exit codes {codes}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="training steps per child (default 400)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the measured process
    args = parser.parse_args(argv)
    steps = args.steps or (20 if args.quick else 400)
    if args.child:
        child(steps)
        return {}
    cores = available_cores()
    divided = threads_per_job(2, cores)
    load_before = os.getloadavg()
    sides = {"shared_default": lambda: run_pair(2, None, steps), "shared_divided": lambda: run_pair(2, divided, steps)}
    if not args.quick:  # --quick (the smoke test) runs only the pair the ratio needs, once, without a warm-up
        sides.update(alone_default=lambda: run_pair(1, None, steps), alone_divided=lambda: run_pair(1, divided, steps))
    samples = alternate(sides, repeats=args.repeats or (1 if args.quick else 3), warmup=0 if args.quick else 1)
    default, split = median(samples["shared_default"]), median(samples["shared_divided"])
    load = [round(x, 2) for x in os.getloadavg()]
    if args.quick:
        alone = alone_split = None
        print(f"{cores} core(s), {steps} steps per child: two at once {default:.2f}s with default threads, "
              f"{split:.2f}s with {divided} thread(s) each", flush=True)
    else:
        alone, alone_split = median(samples["alone_default"]), median(samples["alone_divided"])
        print(f"{cores} core(s), {steps} steps per child, load average {load_before[0]:.1f} before / {load[0]:.1f} "
              f"after: default threads alone {alone:.2f}s, two at once {default:.2f}s ({default / alone:.2f}x); "
              f"{divided} thread(s) each alone {alone_split:.2f}s, two at once {split:.2f}s "
              f"({split / alone_split:.2f}x)", flush=True)
    results = {"quick": args.quick, "machine": machine_facts(), "cores": cores, "steps": steps,
               "threads_divided": divided, "samples": samples, "load_average_before": list(load_before),
               "load_average_after": load,
               "ratios": [ratio_entry("divided_over_default_makespan", split / default, "<= 1.0")],
               "slowdown_default": default / alone if alone else None,
               "slowdown_divided": split / alone_split if alone_split else None}
    report("concurrency", results, args.json)
    return results


if __name__ == "__main__":
    main()
