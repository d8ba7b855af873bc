"""``trainer.predict`` + ShardWriter images/s / a plain generator forward loop's images/s (target >= 0.9).

Both sides: the same ``ConditionalDCGAN`` object (quickstart size by default), the same (index, label) batches
of the eval batch size, and per-sample seeded noise in BOTH (``per_sample_noise``, the loop's contract that a
sample depends only on (seed, index)), eval-mode generator, uint8 output. The Lightning side also writes every
batch as a checksummed safetensors chunk (ShardWriter) as the loop does; the plain loop keeps its images in
memory, so the ratio includes the chunk writes. Also reported (not a target): the share of the plain loop spent
drawing the per-sample noise, against one batched ``torch.randn``.

    python benchmarks/bench_generation.py [--quick] [--json PATH]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from harness import alternate, apply_threads, base_parser, machine_facts, median, paired_ratio, ratio_entry, report
from torch.utils.data import DataLoader, TensorDataset

from callbacks.shard_writer import ShardWriter
from common.generated import GeneratedBlock
from common.seeds import per_sample_noise
from lightning_modules.dcgan import ConditionalDCGAN
from lightning_modules.generator import to_uint8

SAMPLE_SEED = 11


def predict_loader(n: int, batch_size: int) -> DataLoader:
    labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(3))
    return DataLoader(TensorDataset(torch.arange(n), labels, torch.full((n,), SAMPLE_SEED)), batch_size=batch_size,
                      shuffle=False)


def lightning_generate(model: ConditionalDCGAN, loader: DataLoader, shard_dir: Path) -> float:
    """Into an empty ``shard_dir`` (a folder with chunks would be a resumed stage)."""
    writer = ShardWriter(shard_dir, len(loader.dataset), loader.batch_size)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[writer])
    start = time.perf_counter()
    trainer.predict(model, dataloaders=loader, return_predictions=False)
    return time.perf_counter() - start


def plain_generate(model: ConditionalDCGAN, loader: DataLoader, noise_times: list[float]) -> float:
    start = time.perf_counter()
    noise_s = 0.0
    model.eval()
    images = []
    with torch.no_grad():
        for indices, labels, seeds in loader:
            t0 = time.perf_counter()
            noise = per_sample_noise(indices, (model.latent_dim,), seeds)
            noise_s += time.perf_counter() - t0
            images.append(to_uint8(model.generator(noise, labels)))
    torch.cat(images)
    seconds = time.perf_counter() - start
    noise_times.append(noise_s / seconds)
    return seconds


def batched_noise_share(model: ConditionalDCGAN, loader: DataLoader) -> float:
    """Seconds of one batched torch.randn per batch, for comparison with per_sample_noise."""
    start = time.perf_counter()
    for indices, _, _ in loader:
        torch.randn(len(indices), model.latent_dim, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="images generated per run")
    parser.add_argument("--batch-size", type=int, default=500, help="the quickstart's eval_batch_size")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--base-channels", type=int, default=32)
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    if args.quick:
        args.n, args.batch_size, args.latent_dim, args.base_channels = 64, 32, 8, 4
    repeats = args.repeats or (1 if args.quick else 5)
    warmup = 0 if args.quick else 1
    torch.manual_seed(0)
    model = ConditionalDCGAN(num_classes=10, image_shape=(3, 28, 28), latent_dim=args.latent_dim,
                             base_channels=args.base_channels)
    loader = predict_loader(args.n, args.batch_size)
    noise_shares: list[float] = []
    attempts = iter(range(10**6))
    with tempfile.TemporaryDirectory(prefix="bench_generation_") as tmp:
        samples = alternate({"lightning": lambda: lightning_generate(model, loader, Path(tmp) / str(next(attempts))),
                             "plain": lambda: plain_generate(model, loader, noise_shares)},
                            repeats=repeats, warmup=warmup)
        last = max(Path(tmp).iterdir(), key=lambda p: int(p.name))
        shard_images = torch.cat([batch.images for batch in GeneratedBlock(last, args.n).batches()])
    # same images on both sides: the comparison is of the same work
    model.eval()
    with torch.no_grad():
        reference = torch.cat([to_uint8(model.generator(per_sample_noise(i, (model.latent_dim,), s), y))
                               for i, y, s in loader])
    if not torch.equal(reference, shard_images):
        raise RuntimeError("trainer.predict and the plain loop generated different images")
    batched_s = batched_noise_share(model, loader)
    lightning_rate, plain_rate = args.n / median(samples["lightning"]), args.n / median(samples["plain"])
    noise_share = median(noise_shares[warmup:])
    print(f"{args.n} images, batch {args.batch_size}, DCGAN latent {args.latent_dim} base {args.base_channels}: "
          f"predict+ShardWriter {lightning_rate:,.0f} img/s, plain loop {plain_rate:,.0f} img/s; per-sample noise "
          f"{100 * noise_share:.1f}% of the plain loop (batched randn would take {batched_s * 1000:.1f} ms total)",
          flush=True)
    out = {"quick": args.quick, "repeats": repeats, "machine": machine_facts(), "n": args.n,
           "batch_size": args.batch_size, "per_sample_noise_in_both": True, "lightning_images_per_s": lightning_rate,
           "plain_images_per_s": plain_rate, "per_sample_noise_share_of_plain": noise_share,
           "batched_noise_s": batched_s, "samples": samples,
           "ratio_of_medians": lightning_rate / plain_rate,
           "ratios": [ratio_entry("predict_ratio", paired_ratio(samples, "plain", "lightning"), ">= 0.9")]}
    report("generation", out, args.json)
    return out


if __name__ == "__main__":
    main()
