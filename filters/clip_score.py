"""CLIP score filter: how well a generated image matches the text "a photo of a {class name}" (paper app. C).

score = 100 * cosine(image embedding, text embedding) with open_clip. Weights are never downloaded here:
``check_available`` finds them in the local caches (or ``checkpoint_path``) or raises a ConfigError that
says what to fetch. open_clip is imported lazily because importing it takes seconds.
"""

from __future__ import annotations

import json
import os
import string
import tempfile
import warnings
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from common.environment import note_weight_file
from common.errors import ConfigError

from .base import FilterContext, Scorer

_INTERPOLATION = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}
_HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
#: the placeholders a prompt template may use (``prompts`` fills them from the class)
TEMPLATE_KEYS = ("class_name",)


def register_model_config(model_name: str, model_config: dict[str, Any]) -> None:
    """Make ``model_name`` an open_clip architecture (e.g. a tiny test model) via ``open_clip.add_model_config``."""
    import open_clip

    if not all(key in model_config for key in ("embed_dim", "vision_cfg", "text_cfg")):
        raise ConfigError(
            f"ClipScoreFilter.model_config for {model_name!r} must have embed_dim, vision_cfg and text_cfg "
            "(the layout of open_clip's model_configs/*.json)"
        )
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"{model_name}.json")
        with open(path, "w") as handle:
            json.dump(model_config, handle)
        open_clip.add_model_config(path)  # reads the file now; the registry keeps the parsed config


def _cached_pretrained_file(pretrained_cfg: dict[str, Any]) -> tuple[str | None, str]:
    """(local file or None, what to fetch) for an open_clip pretrained tag, looking only at local caches."""
    if pretrained_cfg.get("file"):
        return (pretrained_cfg["file"] if os.path.isfile(pretrained_cfg["file"]) else None), pretrained_cfg["file"]
    hf_hub = pretrained_cfg.get("hf_hub", "")
    if hf_hub:  # open_clip prefers the HF hub when the tag has both
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hf_hub)  # open_clip's own parsing: "org/model/" -> default file
        if filename.endswith((".bin", ".pth")):
            candidates: tuple[str, ...] = (filename[:-4] + ".safetensors", filename)
        else:
            candidates = (filename,) if filename else _HF_WEIGHT_FILES
        for candidate in candidates:
            cached = try_to_load_from_cache(repo_id=repo_id, filename=candidate)
            if isinstance(cached, str) and os.path.isfile(cached):
                return cached, f"Hugging Face repo {repo_id}"
        return None, f"Hugging Face repo {repo_id} (file {filename or _HF_WEIGHT_FILES[0]})"
    url = pretrained_cfg.get("url", "")
    target = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
    return (target if url and os.path.isfile(target) else None), url


