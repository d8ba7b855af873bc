"""Registry of classifier architectures: how to build each one, where its head is, what input it needs.

Paper classifiers come from torchvision (as the paper says, "sourced from the PyTorch library") except DeiT-S
(timm). Pretrained ImageNet weights are read from a local file or the user's cache, never downloaded at run time:
``pretrained_weights_file`` names the file to fetch when it is absent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from common.environment import note_weight_file
from common.errors import ConfigError
from lightning_modules.networks.lenet import LeNet, TinyCNN

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ArchSpec:
    """How to build an architecture and the input it needs."""

    build: Callable[[int, int, float | None], nn.Module]  # (num_classes, in_chans, dropout) -> network
    head: str  # attribute path of the final nn.Linear (replaced to fit the number of classes)
    min_size: int = 1  # smallest input side the network accepts; smaller images are upsampled
    pretrained_size: int = 224  # input side used with ImageNet weights
    torchvision_name: str | None = None
    timm_name: str | None = None
    needs_rgb: bool = True  # grey images are repeated to 3 channels


def _torchvision(name: str) -> Callable[[int, int, float | None], nn.Module]:
    def build(num_classes: int, in_chans: int, dropout: float | None) -> nn.Module:
        kwargs = {} if dropout is None else {"dropout": dropout}
        return getattr(torchvision.models, name)(weights=None, num_classes=num_classes, **kwargs)

    return build


def _resnet50(num_classes: int, in_chans: int, dropout: float | None) -> nn.Module:
    return torchvision.models.resnet50(weights=None, num_classes=num_classes)


def _resnet18(num_classes: int, in_chans: int, dropout: float | None) -> nn.Module:
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


def _deit_small(num_classes: int, in_chans: int, dropout: float | None) -> nn.Module:
    import timm

    return timm.create_model("deit_small_patch16_224", pretrained=False, num_classes=num_classes,
                             drop_rate=dropout or 0.0)


def _tiny_vit(num_classes: int, in_chans: int, dropout: float | None) -> nn.Module:
    import timm

    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes, img_size=32,
                             patch_size=8, embed_dim=32, depth=2, num_heads=2, drop_rate=dropout or 0.1)


ARCHITECTURES: dict[str, ArchSpec] = {
    "lenet": ArchSpec(lambda n, c, d: LeNet(n, c, d or 0.0), head="classifier", needs_rgb=False),
    "alexnet": ArchSpec(_torchvision("alexnet"), head="classifier.6", min_size=63, torchvision_name="alexnet"),
    "vgg19": ArchSpec(_torchvision("vgg19"), head="classifier.6", min_size=32, torchvision_name="vgg19"),
    "resnet18": ArchSpec(_resnet18, head="fc", torchvision_name="resnet18"),
    "resnet50": ArchSpec(_resnet50, head="fc", torchvision_name="resnet50"),
    "mobilenet_v3_large": ArchSpec(_torchvision("mobilenet_v3_large"), head="classifier.3",
                                   torchvision_name="mobilenet_v3_large"),
    "mobilenet_v3_small": ArchSpec(_torchvision("mobilenet_v3_small"), head="classifier.3",
                                   torchvision_name="mobilenet_v3_small"),
    "deit_small": ArchSpec(_deit_small, head="head", min_size=224, timm_name="deit_small_patch16_224.fb_in1k"),
    # tiny architectures for tests and smoke runs
    "tiny_cnn": ArchSpec(lambda n, c, d: TinyCNN(n, c, dropout=0.1 if d is None else d), head="classifier",
                         needs_rgb=False, pretrained_size=32),
    "tiny_vit": ArchSpec(_tiny_vit, head="head", min_size=32, pretrained_size=32),
}
ARCHITECTURES["mobilenet_v3"] = ARCHITECTURES["mobilenet_v3_large"]


def get_arch(name: str) -> ArchSpec:
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {name!r}: choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def get_submodule_parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent_path, _, attr = path.rpartition(".")
    return (model.get_submodule(parent_path) if parent_path else model), attr


def replace_head(model: nn.Module, head_path: str, num_classes: int) -> nn.Linear:
    """Swap the final Linear for one with ``num_classes`` outputs (used after loading ImageNet weights)."""
    parent, attr = get_submodule_parent(model, head_path)
    old = model.get_submodule(head_path)
    new = nn.Linear(old.in_features, num_classes)
    setattr(parent, attr, new)
    return new


def pretrained_weights_file(name: str, weights_path: str | None) -> tuple[str | None, str]:
    """The local file holding ImageNet weights for ``name`` (or None) and a hint saying how to get it."""
    spec = get_arch(name)
    if weights_path:
        return (weights_path if os.path.isfile(weights_path) else None), f"the file {weights_path} does not exist"
    if spec.torchvision_name:
        url = torchvision.models.get_model_weights(spec.torchvision_name).DEFAULT.url
        cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
        hint = f"download {url} to {cached} (torchvision's cache) or set weights_path to a local copy"
        return (cached if os.path.isfile(cached) else None), hint
    if spec.timm_name:
        from huggingface_hub import try_to_load_from_cache

        repo = f"timm/{spec.timm_name}"
        found = try_to_load_from_cache(repo, "model.safetensors")
        hint = f"fetch the Hugging Face repo {repo} (model.safetensors) into your HF cache or set weights_path to it"
        return (found if isinstance(found, str) and os.path.isfile(found) else None), hint
    raise ConfigError(f"architecture {name!r} has no ImageNet weights: set pretrained: false")


def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """Read a state dict from .safetensors or a torch file, without unpickling arbitrary objects."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def build_network(name: str, num_classes: int, in_chans: int, dropout: float | None = None,
                  pretrained: bool = False, weights_path: str | None = None) -> nn.Module:
    """Build ``name`` with a ``num_classes`` head; with ``pretrained`` load ImageNet weights first."""
    spec = get_arch(name)
    if not pretrained:
        return spec.build(num_classes, in_chans, dropout)
    path, hint = pretrained_weights_file(name, weights_path)
    if path is None:
        raise ConfigError(f"ImageNet weights for {name!r} not found: {hint}")
    model = spec.build(1000, 3, dropout)
    missing, unexpected = model.load_state_dict(load_state_dict_file(path), strict=False)
    note_weight_file(path, f"ImageNet weights of {name}")
    if missing or unexpected:
        raise ConfigError(f"weights file {path} does not fit {name!r}: missing {missing[:5]}, unexpected "
                          f"{unexpected[:5]}; point weights_path at the ImageNet weights of this architecture")
    replace_head(model, spec.head, num_classes)
    return model
