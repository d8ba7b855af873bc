"""How long the paper protocol takes on a GPU node: per-stage rates x the protocol's counts.

The counts come from the configs (``configs/hardimagenet.yaml``, ``configs/breeds_living17.yaml``: generations, S,
the filter's ratio, p, the FIFO window, LoRA epochs, the classifiers) and the real training set's size; the rates
from ``RATES``, each marked ``counted`` (Stable Diffusion 1.5's FLOPs per image, counted on torch's meta device:
``--count-flops`` recounts them), ``measured`` (with where) or ``estimated`` (with how). No GPU has measured a rate
yet, so every rate that turns FLOPs into time is an estimate; when ``benchmarks/gpu_hardimagenet_check.sh`` runs on
a GPU, put its numbers in ``RATES`` with ``measured`` and rerun:

    python benchmarks/time_model.py [--seeds 3] [--classifier-epochs 15] [--count-flops]

Three designs are projected, on 1 GPU and on 8:

* ``before``: the VAE encodes every real image at every LoRA step; each classifier epoch decodes and resizes every
  real JPEG; the five classifiers run one after another, each as DDP over every GPU (per-GPU batch = 32 / GPUs);
* ``caches``: real latents encoded once per run (and each pushed block once), the classifiers' view of the real
  images decoded once per run into a uint8 store (what ``cache_latents`` and the view store do);
* ``caches + side by side``: as ``caches`` and the classifiers of a generation run concurrently, one per GPU, each a
  single-device fit at batch 32 (``loop.classifier_parallelism: devices``), plus the worker pool's start once per
  launch.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Rate:
    value: float
    unit: str
    status: str  # "measured" or "estimated"
    how: str


H100_BF16_DENSE_TFLOPS = 989.0
RATES: dict[str, Rate] = {
    "mfu_sd": Rate(0.35, "fraction of peak", "estimated",
                   "typical model FLOP utilisation of a conv + attention UNet in bf16 with SDPA"),
    "unet_forward_tflop": Rate(0.803, "TFLOP per image", "counted",
                               "SD 1.5 UNet at 64 x 64 latents, one image (count_sd_flops)"),
    "vae_decoder_tflop": Rate(2.515, "TFLOP per image", "counted", "SD 1.5 VAE decoder to 512 x 512 (count_sd_flops)"),
    "vae_encoder_tflop": Rate(1.117, "TFLOP per image", "counted", "SD 1.5 VAE encoder of 512 x 512 (count_sd_flops)"),
    "lora_backward_over_forward": Rate(1.0, "x forward", "estimated",
                                       "frozen weights: the backward pass computes activation gradients only"),
    "resnet50_img_s": Rate(2500, "img/s per GPU", "estimated", "224 x 224 training at batch 32, bf16"),
    "deit_small_img_s": Rate(3000, "img/s per GPU", "estimated", "224 x 224 training at batch 32, bf16"),
    "alexnet_img_s": Rate(12000, "img/s per GPU", "estimated", "224 x 224 training at batch 32, bf16"),
    "mobilenet_v3_img_s": Rate(5000, "img/s per GPU", "estimated", "224 x 224 training at batch 32, bf16"),
    "vgg19_img_s": Rate(900, "img/s per GPU", "estimated", "224 x 224 training at batch 32, bf16"),
    "ddp_step_overhead_s": Rate(0.006, "s per optimizer step", "estimated",
                                "kernel launches at a tiny per-GPU batch plus the gradient all-reduce over 8 GPUs"),
    "jpeg_decode_img_s_per_worker": Rate(150, "img/s per loader worker", "estimated",
                                         "PIL decode + resize to 256 + crop 224 of an ImageNet JPEG on one core"),
    "epoch_fixed_s": Rate(10, "s per classifier epoch", "estimated",
                          "loader workers' start, validation, the checkpoint write"),
    "worker_pool_start_s": Rate(30, "s per launch", "estimated",
                                "a classifier worker's imports, config and data preparation (5-6 s on a 2-core CPU, "
                                "bench_classifier_parallel.py) plus CUDA's start and the view store's checksums"),
}
CLASSIFIER_RATE = {"resnet50": "resnet50_img_s", "deit_small": "deit_small_img_s", "alexnet": "alexnet_img_s",
                   "mobilenet_v3": "mobilenet_v3_img_s", "vgg19": "vgg19_img_s"}
# the real training set's size (docs/datasets.md; the configs' comments)
REAL_TRAIN = {"hardimagenet": 17_200, "breeds_living17": 79_560}
DESIGNS = ("before", "caches", "caches + side by side")


@dataclass(frozen=True)
class Protocol:
    name: str
    real: int
    generations: int
    block: int  # S, before the filter
    kept_share: float  # 1 - the filter's ratio
    share: float  # p
    window: int  # FIFO generations
    generator_epochs: int
    workers_per_process: int
    classifiers: tuple[str, ...]

    @classmethod
    def from_config(cls, path: Path) -> Protocol:
        config = yaml.safe_load(Path(path).read_text())
        loop, data = config["loop"], config["data"]
        regime = {"synthetic_share": 0.5, "window": 3, **(data.get("regime") or {})}  # data.regime's defaults
        ratio = sum(f.get("init_args", {}).get("ratio", 0.0) for f in config.get("filters") or [])
        return cls(name=Path(path).stem, real=REAL_TRAIN[Path(path).stem], generations=int(loop["generations"]),
                   block=int(loop["samples_per_generation"]), kept_share=1.0 - ratio,
                   share=float(regime["synthetic_share"]), window=int(regime["window"]),
                   generator_epochs=int(loop["generator_epochs"]), workers_per_process=int(data["num_workers"]),
                   classifiers=tuple(c["arch"] for c in config["classifiers"]))

    def kept(self) -> int:
        return round(self.block * self.kept_share)

    def training_set(self, generation: int) -> int:
        """|D_g|: every real image plus min(round(p / (1 - p) N), stack size) synthetic ones (the FIFO mix)."""
        stack = min(generation, self.window) * self.kept()
        return self.real + min(round(self.share / (1 - self.share) * self.real), stack)


def count_sd_flops() -> dict[str, float]:
    """TFLOP per image of SD 1.5's VAE encoder and decoder at 512 x 512 and of its UNet at 64 x 64 latents, counted by
    ``torch.utils.flop_counter`` on the meta device from the published architecture (no weights, no GPU)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        vae = AutoencoderKL(down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                            block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
                            sample_size=512)
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                    block_out_channels=[320, 640, 1280, 1280])
        image, latent, text = torch.randn(1, 3, 512, 512), torch.randn(1, 4, 64, 64), torch.randn(1, 77, 768)
        passes = {"vae_encoder_tflop": lambda: vae.encode(image), "vae_decoder_tflop": lambda: vae.decode(latent),
                  "unet_forward_tflop": lambda: unet(latent, torch.tensor([10]), encoder_hidden_states=text)}
        counted = {}
        for name, run in passes.items():
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                run()
            counted[name] = counter.get_total_flops() / 1e12
    return counted


