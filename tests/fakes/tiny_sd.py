"""A tiny, randomly initialised Stable Diffusion 1.5-style folder, so the SD + LoRA code runs offline in seconds.

The layout is the one ``huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5`` produces
(``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``), so the module under
test loads it through exactly the code path it uses for the real weights. Images are 32 px, latents 16 px.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

#: BPE merges covering the prompt template and a few class names; other words fall back to single characters
TINY_MERGES = ["c a", "ca t</w>", "p h", "ph o", "pho t", "phot o</w>", "o f</w>", "d o", "do g</w>", "b i", "bi r"]
TINY_IMAGE_SIZE = 32


def _write_tokenizer_files(folder: Path) -> None:
    """vocab.json + merges.txt by hand: CLIPTokenizer needs nothing else, and no download."""
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|startoftext|>", "<|endoftext|>"]
    chars = list(string.ascii_lowercase + string.digits + ".,!?'-")
    tokens = specials + chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in TINY_MERGES]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(TINY_MERGES) + "\n")


#: SD 1.5's architecture with every channel count divided by 8, at 128 px (latents 16 x 16): its VAE encoder costs
#: 1.37 times its UNet forward pass (SD 1.5 at 512 px: 1.39; counted by benchmarks/bench_latent_cache.py), so a CPU
#: epoch of it weighs the encoder as SD 1.5's does
SD15_SHAPED_IMAGE_SIZE = 128
SD15_SHAPED_DIVISOR = 8


def _text_encoder(tokenizer: CLIPTokenizer, hidden_size: int) -> CLIPTextModel:
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=37, num_attention_heads=4,
            num_hidden_layers=2, max_position_embeddings=77, layer_norm_eps=1e-5,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def tiny_networks(tokenizer: CLIPTokenizer) -> tuple:
    """(text encoder, UNet ~1M params, VAE) of the tiny pipeline: 32 px images, 16 px latents (made in this order:
    the weights are a function of the seed and of it)."""
    text_encoder = _text_encoder(tokenizer, 32)
    unet = UNet2DConditionModel(
        sample_size=TINY_IMAGE_SIZE // 2, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), norm_num_groups=32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8,
    )
    vae = AutoencoderKL(  # two blocks -> latents are half the image size
        in_channels=3, out_channels=3, latent_channels=4, sample_size=TINY_IMAGE_SIZE, norm_num_groups=32,
        block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    )
    return text_encoder, unet, vae


def sd15_shaped_networks(tokenizer: CLIPTokenizer) -> tuple:
    """(text encoder, UNet, VAE) with SD 1.5's blocks, layers and heads and its channels divided by
    ``SD15_SHAPED_DIVISOR``: 128 px images, 16 px latents (the VAE downsamples 8 times, as SD 1.5's)."""
    d = SD15_SHAPED_DIVISOR
    text_encoder = _text_encoder(tokenizer, 768 // d)
    unet = UNet2DConditionModel(sample_size=SD15_SHAPED_IMAGE_SIZE // 8, cross_attention_dim=768 // d,
                                attention_head_dim=8, block_out_channels=[320 // d, 640 // d, 1280 // d, 1280 // d],
                                norm_num_groups=8)
    vae = AutoencoderKL(down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        block_out_channels=[128 // d, 256 // d, 512 // d, 512 // d], layers_per_block=2,
                        latent_channels=4, sample_size=SD15_SHAPED_IMAGE_SIZE, norm_num_groups=8)
    return text_encoder, unet, vae


def build_tiny_sd(path: str | Path, seed: int = 0, shape: str = "tiny") -> Path:
    """Save a complete tiny SD pipeline (UNet, VAE, CLIP text encoder, BPE tokenizer, DDPM scheduler): ``shape``
    ``tiny`` (``tiny_networks``: seconds on a CPU, for tests) or ``sd15`` (``sd15_shaped_networks``: SD 1.5's
    proportions, for benchmarks).

    Weights are a pure function of ``seed``; the caller's global RNG state is left untouched.
    """
    path = Path(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _write_tokenizer_files(path / "_tokenizer_src")
        tokenizer = CLIPTokenizer.from_pretrained(path / "_tokenizer_src", model_max_length=77)
        text_encoder, unet, vae = {"tiny": tiny_networks, "sd15": sd15_shaped_networks}[shape](tokenizer)
        # SD 1.5's noise schedule; steps_offset=1 and clip_sample=False avoid the pipeline's config rewrites
        scheduler = DDPMScheduler(
            num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
            steps_offset=1, clip_sample=False,
        )
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(path)  # no LoRA attached here, so the saved UNet keys are plain
    shutil.rmtree(path / "_tokenizer_src")
    return path
