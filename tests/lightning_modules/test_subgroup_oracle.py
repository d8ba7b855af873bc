"""The learned subgroup oracle picks the most likely subgroup within the intended class."""

import torch
from torch import nn

from lightning_modules.subgroup_oracle import FineClassOracle


class FixedLogits(nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits[: len(images)]


def test_oracle_reads_the_subgroup_within_the_intended_class():
    # 2 classes x 3 subgroups = 6 cells; image 0 looks most like cell (1, 2) overall but is generated as class 0,
    # where cell (0, 1) is the most likely of its class's cells
    logits = torch.tensor([[0.0, 5.0, 1.0, 0.0, 0.0, 9.0],
                           [0.0, 0.0, 0.0, 3.0, 1.0, 2.0]])
    oracle = FineClassOracle(FixedLogits(logits), num_classes=2, num_groups=3)
    groups = oracle(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]))
    assert groups.tolist() == [1, 0]
