"""Stable Diffusion 1.5 + LoRA throughput at full size (random weights, offline) and the tiny Hard ImageNet loop.

On a GPU machine without internet: builds the full-size SD 1.5 architecture (UNet 860M, VAE 84M, CLIP ViT-L/14 text
encoder 123M) with random weights, saves it as a diffusers folder, loads it through ``StableDiffusionLoRA`` (the code
path real weights take) and measures, in bf16-mixed:
  - LoRA fine-tuning steps/s (batch ``--train-batch``, 512 px),
  - images generated/s through ``trainer.predict`` (``--steps`` DDIM steps, 512 px, batch ``--gen-batch``),
  - LoRA images/s of an epoch over fake Hard ImageNet JPEGs through the loop's data path, with the latent cache and
    encoding every image at its step (``bench_latent_cache.fit_epoch``),
then runs the tiny 2-generation Hard ImageNet loop of the test suite on the GPU through the CLI with two classifiers,
one after another and side by side (``--loop.classifier_parallelism devices``: one worker per GPU), and prints the
paper protocol's projected hours from the measured rates (``time_model.py --measured``).
``--quick`` runs everything at tiny size on the CPU (smoke test; numbers mean nothing).

    python benchmarks/gpu_hardimagenet_check.py [--json PATH]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L  # noqa: E402
import torch  # noqa: E402
from harness import REPO_ROOT, base_parser, report  # noqa: I001  (benchmarks/harness.py puts the repo on sys.path)
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402


def build_full_size_sd(path: Path, quick: bool) -> Path:
    """Save an SD 1.5-shaped pipeline with random weights (or the tiny test one with ``quick``)."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from tests.fakes.tiny_sd import build_tiny_sd

    tiny = build_tiny_sd(path.parent / "tiny_sd")
    if quick:
        return tiny
    tokenizer = CLIPTokenizer.from_pretrained(tiny / "tokenizer")  # a hand-written BPE: ids fit any vocab size
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=512)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                                num_hidden_layers=12, num_attention_heads=12,
                                                max_position_embeddings=77, hidden_act="quick_gelu",
                                                bos_token_id=tokenizer.bos_token_id,
                                                eos_token_id=tokenizer.eos_token_id,
                                                pad_token_id=tokenizer.pad_token_id))
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, steps_offset=1, clip_sample=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def named_batch(items: list[tuple]) -> dict:
    """The named batch (``common.samples.Batch``) a training step reads, from (image, label, subgroup) tuples."""
    from common.samples import make_batch

    return make_batch(*(torch.stack(column) for column in zip(*items)))


#: two classifiers for the tiny loop's sequential and side-by-side runs
TWO_CLASSIFIERS = json.dumps([{"arch": "tiny_cnn", "name": name, "lr": 0.01, "max_epochs": 2, "patience": 0}
                              for name in ("a", "b")])