class ClipScoreFilter(Scorer):
    """Drops the generated images least similar to their class prompt."""

    name = "clip"

    def __init__(
        self,
        ratio: float,
        per_class: bool = True,
        mode: Literal["quantile", "range"] = "quantile",
        model_name: str = "ViT-B-32",
        pretrained: str | None = "openai",
        checkpoint_path: str | None = None,
        template: str = "a photo of a {class_name}",
        batch_size: int = 64,
        class_names: list[str] | None = None,
        model_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(ratio, per_class, mode)
        if "{class_name}" not in template:
            raise ConfigError(f"ClipScoreFilter.template must contain '{{class_name}}', got {template!r}")
        if int(batch_size) < 1:
            raise ConfigError(f"ClipScoreFilter.batch_size must be >= 1, got {batch_size}")
        self.model_name = model_name
        self.pretrained = pretrained
        self.checkpoint_path = checkpoint_path
        self.template = template
        self.batch_size = int(batch_size)
        self.class_names = list(class_names) if class_names is not None else None
        if model_config is not None:
            register_model_config(model_name, model_config)
        self._model: nn.Module | None = None
        self._tokenizer = None
        self._preprocess_cfg: dict[str, Any] = {}
        self._text_cache: dict[tuple[tuple[str, ...], str], torch.Tensor] = {}

    def check_available(self) -> None:
        """ConfigError unless the model's weights can be loaded without network."""
        import open_clip

        if self.model_name not in open_clip.list_models() and not self.model_name.startswith(("hf-hub:", "local-dir:")):
            raise ConfigError(
                f"ClipScoreFilter.model_name {self.model_name!r} is not an open_clip model; pick one of "
                "open_clip.list_models() (e.g. 'ViT-B-32') or pass model_config to register a custom one"
            )
        if self.checkpoint_path is not None:
            if not os.path.isfile(self.checkpoint_path):
                raise ConfigError(
                    f"ClipScoreFilter.checkpoint_path {self.checkpoint_path!r} does not exist; point it to an "
                    f"open_clip {self.model_name} checkpoint (state dict) or unset it to use pretrained"
                )
            return
        if self.pretrained is None:
            warnings.warn(
                f"ClipScoreFilter uses a randomly initialised {self.model_name} (pretrained=None, no checkpoint_path): "
                "its scores are meaningless outside tests",
                stacklevel=2,
            )
            return
        if self.model_name.startswith(("hf-hub:", "local-dir:")) or os.path.isfile(self.pretrained):
            return
        tag_cfg = open_clip.get_pretrained_cfg(self.model_name, self.pretrained)
        if not tag_cfg:
            raise ConfigError(
                f"ClipScoreFilter.pretrained {self.pretrained!r} is neither a file nor a tag of {self.model_name}; "
                f"known tags: {open_clip.list_pretrained_tags_by_model(self.model_name)}"
            )
        local, source = _cached_pretrained_file(tag_cfg)
        if local is None:
            raise ConfigError(
                f"open_clip weights {self.model_name}/{self.pretrained} are not available offline (source: {source}). "
                'On a machine with internet run `python -c "import open_clip; open_clip.create_model_and_transforms('
                f"'{self.model_name}', pretrained='{self.pretrained}')\"` and copy its Hugging Face cache (HF_HOME) "
                "here, or download the weights file and set checkpoint_path to it"
            )

    def check_dataset(self, class_names: list[str]) -> None:
        """The template's placeholders must be ones a class can fill ({class_name}), and ``class_names``, when
        given, must name every class of the dataset: otherwise the prompts fail in the middle of a generation."""
        keys = sorted({field for _, field, _, _ in string.Formatter().parse(self.template) if field is not None})
        unknown = [key for key in keys if key not in TEMPLATE_KEYS]
        if unknown:
            raise ConfigError(
                f"ClipScoreFilter.template {self.template!r} has placeholder(s) {unknown} that the dataset cannot "
                f"fill: a prompt knows only {{class_name}}; write e.g. 'a photo of a {{class_name}}' or "
                "'{class_name}'"
            )
        if self.class_names is not None and len(self.class_names) != len(class_names):
            raise ConfigError(
                f"ClipScoreFilter.class_names has {len(self.class_names)} names but the dataset has "
                f"{len(class_names)} classes ({class_names[:3]}...): give one name per class, or remove class_names "
                "to use the dataset's"
            )

    def validate(self, context: FilterContext) -> None:
        self.check_available()
        if not (self.class_names or context.class_names):
            raise ConfigError(
                "ClipScoreFilter needs class names for its prompts: set class_names or context.class_names"
            )

    def load_model(self, device: str = "cpu") -> nn.Module:
        """The open_clip model in eval mode on ``device`` (built once, then reused)."""
        if self._model is None:
            import open_clip

            self.check_available()
            model, _, _ = open_clip.create_model_and_transforms(
                self.model_name, pretrained=self.checkpoint_path or self.pretrained
            )
            weights = self._weights_file(open_clip)
            if weights is not None:
                note_weight_file(weights, f"CLIP {self.model_name} (ClipScoreFilter)")
            self._model = model.eval().requires_grad_(False)
            self._tokenizer = open_clip.get_tokenizer(self.model_name)
            self._preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(model))
        self._model.to(device)
        return self._model

    def _weights_file(self, open_clip) -> str | None:
        """The local file the model's weights were read from (checkpoint_path, a file given as pretrained, or the
        cached file of a pretrained tag), for the run's provenance; None for random weights or a hub folder."""
        if self.checkpoint_path:
            return self.checkpoint_path
        if self.pretrained is None or self.model_name.startswith(("hf-hub:", "local-dir:")):
            return None
        if os.path.isfile(self.pretrained):
            return self.pretrained
        tag_cfg = open_clip.get_pretrained_cfg(self.model_name, self.pretrained)
        return _cached_pretrained_file(tag_cfg)[0] if tag_cfg else None

    def preprocess(self, images: torch.Tensor, device: str) -> torch.Tensor:
        """uint8 (B, 1|3, H, W) -> the normalised float batch CLIP expects, with tensor ops on the whole batch."""
        cfg = self._preprocess_cfg
        x = images.to(device).float().div(255.0)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        size = cfg.get("size", 224)
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        interpolation = _INTERPOLATION.get(cfg.get("interpolation", "bicubic"), InterpolationMode.BICUBIC)
        mode = cfg.get("resize_mode", "shortest")
        if mode == "squash":
            x = TF.resize(x, [height, width], interpolation=interpolation, antialias=True)
        elif mode == "longest":
            scale = min(height / x.shape[-2], width / x.shape[-1])
            new_size = [max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale))]
            x = TF.resize(x, new_size, interpolation=interpolation, antialias=True)
            pad_h, pad_w = height - x.shape[-2], width - x.shape[-1]
            fill = cfg.get("fill_color", 0) / 255.0
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2], value=fill)
        else:  # "shortest": resize the short side, then centre crop (CLIP's own preprocessing)
            scale = max(height / x.shape[-2], width / x.shape[-1])
            new_size = [max(height, round(x.shape[-2] * scale)), max(width, round(x.shape[-1] * scale))]
            x = TF.center_crop(TF.resize(x, new_size, interpolation=interpolation, antialias=True), [height, width])
        x = x.clamp(0.0, 1.0)  # bicubic overshoots; PIL's uint8 pipeline clips too
        mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), device=device).view(1, -1, 1, 1)
        std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), device=device).view(1, -1, 1, 1)
        return (x - mean) / std

    def prompts(self, class_names: list[str]) -> list[str]:
        """The text of each class: the template around its name, underscores read as spaces ("aquatic mammals")."""
        return [self.template.format(class_name=name.replace("_", " ")) for name in class_names]

    def _text_features(self, class_names: list[str], device: str) -> torch.Tensor:
        key = (tuple(class_names), str(device))
        if key not in self._text_cache:
            tokens = self._tokenizer(self.prompts(class_names)).to(device)
            self._text_cache[key] = self._model.encode_text(tokens, normalize=True).float()
        return self._text_cache[key]

    @torch.no_grad()
    def score(self, images: torch.Tensor, labels: torch.Tensor, context: FilterContext) -> torch.Tensor:
        class_names = self.class_names or context.class_names
        labels = labels.long()
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(class_names)):
            raise ConfigError(
                f"labels range over [{int(labels.min())}, {int(labels.max())}] but {len(class_names)} class names "
                "were given; the CLIP prompts need one name per class"
            )
        model = self.load_model(context.device)
        text = self._text_features(class_names, context.device)
        scores = []
        for start in range(0, images.shape[0], self.batch_size):
            batch = self.preprocess(images[start : start + self.batch_size], context.device)
            image_features = model.encode_image(batch, normalize=True).float()
            batch_labels = labels[start : start + self.batch_size].to(context.device)
            scores.append(100.0 * (image_features * text[batch_labels]).sum(dim=-1))
        return torch.cat(scores).cpu() if scores else torch.zeros(0)