def rate(name: str) -> float:
    return RATES[name].value


#: rates a GPU measured (``--measured``: gpu_hardimagenet_check.py's), in place of the FLOP-based estimates
MEASURED: dict[str, float] = {}
MEASURABLE = ("lora_uncached_img_s", "lora_cached_img_s", "sampling_img_s")


def lora_img_s(cached: bool) -> float:
    """LoRA training images/s on one GPU: UNet forward + backward, and the VAE encoder unless latents are cached."""
    measured = MEASURED.get("lora_cached_img_s" if cached else "lora_uncached_img_s")
    if measured is not None:
        return measured
    flop = rate("unet_forward_tflop") * (1 + rate("lora_backward_over_forward"))
    flop += 0.0 if cached else rate("vae_encoder_tflop")
    return H100_BF16_DENSE_TFLOPS * rate("mfu_sd") / flop


def sampling_img_s(steps: int = 30) -> float:
    """Generated images/s on one GPU: ``steps`` DDIM steps with guidance (two UNet passes each), one decode."""
    if "sampling_img_s" in MEASURED:
        return MEASURED["sampling_img_s"]
    flop = steps * 2 * rate("unet_forward_tflop") + rate("vae_decoder_tflop")
    return H100_BF16_DENSE_TFLOPS * rate("mfu_sd") / flop


