"""How one consumer sees an image: resize, then centre-crop to a square (the classifiers' view, a generator's view).

The same images feed consumers at different resolutions: Hard ImageNet's classifiers see the authors' 256 x 256
resize and 224 centre crop, Stable Diffusion trains at 512 on images whose shorter side is resized to 512 and then
centre-cropped (no aspect distortion), and generated images are stored at one resolution and brought to each
consumer's view when they are read. One operation does all of it, so a real image decoded from its file and a stored
generated image reach a consumer through exactly the same resize and crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torchvision is imported when an image is resized: the report reads a dataset's facts without it
    import torch
    from torchvision.transforms import InterpolationMode


@dataclass(frozen=True)
class ImageView:
    """Resize to ``resize`` (the shorter side, aspect kept; or both sides with ``squash``), centre-crop ``size``.

    ``resize=None`` crops without resizing, so ``ImageView(28)`` is the identity on 28 x 28 images (the in-memory
    datasets, whose every consumer sees them as stored).
    """

    size: int
    resize: int | None = None
    squash: bool = False

    @classmethod
    def shorter_side(cls, size: int) -> ImageView:
        """The shorter side resized to ``size``, then a centre crop of ``size`` x ``size``: no aspect distortion."""
        return cls(size=int(size), resize=int(size))

    def resized_shape(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) after the resize, before the crop (torchvision's rounding of the longer side)."""
        if self.resize is None:
            return height, width
        if self.squash:
            return self.resize, self.resize
        short, long = min(height, width), max(height, width)
        new_long = int(self.resize * long / short)
        return (self.resize, new_long) if height <= width else (new_long, self.resize)

    def is_identity_for(self, height: int, width: int) -> bool:
        """Whether images of ``height`` x ``width`` pass unchanged (no resize, no crop)."""
        return height == width == self.size and self.resized_shape(height, width) == (height, width)

    def __call__(self, images: torch.Tensor, interpolation: InterpolationMode | None = None) -> torch.Tensor:
        """uint8 images (..., C, H, W) as this view sees them: (..., C, size, size); a batch or a single image.
        ``interpolation`` defaults to bilinear."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        interpolation = InterpolationMode.BILINEAR if interpolation is None else interpolation
        height, width = images.shape[-2:]
        if self.is_identity_for(height, width):
            return images
        target = self.resized_shape(height, width)
        if target != (height, width):
            images = TF.resize(images, list(target), interpolation=interpolation, antialias=True)
        return TF.center_crop(images, [self.size, self.size])
