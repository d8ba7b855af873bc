"""Class-conditional DCGAN networks (Radford et al. 2015), sized from the image shape.

The generator starts from a small ``start x start`` map and doubles it with transposed convolutions until it
reaches the image side; the discriminator mirrors it with strided convolutions. For 28x28 images the start is
7x7 (two doublings), for 32x32 it is 4x4 (three doublings), for 64x64 it is 4x4 (four doublings, the paper's net).
"""

from __future__ import annotations

import torch
from torch import nn

#: smallest start map the nets grow from (and the discriminator shrinks to)
MIN_START_SIDE = 4
#: fewest doublings a DCGAN needs to be more than a linear layer
MIN_DOUBLINGS = 2


def doubling_plan(side: int) -> tuple[int, int]:
    """``(start_side, doublings)`` for a square image of ``side`` pixels: halve while the result stays >= 4.

    Raises ValueError when ``side`` cannot be reached by at least two doublings (side must be a multiple of 4
    and at least 16), because then the nets would have no convolutional depth.
    """
    start, doublings = int(side), 0
    while start % 2 == 0 and start // 2 >= MIN_START_SIDE:
        start //= 2
        doublings += 1
    if doublings < MIN_DOUBLINGS:
        raise ValueError(
            f"image side {side} is not supported by the DCGAN: it must be a multiple of 4 and at least 16 "
            "(e.g. 28, 32, 64)"
        )
    return start, doublings


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN init: convolutions N(0, 0.02), BatchNorm scale N(1, 0.02), biases 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _square_side(image_shape: tuple[int, int, int]) -> int:
    channels, height, width = (int(s) for s in image_shape)
    if height != width:
        raise ValueError(f"the DCGAN needs square images, got height {height} and width {width}")
    if channels <= 0:
        raise ValueError(f"image channels must be positive, got {channels}")
    return height


class DCGANGenerator(nn.Module):
    """Noise + class label -> image in [-1, 1].

    The label enters as a one-hot code concatenated to the latent vector (the cGAN recipe of Mirza & Osindero
    2014), so every class shares the convolutional stack. A fixed one-hot code rather than a learned embedding:
    with a learned 50-d embedding the generator learned to ignore its noise and collapsed to about one image per
    class on the 5,000-digit Colorized MNIST (within-class pixel std 2-3 vs 14 for real digits after 8 epochs);
    with the one-hot code it kept the real data's spread.
    """

    def __init__(
        self,
        latent_dim: int,
        num_classes: int,
        image_shape: tuple[int, int, int],
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        side = _square_side(image_shape)
        start, doublings = doubling_plan(side)
        self.latent_dim = int(latent_dim)
        self.num_classes = int(num_classes)
        widest = base_channels * 2 ** (doublings - 1)
        layers: list[nn.Module] = [
            # 1x1 -> start x start
            nn.ConvTranspose2d(latent_dim + num_classes, widest, start, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(widest),
            nn.ReLU(inplace=True),
        ]
        channels = widest
        for _ in range(doublings - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, image_shape[0], 4, stride=2, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        one_hot = torch.nn.functional.one_hot(labels.long(), self.num_classes).to(noise.dtype)
        code = torch.cat([noise, one_hot], dim=1)
        return self.net(code[:, :, None, None])


class ClassStdDev(nn.Module):
    """Appends, per sample, the mean feature standard deviation among the batch's samples of the same class.

    A minibatch-statistics feature (Salimans et al. 2016; Karras et al. 2018), computed within each class: a
    class-conditional generator that ignores its noise produces same-class samples with no spread, which the
    discriminator can then see and punish (a guard against per-class mode collapse).
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        flat = x.float().flatten(1)
        onehot = torch.nn.functional.one_hot(labels, self.num_classes).float()  # (B, L)
        count = onehot.sum(0).clamp(min=1).unsqueeze(1)  # (L, 1)
        mean = onehot.t() @ flat / count
        mean_sq = onehot.t() @ flat.square() / count
        std = (mean_sq - mean.square()).clamp(min=0).add(1e-8).sqrt().mean(1)  # (L,)
        feature = std[labels].to(x.dtype).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        return torch.cat([x, feature], dim=1)


class DCGANDiscriminator(nn.Module):
    """Image + class label -> one real/fake logit (no sigmoid: train with BCE-with-logits).

    The label enters as an extra input channel: a learned per-class ``H x W`` map concatenated to the image. With
    ``class_std`` the head also sees the within-class spread of the batch (``ClassStdDev``); without it, it is the
    plain conditional DCGAN discriminator.
    """

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int], base_channels: int = 64,
                 class_std: bool = True) -> None:
        super().__init__()
        side = _square_side(image_shape)
        start, doublings = doubling_plan(side)
        self.side = side
        self.label_map = nn.Embedding(num_classes, side * side)
        layers: list[nn.Module] = [
            # no BatchNorm on the input layer (DCGAN)
            nn.Conv2d(image_shape[0] + 1, base_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = base_channels
        for _ in range(doublings - 1):
            layers += [
                nn.Conv2d(channels, channels * 2, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels *= 2
        self.features = nn.Sequential(*layers)
        self.class_std = ClassStdDev(num_classes) if class_std else None
        # start x start (+ the within-class spread channel) -> 1x1 logit
        self.head = nn.Conv2d(channels + int(class_std), 1, start, stride=1, padding=0)
        self.apply(init_dcgan_weights)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        label_channel = self.label_map(labels).view(-1, 1, self.side, self.side).to(images.dtype)
        features = self.features(torch.cat([images, label_channel], dim=1))
        if self.class_std is not None:
            features = self.class_std(features, labels)
        return self.head(features).flatten()