def classifier_seconds(protocol: Protocol, arch: str, samples: int, epochs: int, gpus: int, design: str) -> float:
    """One classifier's training stage (``samples`` images an epoch) on ``gpus`` GPUs in one design."""
    compute = rate(CLASSIFIER_RATE[arch])
    if design == "caches + side by side" or gpus == 1:
        per_epoch = samples / compute  # batch 32 on its own GPU: no all-reduce, no tiny per-GPU batch
    else:
        steps = math.ceil(samples / 32)
        per_epoch = samples / (compute * gpus) + steps * rate("ddp_step_overhead_s")
    if design == "before":  # the real half is decoded every epoch by the loader workers of every process
        workers = protocol.workers_per_process * (1 if gpus == 1 else gpus)
        per_epoch = max(per_epoch, protocol.real / (rate("jpeg_decode_img_s_per_worker") * workers))
    return epochs * (per_epoch + rate("epoch_fixed_s"))


def generation_hours(protocol: Protocol, generation: int, gpus: int, design: str, epochs: int) -> dict[str, float]:
    """Hours of each stage of one generation (generation 0: the classifiers only)."""
    stages = {"lora": 0.0, "sampling": 0.0, "classifiers": 0.0}
    if generation >= 1:
        lora_images = protocol.generator_epochs * protocol.training_set(generation - 1)
        stages["lora"] = lora_images / (lora_img_s(cached=design != "before") * gpus) / 3600
        stages["sampling"] = protocol.block / (sampling_img_s() * gpus) / 3600
    samples = protocol.training_set(generation)
    times = [classifier_seconds(protocol, arch, samples, epochs, gpus, design) for arch in protocol.classifiers]
    if design == "caches + side by side":
        waves = [times[i:i + gpus] for i in range(0, len(times), gpus)]  # one classifier per GPU at a time
        stages["classifiers"] = sum(max(wave) for wave in waves) / 3600
    else:
        stages["classifiers"] = sum(times) / 3600
    return stages


def protocol_hours(protocol: Protocol, gpus: int, design: str, epochs: int, seeds: int) -> float:
    per_seed = sum(sum(generation_hours(protocol, g, gpus, design, epochs).values())
                   for g in range(protocol.generations + 1))
    if design == "caches + side by side":
        per_seed += rate("worker_pool_start_s") / 3600  # once per launch (a seed's run)
    return seeds * per_seed


def gpu_hours(protocol: Protocol, epochs: int, seeds: int) -> float:
    """GPU-hours of the protocol with the caches and every classifier on one GPU at batch 32: its time on one GPU."""
    return protocol_hours(protocol, 1, "caches", epochs, seeds)


def work_counts(protocol: Protocol, epochs: int) -> dict[str, dict[str, int]]:
    """Machine-independent counts per run (one seed): VAE encoder calls and real-JPEG decodes, before and after."""
    lora_real = protocol.generator_epochs * protocol.real * protocol.generations
    lora_all = sum(protocol.generator_epochs * protocol.training_set(g - 1) for g in range(1, protocol.generations + 1))
    decodes = len(protocol.classifiers) * epochs * protocol.real * (protocol.generations + 1)
    # after: the real images once, and each pushed block once when the first generator that trains on it starts (the
    # last generation's block trains no generator)
    after = protocol.real + (protocol.generations - 1) * protocol.kept()
    return {"vae_encodes": {"before": lora_all, "after": after},
            "real_vae_encodes": {"before": lora_real, "after": protocol.real},
            "jpeg_decodes": {"before": decodes, "after": protocol.real}}


