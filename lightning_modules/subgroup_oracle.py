"""A learned subgroup oracle: reads which subgroup a (generated) image belongs to, where pixels cannot tell.

Colorized MNIST's subgroup is the stroke colour, read from the pixels; CIFAR-20's is the fine class, which needs a
model. The loop trains a classifier over the L x G (class, subgroup) cells of the real data once per run; for an
image generated as class c, its subgroup is the most likely of class c's G cells.
"""

from __future__ import annotations

import torch

from lightning_modules.classifier import ClassifierModule


class FineClassOracle:
    """Subgroup of each image given its intended class, from a classifier over (class, subgroup) cells."""

    def __init__(self, model: ClassifierModule, num_classes: int, num_groups: int,
                 device: str | torch.device = "cpu") -> None:
        self.model = model.eval().to(device)
        self.num_classes, self.num_groups, self.device = num_classes, num_groups, device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        groups = []
        for start in range(0, len(images), 512):
            logits = self.model(images[start : start + 512].to(self.device)).float().cpu()
            cells = logits.view(-1, self.num_classes, self.num_groups)
            chosen = cells[torch.arange(len(cells)), labels[start : start + 512].long()]
            groups.append(chosen.argmax(dim=1))
        return torch.cat(groups) if groups else torch.empty(0, dtype=torch.long)
