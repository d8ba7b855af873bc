"""A SyntheticStack of 1,000,000 images: push time, then peak RSS and batches/s of random ``get_batch`` reads.

The writer (this process) pushes ``--n`` random 3x32x32 uint8 images in blocks of ``--block`` into a stack of
capacity ``--n`` in a temp dir (about 3.1 GB of disk at the default size: free space is checked first; use a
smaller ``--n`` where disk is short). A fresh child process then opens the stack (checksums verified, as the
loop does) and reads ``--batches`` random batches through ``get_batch``; its peak RSS (``ru_maxrss`` of that
child, via ``os.wait4``; target < 1 GiB) includes the memory-mapped file pages it touched, which the child also
splits into anonymous and file-backed RSS from /proc/self/status.

    python benchmarks/bench_stack.py [--quick] [--n 1000000] [--json PATH]
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import tempfile
import time

import numpy as np
from harness import base_parser, machine_facts, maxrss_bytes, ratio_entry, report, run_child

GIB = 1024**3
IMAGE_SHAPE = (3, 32, 32)


def proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def read_child(root: str, capacity: int, batches: int, batch_size: int) -> None:
    """Runs in the fresh child: open the stack, read random batches, print one JSON line."""
    import torch

    from datamodules.stack import SyntheticStack

    after_import = {f"{f.lower()}_after_import_kib": proc_status_kib(f) for f in ("VmHWM", "RssAnon", "RssFile")}
    start = time.perf_counter()
    stack = SyntheticStack(root, max_generations=None, max_samples=capacity)
    open_s = time.perf_counter() - start
    g = torch.Generator().manual_seed(0)
    checksum = 0
    start = time.perf_counter()
    for _ in range(batches):
        images, labels = stack.get_batch(torch.randint(0, len(stack), (batch_size,), generator=g))
        checksum += int(images[:, 0, 0, 0].sum()) + int(labels.sum())
    read_s = time.perf_counter() - start
    print(json.dumps({"open_s": open_s, "read_s": read_s, "batches_per_s": batches / read_s,
                      "samples": len(stack), "checksum": checksum,
                      "ru_maxrss_bytes": maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
                      "rss_anon_kib": proc_status_kib("RssAnon"), "rss_file_kib": proc_status_kib("RssFile"),
                      **after_import}))


def push_blocks(root: str, n: int, block: int) -> float:
    from datamodules.stack import SyntheticStack

    stack = SyntheticStack(root, max_generations=None, max_samples=n)
    rng = np.random.default_rng(0)
    seconds = 0.0
    for generation, first in enumerate(range(0, n, block), start=1):
        count = min(block, n - first)
        images = rng.integers(0, 256, (count, *IMAGE_SHAPE), dtype=np.uint8)
        labels = rng.integers(0, 10, count, dtype=np.int64)
        start = time.perf_counter()
        stack.push(images, labels, generation)
        seconds += time.perf_counter() - start
        del images
    if len(stack) != n:
        raise RuntimeError(f"the stack holds {len(stack)} samples after pushing {n}")
    return seconds


def main(argv: list[str] | None = None) -> dict | None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="images pushed (3 KiB each)")
    parser.add_argument("--block", type=int, default=100_000, help="images per pushed block")
    parser.add_argument("--batches", type=int, default=1000, help="random batches read by the child")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--dir", default=None, help="where to create the temp stack (default: the system temp dir)")
    parser.add_argument("--read-child", metavar="ROOT", help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.read_child:
        read_child(args.read_child, args.n, args.batches, args.batch_size)
        return None
    if args.quick:
        args.n, args.block, args.batches, args.batch_size = 2000, 500, 20, 64
    base = args.dir or tempfile.gettempdir()
    need = args.n * int(np.prod(IMAGE_SHAPE)) + 64 * 1024**2
    free = shutil.disk_usage(base).free
    if free < 1.2 * need:
        raise SystemExit(f"bench_stack: {need / GIB:.2f} GiB needed in {base} but {free / GIB:.2f} GiB free: "
                         f"pass a smaller --n (e.g. --n {int(free / 1.2 / np.prod(IMAGE_SHAPE) // 1000 * 1000)}) "
                         "or --dir on a larger disk")
    with tempfile.TemporaryDirectory(prefix="bench_stack_", dir=base) as tmp:
        push_s = push_blocks(tmp, args.n, args.block)
        code, wall, child_rss, lines = run_child([sys.executable, __file__, "--read-child", tmp, "--n", str(args.n),
                                                  "--batches", str(args.batches), "--batch-size",
                                                  str(args.batch_size)])
        if code != 0:
            raise RuntimeError("stack reader failed:\n" + "\n".join(line for _, line in lines[-30:]))
        child = json.loads(lines[-1][1])
    rss_gib = child_rss / GIB
    print(f"pushed {args.n:,} images of {IMAGE_SHAPE} in blocks of {args.block:,}: {push_s:.1f}s "
          f"({args.n / push_s:,.0f} img/s); reader: open+verify {child['open_s']:.1f}s, "
          f"{child['batches_per_s']:,.0f} batches/s of {args.batch_size}, peak RSS {rss_gib:.3f} GiB "
          f"(after importing torch: {child['vmhwm_after_import_kib'] / 1024**2:.3f} GiB; at exit: anon "
          f"{child['rss_anon_kib'] / 1024:.0f} MiB, file-backed {child['rss_file_kib'] / 1024:.0f} MiB)",
          flush=True)
    out = {"quick": args.quick, "machine": machine_facts(), "n": args.n, "block": args.block,
           "batches": args.batches, "batch_size": args.batch_size, "push_s": push_s, "reader": child,
           "reader_peak_rss_bytes": child_rss, "reader_wall_s": wall,
           "ratios": [ratio_entry("reader_peak_rss_gib", rss_gib, "< 1.0")]}
    report("stack", out, args.json)
    return out


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
