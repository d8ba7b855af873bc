"""Peak RSS per process and time per 1,000 samples of the generation path at two block sizes (target: flat).

The loop's own code on a cheap seeded stand-in generator (uint8 noise seeded per sample id): ``trainer.predict``
on 2 DDP processes (gloo, CPU) with the ``ShardWriter`` and a filter gate (``FilterScores``, mean brightness)
writes the block as chunks and its scores; the filter and push stage (rank 0, as in the loop) selects the kept
samples (``select_block``, r = 0.1) and streams them from the chunks into a stack block
(``SyntheticStack.push_batches``); the contact sheets are drawn by 2 processes, each its share
(``ContactSheets.draw``). A plain-PyTorch baseline does the same work in one process without the loop's
machinery (a loop of generate / ``save_file`` per batch; read, mask and append to a ``.npy``; one
``save_contact_sheets`` per 100 images) in the same run. Every stage runs in fresh processes, so its peak RSS
(``ru_maxrss`` of each process) is its own. Targets: peak RSS at the larger size within 1.15x of the smaller one
for every stage, and time per sample within 1.2x.

    python benchmarks/bench_scale.py [--quick] [--sizes 10000 100000] [--side 64] [--json PATH]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import base_parser, machine_facts, maxrss_bytes, ratio_entry, report

MIB = 2**20
NUM_CLASSES = 10
RATIO = 0.1
PER_SHEET = 100
STAGES = ("generate", "push", "sheets")


def emit(stage: str, rank: int, seconds: float) -> None:
    """What a stage process reports: its wall time for the stage's work and its own peak RSS."""
    rss = maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print("STAGE " + json.dumps({"stage": stage, "rank": rank, "seconds": seconds, "rss": rss}), flush=True)


def block_labels(size: int):
    import torch

    return (torch.arange(size) % NUM_CLASSES)[torch.randperm(size, generator=torch.Generator().manual_seed(0))]


def stand_in(side: int):
    """A generator with nothing to compute: sample i is uint8 noise seeded by (its seed, i)."""
    import torch

    from common.seeds import index_seed
    from lightning_modules.generator import GeneratorModule

    class StandInGenerator(GeneratorModule):
        def __init__(self, image_shape: tuple[int, int, int] = (3, side, side)) -> None:
            super().__init__(NUM_CLASSES, image_shape)
            self.save_hyperparameters()

        def generate(self, labels, indices, seeds):
            out = torch.empty((len(indices), *self.image_shape), dtype=torch.uint8)
            for row, (index, seed) in enumerate(zip(indices.tolist(), seeds.tolist())):
                g = torch.Generator().manual_seed(index_seed(seed, index))
                out[row] = torch.randint(0, 256, self.image_shape, generator=g, dtype=torch.uint8)
            return out

    return StandInGenerator()


def brightness_filter():
    from filters import Scorer

    class Brightness(Scorer):
        name = "brightness"

        def score(self, images, labels, context):
            return images.float().mean(dim=(1, 2, 3))

    return Brightness(ratio=RATIO)


# ------------------------------------------------------------------------------------------------ the loop's code
def generate_stage(folder: Path, size: int, side: int, batch_size: int) -> None:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback
    from torch.utils.data import DataLoader, TensorDataset

    from callbacks.filter_scores import FilterScores
    from callbacks.shard_writer import ShardWriter
    from common.generated import BlockScores
    from datamodules.samplers import AlignedBatchSampler

    labels = block_labels(size)
    scores = FilterScores([brightness_filter()], 1, [str(c) for c in range(NUM_CLASSES)])
    writer = ShardWriter(folder / "chunks", size, batch_size, gates=[scores])

    class Block(L.LightningDataModule):
        def predict_dataloader(self):
            sampler = AlignedBatchSampler(size, batch_size, skip=writer.done_batches())
            return DataLoader(TensorDataset(torch.arange(size), labels, torch.full((size,), 7)), batch_sampler=sampler)

    class Clock(Callback):
        def on_predict_epoch_start(self, trainer, pl_module):
            self.start = time.perf_counter()

        def on_predict_epoch_end(self, trainer, pl_module):
            self.seconds = time.perf_counter() - self.start

    clock = Clock()
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, callbacks=[clock, scores, writer])
    trainer.predict(stand_in(side), datamodule=Block(), return_predictions=False)
    if trainer.is_global_zero:
        predicted, groups = labels.clone(), torch.full_like(labels, -1)  # no reference classifier, no oracle
        BlockScores(labels, predicted, groups, scores.scores).save(folder / "scores.safetensors")
    emit("generate", trainer.global_rank, clock.seconds)


