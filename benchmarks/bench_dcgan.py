"""ConditionalDCGAN + Lightning Trainer epoch time / a hand-written PyTorch GAN loop's epoch time (target <= 1.10).

The quickstart spends most of its wall time training the DCGAN, so its Lightning overhead is measured like the
classifier's (bench_classifier.py). Both sides: the quickstart's networks (latent 64, base channels 32, 28 x 28 x 3,
10 classes; the same ``DCGANGenerator`` / ``DCGANDiscriminator`` classes built from the same seed), the same uint8
tensors served by the same DataLoader (the project's batched ``MixedTrainSet`` fetch, same shuffling seed), the
same Adam optimisers and batch size, and the same step: a discriminator step on real and detached fake images, then
a non-saturating generator step, the losses in float32. The hand-written loop is the PyTorch DCGAN tutorial's (no
optimizer toggling, no logging). The Trainer runs as the loop's generator stage does (manual optimisation,
``EpochSeeder`` reseeding every step, the losses logged every step for the progress line, the CUDA probe settled
as ``cli.py`` does), without logger, checkpointing, progress bar or model summary. The primary ratio is the epoch
(first batch start to last batch end); the ``fit`` ratio includes the Trainer's setup and teardown.

    python benchmarks/bench_dcgan.py [--quick] [--json PATH]
"""

from __future__ import annotations

import time

import lightning as L
import torch
import torch.nn.functional as F
from bench_classifier import EpochTimer, make_loader, make_split
from harness import alternate, apply_threads, base_parser, machine_facts, median, paired_ratio, ratio_entry, report

from callbacks.epoch_seeder import EpochSeeder
from common.cuda_probe import probe_cuda_once_without_gpu
from lightning_modules.dcgan import ConditionalDCGAN
from lightning_modules.networks.dcgan import DCGANDiscriminator, DCGANGenerator

IMAGE_SHAPE = (3, 28, 28)
NUM_CLASSES = 10
LATENT, BASE = 64, 32  # configs/quickstart.yaml
LR, BETAS = 2e-4, (0.5, 0.999)


def lightning_epoch(loader_args: tuple, epoch_times: list[float]) -> float:
    torch.manual_seed(0)
    model = ConditionalDCGAN(num_classes=NUM_CLASSES, image_shape=IMAGE_SHAPE, latent_dim=LATENT,
                             base_channels=BASE, lr=LR, betas=BETAS)
    timer = EpochTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[timer, EpochSeeder(0)])
    loader = make_loader(*loader_args)
    start = time.perf_counter()
    trainer.fit(model, train_dataloaders=loader)
    seconds = time.perf_counter() - start
    epoch_times.append(timer.last - timer.first)
    return seconds


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def plain_epoch(loader_args: tuple) -> float:
    torch.manual_seed(0)
    generator = DCGANGenerator(LATENT, NUM_CLASSES, IMAGE_SHAPE, BASE)
    discriminator = DCGANDiscriminator(NUM_CLASSES, IMAGE_SHAPE, BASE, class_std=True)
    opt_g = torch.optim.Adam(generator.parameters(), lr=LR, betas=BETAS)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=LR, betas=BETAS)
    loader = make_loader(*loader_args)
    start = time.perf_counter()
    generator.train()
    discriminator.train()
    for batch in loader:
        images, labels = batch["image"], batch["label"]
        real = images.float() / 127.5 - 1
        noise = torch.randn(real.shape[0], LATENT)
        fake = generator(noise, labels)
        d_loss = bce(discriminator(real, labels), 1.0) + bce(discriminator(fake.detach(), labels), 0.0)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = bce(discriminator(fake, labels), 1.0)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64, help="64: the quickstart's")
    parser.add_argument("--steps", type=int, default=55, help="training steps per epoch (55: 3,500 digits at 64)")
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    probe_cuda_once_without_gpu()  # as cli.py does; process-wide, so both sides run with it
    if args.quick:
        args.steps = 3
    repeats = args.repeats or (1 if args.quick else 5)
    warmup = 0 if args.quick else 1
    loader_args = (make_split(args.steps * args.batch_size), args.batch_size)
    epoch_times: list[float] = []
    samples = alternate({"lightning": lambda: lightning_epoch(loader_args, epoch_times),
                         "plain": lambda: plain_epoch(loader_args)}, repeats=repeats, warmup=warmup)
    epoch_only = epoch_times[warmup:]
    epoch_ratio = paired_ratio({"epoch": epoch_only, "plain": samples["plain"]}, "epoch", "plain")
    fit_ratio = paired_ratio(samples, "lightning", "plain")
    run = {"n": args.steps * args.batch_size, "batch_size": args.batch_size,
           "lightning_fit_s": median(samples["lightning"]), "lightning_epoch_s": median(epoch_only),
           "plain_epoch_s": median(samples["plain"]), "epoch_ratio": epoch_ratio, "fit_ratio": fit_ratio,
           "samples": samples, "epoch_samples": epoch_only}
    print(f"dcgan: n={run['n']} bs={args.batch_size} lightning fit {run['lightning_fit_s']:.3f}s (epoch "
          f"{run['lightning_epoch_s']:.3f}s) / plain {run['plain_epoch_s']:.3f}s: epoch ratio {epoch_ratio:.3f}, "
          f"fit ratio {fit_ratio:.3f} (Trainer setup included)", flush=True)
    out = {"quick": args.quick, "repeats": repeats, "machine": machine_facts(), "runs": [run],
           "ratios": [ratio_entry(f"dcgan_bs{args.batch_size}_epoch", epoch_ratio, "<= 1.10")]}
    report("dcgan", out, args.json)
    return out


if __name__ == "__main__":
    main()