def table(protocols: list[Protocol], seeds: int, epochs: int) -> str:
    lines = [f"| dataset | GPUs | design | LoRA h/gen | sampling h/gen | classifiers h/gen | generation h | "
             f"protocol h ({seeds} seeds) |", "|---|---|---|---|---|---|---|---|"]
    for protocol in protocols:
        for gpus in (1, 8):
            for design in DESIGNS:
                g = generation_hours(protocol, protocol.generations, gpus, design, epochs)
                total = protocol_hours(protocol, gpus, design, epochs, seeds)
                lines.append(f"| {protocol.name} | {gpus} | {design} | {g['lora']:.2f} | {g['sampling']:.2f} | "
                             f"{g['classifiers']:.2f} | {sum(g.values()):.2f} | {total:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--classifier-epochs", type=int, default=15,
                        help="mean epochs a classifier trains before early stopping (max_epochs 50, patience 5)")
    parser.add_argument("--count-flops", action="store_true", help="recount SD 1.5's FLOPs (needs diffusers)")
    parser.add_argument("--measured", nargs="*", default=[], metavar="NAME=IMG_S",
                        help=f"per-GPU rates a GPU measured, replacing the estimates: {', '.join(MEASURABLE)} "
                             "(benchmarks/gpu_hardimagenet_check.py passes its own)")
    args = parser.parse_args(argv)
    MEASURED.clear()
    for item in args.measured:
        name, _, value = item.partition("=")
        if name not in MEASURABLE or not value:
            parser.error(f"--measured {item}: expected NAME=IMG_S with NAME one of {', '.join(MEASURABLE)}")
        MEASURED[name] = float(value)
    if args.count_flops:
        for name, tflop in count_sd_flops().items():
            print(f"{name}: counted {tflop:.3f} (RATES holds {RATES[name].value})")
    protocols = [Protocol.from_config(REPO_ROOT / "configs" / f"{name}.yaml") for name in REAL_TRAIN]
    out = [table(protocols, args.seeds, args.classifier_epochs), ""]
    for protocol in protocols:
        out.append(f"{protocol.name}: LoRA {lora_img_s(False):.0f} -> {lora_img_s(True):.0f} img/s per GPU, "
                   f"sampling {sampling_img_s():.2f} img/s per GPU")
        for what, counts in work_counts(protocol, args.classifier_epochs).items():
            out.append(f"  {what} per run: {counts['before']:,} -> {counts['after']:,}")
    paper = {d: sum(protocol_hours(p, 8, d, args.classifier_epochs, args.seeds) for p in protocols) for d in DESIGNS}
    out.append("paper protocol (both datasets) on one 8-GPU node: " +
               ", ".join(f"{d} {h:.1f} h" for d, h in paper.items()))
    packed = sum(gpu_hours(p, args.classifier_epochs, args.seeds) for p in protocols) / 8
    out.append(f"caches + side by side with the seeds sharing the node (scripts/sweep.py --jobs 3 --gpus-per-job all) "
               f"so that no GPU idles: {packed:.1f} h (the GPU-hours / 8: a bound that assumes the jobs' time-sharing "
               "of the GPUs loses nothing; not measured)")
    floor = sum(p.generations * p.block / (sampling_img_s() * 8) / 3600 * args.seeds for p in protocols)
    out.append(f"of which sampling alone (no design here changes it): {floor:.1f} h")
    if MEASURED:
        out.append(f"measured on a GPU (replacing their estimates): "
                   f"{', '.join(f'{k} {v:g}' for k, v in MEASURED.items())}")
    estimated = sorted(name for name, r in RATES.items() if r.status == "estimated")
    out.append(f"estimated rates ({len(estimated)} of {len(RATES)}; the rest counted or measured): "
               f"{', '.join(estimated)}")
    text = "\n".join(out)
    print(text)
    return text


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