def push_stage(folder: Path, size: int) -> None:
    import torch

    from common.generated import GeneratedBlock
    from datamodules.stack import SyntheticStack
    from filters import FilterContext, select_block

    start = time.perf_counter()
    block = GeneratedBlock(folder / "chunks", size, folder / "scores.safetensors")
    saved = block.scores
    context = FilterContext(generation=1, class_names=[str(c) for c in range(NUM_CLASSES)],
                            sample_ids=torch.arange(size))
    keep, _ = select_block([brightness_filter()], saved.filter_scores, saved.labels, context)
    stack = SyntheticStack(folder / "stack", max_generations=None)
    stack.push_batches(((b.images, b.labels) for b in block.kept(keep)), int(keep.sum()), block.image_shape, 1)
    emit("push", 0, time.perf_counter() - start)


def sheets_stage(folder: Path, size: int, rank: int) -> None:
    from callbacks.contact_sheets import ContactSheets

    start = time.perf_counter()
    ContactSheets(folder / "chunks", folder / "sheets", block_labels(size), [str(c) for c in range(NUM_CLASSES)],
                  per_sheet=PER_SHEET).draw(rank, 2)
    emit("sheets", rank, time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------ plain PyTorch
def plain_stages(folder: Path, size: int, side: int, batch_size: int) -> None:
    """The same work in one process, written as one would without the loop: no Lightning, no gates."""
    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file

    from common.image_grids import save_contact_sheets

    model, labels, chunks = stand_in(side), block_labels(size), folder / "plain_chunks"
    chunks.mkdir(parents=True)
    start, scores = time.perf_counter(), []
    for first in range(0, size, batch_size):
        ids = torch.arange(first, min(first + batch_size, size))
        images = model.generate(labels[ids], ids, torch.full((len(ids),), 7))
        scores.append(images.float().mean(dim=(1, 2, 3)))
        save_file({"index": ids, "label": labels[ids], "image": images}, str(chunks / f"{first:010d}.safetensors"))
    emit("generate", 0, time.perf_counter() - start)

    start = time.perf_counter()
    score = torch.cat(scores).double()
    keep = torch.zeros(size, dtype=torch.bool)
    for c in range(NUM_CLASSES):
        members = torch.nonzero(labels == c).flatten()
        order = members[torch.argsort(score[members], descending=True, stable=True)]
        keep[order[: -(-len(members) * int(100 * (1 - RATIO)) // 100)]] = True
    files = sorted(chunks.iterdir())
    with open(folder / "plain_stack.npy", "wb") as handle:
        header = {"descr": "|u1", "fortran_order": False, "shape": (int(keep.sum()), 3, side, side)}
        np.lib.format.write_array_header_1_0(handle, header)
        for path in files:
            part = load_file(str(path))
            handle.write(part["image"][keep[part["index"]]].numpy().tobytes())
    emit("push", 0, time.perf_counter() - start)

    start = time.perf_counter()
    pending = []
    for path in files:
        part = load_file(str(path))
        pending.append(part)
        while sum(len(p["index"]) for p in pending) >= PER_SHEET or (path == files[-1] and pending):
            merged = {k: torch.cat([p[k] for p in pending]) for k in ("index", "label", "image")}
            sheet = {k: v[:PER_SHEET] for k, v in merged.items()}
            save_contact_sheets(sheet["image"], sheet["index"], str(folder / "plain_sheets"), PER_SHEET,
                                sheet["label"], prefix=f"sheet_{int(sheet['index'][0]):08d}")
            rest = {k: v[PER_SHEET:] for k, v in merged.items()}
            pending = [rest] if len(rest["index"]) else []
    emit("sheets", 0, time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------ the parent
def stage_env(threads: int | None) -> dict[str, str]:
    """A stage process's environment: this one's, quiet, with ``threads`` torch threads (this process's own
    environment is left as it is: a caller in the same process keeps its settings)."""
    return {**os.environ, "PYTHONWARNINGS": "ignore", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}


def settle_disk() -> None:
    """Flush what the previous stage wrote before the next starts: at S = 100,000 a stage writes over 1 GB, and its
    write-back would otherwise be charged to the next stage's time (on this VM a plain 1.1 GB write takes 8x as long
    per byte as a 110 MB one, once the kernel's dirty-page limit is passed)."""
    if hasattr(os, "sync"):
        os.sync()


def run(command: list[str], threads: int | None) -> list[dict]:
    settle_disk()
    proc = subprocess.run(command, capture_output=True, text=True, env=stage_env(threads))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:])} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return [json.loads(line[len("STAGE "):]) for line in proc.stdout.splitlines() if line.startswith("STAGE ")]


def measure(size: int, side: int, batch_size: int, base: str | None,
            threads: int | None) -> dict[str, dict[str, list[dict]]]:
    """{"loop" | "plain": {stage: [one record per process]}} for one block size."""
    me = [sys.executable, __file__, "--side", str(side), "--batch-size", str(batch_size), "--size", str(size)]
    with tempfile.TemporaryDirectory(prefix="bench_scale_", dir=base) as tmp:
        loop = {"generate": run([*me, "--stage", "generate", "--dir", tmp], threads),
                "push": run([*me, "--stage", "push", "--dir", tmp], threads)}
        settle_disk()
        ranks = [subprocess.Popen([*me, "--stage", "sheets", "--rank", str(r), "--dir", tmp], stdout=subprocess.PIPE,
                                  text=True, env=stage_env(threads)) for r in (0, 1)]
        loop["sheets"] = [json.loads(line[len("STAGE "):]) for proc in ranks
                          for line in proc.communicate()[0].splitlines() if line.startswith("STAGE ")]
        if any(proc.returncode for proc in ranks) or len(loop["sheets"]) != 2:
            raise RuntimeError("the contact-sheet processes failed")
        sheets = len(list((Path(tmp) / "sheets").glob("*.png")))
        if sheets != -(-size // PER_SHEET) or len(loop["generate"]) != 2:
            raise RuntimeError(f"{sheets} sheets, {len(loop['generate'])} generating ranks for {size} samples")
        plain = {}
        for record in run([*me, "--stage", "plain", "--dir", tmp], threads):
            plain[record["stage"]] = [record]
    return {"loop": loop, "plain": plain}


def summary(records: list[dict], size: int) -> dict:
    seconds = max(r["seconds"] for r in records)  # the stage ends when its slowest process does
    return {"peak_rss_mib": max(r["rss"] for r in records) / MIB, "rss_per_process_mib": [r["rss"] / MIB for r in
            sorted(records, key=lambda r: r["rank"])], "seconds": seconds, "s_per_1000": 1000 * seconds / size}


def main(argv: list[str] | None = None) -> dict | None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 100_000], help="the two block sizes S")
    parser.add_argument("--side", type=int, default=64, help="images are 3 x side x side uint8")
    parser.add_argument("--batch-size", type=int, default=256, help="generation batch (one chunk)")
    parser.add_argument("--dir", default=None, help="where the temp blocks go (default: the system temp dir)")
    parser.add_argument("--stage", choices=[*STAGES, "plain"], help=argparse_hidden())
    parser.add_argument("--size", type=int, help=argparse_hidden())
    parser.add_argument("--rank", type=int, default=0, help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.stage:
        folder = Path(args.dir)
        {"generate": lambda: generate_stage(folder, args.size, args.side, args.batch_size),
         "push": lambda: push_stage(folder, args.size),
         "sheets": lambda: sheets_stage(folder, args.size, args.rank),
         "plain": lambda: plain_stages(folder, args.size, args.side, args.batch_size)}[args.stage]()
        return None
    if args.quick:
        args.sizes, args.side, args.batch_size = [300, 600], 16, 32
    small, large = sorted(args.sizes)
    results = {size: measure(size, args.side, args.batch_size, args.dir, args.threads) for size in (small, large)}
    table = {kind: {stage: {size: summary(results[size][kind][stage], size) for size in (small, large)}
                    for stage in STAGES} for kind in ("loop", "plain")}
    ratios = []
    for stage in STAGES:
        loop = table["loop"][stage]
        for size in (small, large):
            plain = table["plain"][stage][size]
            print(f"{stage:8s} S={size:>7,}: loop peak RSS per process "
                  f"{', '.join(f'{m:,.0f}' for m in loop[size]['rss_per_process_mib'])} MiB, "
                  f"{loop[size]['s_per_1000']:.3f} s per 1,000 samples; plain PyTorch (1 process) "
                  f"{plain['peak_rss_mib']:,.0f} MiB, {plain['s_per_1000']:.3f} s per 1,000", flush=True)
        ratios.append(ratio_entry(f"{stage}_peak_rss_large_over_small",
                                  loop[large]["peak_rss_mib"] / loop[small]["peak_rss_mib"], "<= 1.15"))
        ratios.append(ratio_entry(f"{stage}_time_per_sample_large_over_small",
                                  loop[large]["s_per_1000"] / loop[small]["s_per_1000"], "<= 1.2"))
    out = {"quick": args.quick, "machine": machine_facts(), "sizes": [small, large], "side": args.side,
           "batch_size": args.batch_size, "stages": table, "ratios": ratios}
    report("scale", out, args.json)
    return out


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
