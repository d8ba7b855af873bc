"""LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling, the paper's smallest classifier."""

from __future__ import annotations

import torch
from torch import nn


class LeNet(nn.Module):
    """LeNet-5 for 28x28 or 32x32 inputs; ``dropout`` > 0 adds dropout before the last two layers (for MC dropout)."""

    def __init__(self, num_classes: int, in_chans: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5),
            nn.Flatten(),
        )
        self.pre_logits = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pre_logits(self.features(x)))


class TinyCNN(nn.Module):
    """A two-layer CNN with dropout, for fast tests of the whole loop (MC dropout included)."""

    def __init__(self, num_classes: int, in_chans: int = 3, width: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