def latent_cache_epochs(work: Path, sd_path: Path, size: int, batch: int, images: int, accelerator: str,
                        precision: str, quick: bool) -> dict:
    """LoRA images/s of one epoch over fake Hard ImageNet JPEGs with the latent cache and without (the loop's data
    path: decode, resize and crop at ``size``; the cache built once first)."""
    from bench_latent_cache import fit_epoch

    from datamodules.generational import GenerationalDataModule
    from datamodules.hard_imagenet import HardImageNet
    from datamodules.latent_cache import LatentCache
    from tests.fakes.hard_imagenet import write_fake_hard_imagenet

    per_class = max(1, images // 15)
    side = 48 if quick else size
    roots = write_fake_hard_imagenet(work / "lora_data", n_train_per_class=per_class, n_val_per_class=1, size=side,
                                     width=side * 5 // 4)
    data = GenerationalDataModule(HardImageNet(*roots, val_fraction=0.0), batch_size=batch)
    data.validate()
    cache = LatentCache(work / "latent_cache")
    t0 = time.perf_counter()
    fit_epoch(sd_path, data, batch, cache, size, accelerator, precision)  # builds the cache, warms up
    build_s = time.perf_counter() - t0
    uncached = fit_epoch(sd_path, data, batch, None, size, accelerator, precision)
    cached = fit_epoch(sd_path, data, batch, cache, size, accelerator, precision)
    return {"lora_epoch_images": data.n_real, "lora_uncached_images_per_s": round(data.n_real / uncached, 3),
            "lora_cached_images_per_s": round(data.n_real / cached, 3),
            "latent_cache_epoch_ratio": round(cached / uncached, 4),
            "latent_cache_build_and_epoch_s": round(build_s, 1)}


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--gen-batch", type=int, default=8)
    parser.add_argument("--gen-images", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="DDIM inference steps")
    parser.add_argument("--cache-images", type=int, default=60, help="JPEGs of the cached / uncached LoRA epochs")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    if not gpu and not args.quick:
        print("gpu_hardimagenet_check: no CUDA GPU on this machine: skipped (use --quick for a CPU smoke run)")
        return
    from lightning_modules.stable_diffusion import StableDiffusionLoRA
    from tests.fakes.hard_imagenet import write_fake_hard_imagenet

    size = 32 if args.quick else 512
    train_batch, train_steps = (2, 2) if args.quick else (args.train_batch, args.train_steps)
    gen_batch, gen_images, steps = (2, 4, 2) if args.quick else (args.gen_batch, args.gen_images, args.steps)
    accelerator, precision = ("gpu", "bf16-mixed") if gpu else ("cpu", "bf16-mixed")
    work = Path(tempfile.mkdtemp(prefix="sd_check_"))
    results: dict = {"device": torch.cuda.get_device_name(0) if gpu else "cpu", "resolution": size}
    try:
        t0 = time.perf_counter()
        sd_path = build_full_size_sd(work / "sd15", args.quick)
        results["build_s"] = round(time.perf_counter() - t0, 1)
        names = [f"class {i}" for i in range(15)]
        module = StableDiffusionLoRA(pretrained_path=str(sd_path), class_names=names,
                                     train_resolution=size, generation_resolution=size, num_inference_steps=steps,
                                     lora_rank=8, lora_alpha=8)
        # the loop hands SD its training images at its own resolution (shorter side resized, centre crop)
        images = torch.randint(0, 256, (train_batch * (train_steps + 2), 3, size, size), dtype=torch.uint8)
        labels = torch.arange(len(images)) % 15
        train = DataLoader(TensorDataset(images, labels, torch.full_like(labels, -1)), batch_size=train_batch,
                           collate_fn=named_batch)
        trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_steps=train_steps + 2,
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False)

        class StepTimer(L.Callback):
            times: list[float] = []

            def on_train_batch_end(self, *a, **k) -> None:
                if gpu:
                    torch.cuda.synchronize()
                self.times.append(time.perf_counter())

        timer = StepTimer()
        trainer.callbacks.append(timer)
        trainer.fit(module, train)
        # the first 2 steps warm up (kernels, allocator); steps/s over the rest
        results["lora_train_steps_per_s"] = round(train_steps / (timer.times[-1] - timer.times[1]), 3)
        results["lora_train_images_per_s"] = round(results["lora_train_steps_per_s"] * train_batch, 3)
        predict = DataLoader(TensorDataset(torch.arange(gen_images), torch.arange(gen_images) % 15,
                                           torch.zeros(gen_images).long()), batch_size=gen_batch)
        trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, logger=False,
                            enable_progress_bar=False, enable_model_summary=False)
        warm_up = TensorDataset(torch.arange(gen_batch), torch.zeros(gen_batch).long(), torch.zeros(gen_batch).long())
        trainer.predict(module, DataLoader(warm_up, batch_size=gen_batch))
        if gpu:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        trainer.predict(module, predict, return_predictions=False)
        if gpu:
            torch.cuda.synchronize()
        results["generation_images_per_s"] = round(gen_images / (time.perf_counter() - t0), 3)
        results["generation_steps"] = steps
        if gpu:
            results["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        del module, trainer
        if gpu:
            torch.cuda.empty_cache()
        results.update(latent_cache_epochs(work, sd_path, size, train_batch, args.cache_images, accelerator,
                                           precision, args.quick))
        # the tiny Hard ImageNet loop of the test suite, on this device, through the CLI: sequential, side by side
        imagenet_root, mask_root = write_fake_hard_imagenet(work / "hard_imagenet", size=48)
        rows = {}
        for parallelism in ("sequential", "devices"):
            t0 = time.perf_counter()
            run_dir = work / f"run_{parallelism}"
            proc = subprocess.run(
                [sys.executable, str(REPO_ROOT / "cli.py"), "fit", "--config",
                 str(REPO_ROOT / "tests" / "configs" / "tiny_hardimagenet.yaml"), "--loop.run_dir", str(run_dir),
                 "--data.source.init_args.imagenet_root", str(imagenet_root), "--data.source.init_args.mask_root",
                 str(mask_root), "--model.init_args.pretrained_path", str(work / "tiny_sd"), "--trainer.accelerator",
                 accelerator, "--trainer.precision", precision, "--classifiers", TWO_CLASSIFIERS,
                 "--loop.classifier_parallelism", parallelism],
                cwd=REPO_ROOT, capture_output=True, text=True)
            ok = proc.returncode == 0 and (run_dir / "results.jsonl").exists()
            results[f"tiny_loop_{parallelism}_ok"] = ok
            results[f"tiny_loop_{parallelism}_s"] = round(time.perf_counter() - t0, 1)
            if not ok:
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                continue
            rows[parallelism] = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
        results["tiny_loop_ok"] = all(results[f"tiny_loop_{p}_ok"] for p in ("sequential", "devices"))
        if len(rows) == 2:  # the same rows, to the GPU's nondeterminism (cuDNN's algorithms)
            results["side_by_side_max_acc_difference"] = max(
                abs(a["acc"] - b["acc"]) for a, b in zip(rows["sequential"], rows["devices"]))
        if "lora_cached_images_per_s" in results and not args.quick:
            import time_model

            measured = {"lora_uncached_img_s": results["lora_uncached_images_per_s"],
                        "lora_cached_img_s": results["lora_cached_images_per_s"],
                        "sampling_img_s": results["generation_images_per_s"]}
            text = time_model.main(["--measured", *(f"{k}={v}" for k, v in measured.items())])
            results["protocol_line"] = next(line for line in text.splitlines() if line.startswith("paper protocol"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for key, value in results.items():
        print(f"{key}: {value}")
    report("gpu_hardimagenet_check", {"ratios": [], **results}, args.json)
    if not results.get("tiny_loop_ok"):
        sys.exit(1)


if __name__ == "__main__":
    main()
