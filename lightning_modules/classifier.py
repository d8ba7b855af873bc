"""The classifier trained (from scratch or from ImageNet weights) at every generation.

It only classifies: the test stage's callbacks (per-subgroup fairness, the object-mask ablations) read the logits
``test_step`` returns, so the module knows nothing of how it is evaluated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning import LightningModule
from torchmetrics.classification import MulticlassAccuracy

from common.errors import ConfigError
from lightning_modules.networks.registry import IMAGENET_MEAN, IMAGENET_STD, build_network, get_arch


class ClassifierModule(LightningModule):
    """Wraps a registry network; takes uint8 batches and normalises them on the device.

    ``channels_last`` stores the network and its inputs in NHWC (faster convolutions with tensor cores);
    ``compile`` runs the training, validation and test steps through ``torch.compile`` (the first steps compile).
    Both change speed only, never the checkpoint format; both are off by default (see BENCHMARKS.md).

    ``forward`` accepts uint8 images (B, C, H, W) (or floats in [0, 1]) and returns logits, so filters, FID and
    ablations can call a trained classifier directly on stored images. ``features`` returns the penultimate
    features (the input of the final Linear), used by the classifier-based FID.
    """

    #: the logged metrics worth a progress line, by name
    SHOWN_METRICS: tuple[str, ...] = ("train/loss", "val/loss", "val/acc")

    def __init__(
        self,
        arch: str,
        num_classes: int,
        num_groups: int,
        image_shape: tuple[int, int, int],
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        pretrained: bool = False,
        weights_path: str | None = None,
        linear_probe: bool = False,
        dropout: float | None = None,
        input_size: int | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if lr <= 0:
            raise ConfigError(f"classifier {arch!r}: lr must be > 0, got {lr}")
        spec = get_arch(arch)
        channels, height, width = image_shape
        self.in_chans = 3 if (spec.needs_rgb or pretrained) else channels
        self.net = build_network(arch, num_classes, self.in_chans, dropout, pretrained, weights_path)
        self.head = self.net.get_submodule(spec.head)
        side = max(height, width)
        self.input_size = input_size or (spec.pretrained_size if pretrained else max(side, spec.min_size))
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if pretrained else ((0.5,) * 3, (0.5,) * 3)
        self.register_buffer("mean", torch.tensor(mean[: self.in_chans]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std[: self.in_chans]).view(1, -1, 1, 1), persistent=False)
        # uint8 -> normalised in one fused multiply-add: x * 1/(255 std) - mean/std
        self.register_buffer("uint8_scale", 1.0 / (255.0 * self.std), persistent=False)
        self.register_buffer("uint8_shift", -self.mean / self.std, persistent=False)
        if linear_probe:
            for p in self.net.parameters():
                p.requires_grad_(False)
            for p in self.head.parameters():
                p.requires_grad_(True)
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # The compiled network is kept outside the module tree (no ``_orig_mod.`` keys in checkpoints) and used for
        # training, validation and test steps; filters, FID and ablations call the plain network.
        object.__setattr__(self, "_step_net", torch.compile(self.net) if compile else self.net)
        self.num_classes = num_classes
        self.num_groups = num_groups
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")

    @classmethod
    def from_checkpoint(cls, checkpoint: str, device: str | torch.device = "cpu") -> ClassifierModule:
        """A trained classifier from its Lightning checkpoint, in eval mode (tensors only, nothing unpickled)."""
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        hparams = {k: v for k, v in state["hyper_parameters"].items() if not k.startswith("_")}
        model = cls(**hparams)
        model.load_state_dict(state["state_dict"])
        return model.eval().to(device)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or [0, 1] float) images -> normalised float input of the network's size, on the batch."""
        is_uint8 = images.dtype == torch.uint8
        x = images.float()
        if x.shape[1] != self.in_chans:
            x = x.expand(-1, self.in_chans, -1, -1) if x.shape[1] == 1 else x[:, : self.in_chans]
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.input_size)
        x = torch.addcmul(self.uint8_shift, x, self.uint8_scale) if is_uint8 else (x - self.mean) / self.std
        return x.contiguous(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.preprocess(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features: the input of the final Linear layer."""
        captured: list[torch.Tensor] = []
        handle = self.head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
        try:
            self(images)
        finally:
            handle.remove()
        return captured[0].flatten(1).float()

    def _shared_step(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, labels = batch["image"], batch["label"]
        logits = self._step_net(self.preprocess(images)).float()
        return F.cross_entropy(logits, labels), logits, labels

    def on_train_epoch_start(self) -> None:
        # this rank's summed loss and correct predictions (on the device: no sync per step), steps and samples
        self._loss_sum = torch.zeros((), device=self.device)
        self._correct = torch.zeros((), device=self.device, dtype=torch.long)
        self._steps = self._seen = 0

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """One optimisation step. Nothing is logged per step except every ``trainer.log_every_n_steps`` steps (what the
        logger writes anyway), and the training accuracy is a running count, not a torchmetrics update: on a small
        network ``self.log`` and a validated metric update cost a noticeable share of the step (and the validation
        waits for the GPU). The epoch's mean loss and accuracy are logged once, at the epoch's end."""
        loss, logits, labels = self._shared_step(batch)
        self._loss_sum += loss.detach()
        self._correct += (logits.detach().argmax(dim=1) == labels).sum()
        self._steps, self._seen = self._steps + 1, self._seen + len(labels)
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss, prog_bar=True, batch_size=len(labels))
        return loss

    def on_train_epoch_end(self) -> None:
        sums = torch.stack((self._loss_sum, self._correct.float(), self._loss_sum.new_tensor(float(self._steps)),
                            self._loss_sum.new_tensor(float(self._seen))))
        loss_sum, correct, steps, seen = self.trainer.strategy.reduce(sums, reduce_op="sum")  # over DDP ranks
        self.log("train/loss", loss_sum / steps.clamp(min=1))
        self.log("train/acc", correct / seen.clamp(min=1))

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, logits, labels = self._shared_step(batch)
        self.val_acc.update(logits, labels)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(labels))
        self.log("val/acc", self.val_acc, prog_bar=True, batch_size=len(labels))

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        """The logits, for the test stage's callbacks (fairness, ablations)."""
        return self._shared_step(batch)[1]

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
