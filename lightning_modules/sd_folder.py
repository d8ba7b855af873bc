"""The local diffusers folder of Stable Diffusion 1.5: what it must hold, and its frozen parts loaded from it.

The LoRA generator (``stable_diffusion.py``) re-reads the base weights from here every generation (its checkpoints
hold only the LoRA adapter); nothing here touches the network (``local_files_only=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from common.environment import note_weight_file
from common.errors import ConfigError

if TYPE_CHECKING:  # diffusers and transformers are imported when the weights are loaded
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

#: what ``check_pretrained_path`` requires: a folder and, where it is a model, the file that describes it
REQUIRED_PRETRAINED_ENTRIES = {
    "model_index.json": None,
    "unet": "config.json",
    "vae": "config.json",
    "text_encoder": "config.json",
    "tokenizer": None,
    "scheduler": "scheduler_config.json",
}


def check_pretrained_path(path: str | Path) -> None:
    """Raise ConfigError naming every missing part of a local diffusers SD 1.5 folder, and where to get it."""
    root = Path(path).expanduser()
    missing = []
    for entry, described_by in REQUIRED_PRETRAINED_ENTRIES.items():
        if entry.endswith(".json"):
            if not (root / entry).is_file():
                missing.append(entry)
        elif not (root / entry).is_dir():
            missing.append(f"{entry}/")
        elif described_by is not None and not (root / entry / described_by).is_file():
            missing.append(f"{entry}/{described_by}")
    if missing:
        where = "does not exist" if not root.exists() else f"lacks {', '.join(missing)}"
        raise ConfigError(
            f"pretrained_path {str(root)!r} is not a local Stable Diffusion 1.5 diffusers folder: it {where} "
            f"(needs {', '.join(e if e.endswith('.json') else e + '/' for e in REQUIRED_PRETRAINED_ENTRIES)}). "
            "Download it on a machine with internet, e.g. `huggingface-cli download "
            f"stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir {root}`, copy it here and set "
            "model.init_args.pretrained_path to that folder"
        )


@dataclass
class FrozenParts:
    """SD's parts as loaded for LoRA fine-tuning: every weight frozen, in ``weight_dtype``, on the CPU."""

    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    scheduler_config: dict[str, Any]


def load_frozen_parts(path: str | Path, weight_dtype: torch.dtype) -> FrozenParts:
    """Load tokenizer, text encoder, VAE, UNet and the scheduler config from the folder at ``path`` (checked first),
    frozen; the text encoder and VAE in eval mode, the UNet in train mode (its adapter, added by the caller, trains)."""
    check_pretrained_path(path)
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    # load on the CPU whatever device context Lightning opened; the strategy moves the module afterwards
    with torch.device("cpu"):
        tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer", local_files_only=True)
        text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder", local_files_only=True)
        text_encoder.to(dtype=weight_dtype)
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae", local_files_only=True, torch_dtype=weight_dtype)
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", local_files_only=True,
                                                    torch_dtype=weight_dtype)
        scheduler_config = DDPMScheduler.load_config(path, subfolder="scheduler", local_files_only=True)
    for part in ("text_encoder", "vae", "unet"):
        for weights in sorted((Path(path) / part).glob("*.safetensors")) + sorted((Path(path) / part).glob("*.bin")):
            note_weight_file(weights, f"Stable Diffusion {part}")
    for frozen in (text_encoder, vae, unet):
        frozen.requires_grad_(False)
    text_encoder.eval()
    vae.eval()
    unet.train()  # Lightning keeps each submodule's mode: only the UNet (with its adapter) trains
    return FrozenParts(tokenizer, text_encoder, vae, unet, scheduler_config)
