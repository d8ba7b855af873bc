"""ImageView: the one resize-and-crop every consumer's view goes through, on hand-made striped images."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from common.image_views import ImageView


def stripes(height: int = 40, width: int = 120) -> torch.Tensor:
    """uint8 (3, H, W): red columns [0, 30), green [30, 90), blue [90, 120) of a 120-wide image (scaled otherwise)."""
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    first, last = width // 4, 3 * width // 4
    image[0, :, :first], image[1, :, first:last], image[2, :, last:] = 255, 255, 255
    return image


def test_shorter_side_view_keeps_the_aspect_and_crops_the_centre():
    view = ImageView.shorter_side(20)
    out = view(stripes())  # 40 x 120 -> 20 x 60 (aspect kept), centre 20 columns = original columns 40..79: green
    assert out.shape == (3, 20, 20)
    assert (out[1] == 255).all() and (out[0] == 0).all() and (out[2] == 0).all()
    assert view.resized_shape(40, 120) == (20, 60) and view.resized_shape(120, 40) == (60, 20)


def test_squash_view_distorts_the_aspect_like_the_authors_resize():
    out = ImageView(size=20, resize=20, squash=True)(stripes())  # the whole width squeezed into 20 columns
    assert out.shape == (3, 20, 20)
    assert (out[0, :, 0] == 255).all() and (out[2, :, -1] == 255).all()  # red and blue survive at the borders
    assert (out[0, :, :4] == 255).all() and (out[0, :, 6:] == 0).all()  # a quarter of 20 columns is red


def test_identity_views_return_the_images_themselves():
    images = torch.randint(0, 256, (4, 3, 28, 28), dtype=torch.uint8)
    for view in (ImageView(28), ImageView.shorter_side(28), ImageView(28, resize=28, squash=True)):
        assert view.is_identity_for(28, 28) and view(images) is images
    assert not ImageView(24, resize=28, squash=True).is_identity_for(24, 24)  # resize 28, then crop 24


@pytest.mark.parametrize("view", [ImageView.shorter_side(16), ImageView(12, resize=16, squash=True)])
def test_a_batch_and_its_images_go_through_the_same_operation(view):
    batch = torch.randint(0, 256, (3, 3, 24, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = view(batch)
    assert out.dtype == torch.uint8 and out.shape == (3, 3, view.size, view.size)
    for image, viewed in zip(batch, out):
        assert torch.equal(view(image), viewed)
    target = list(view.resized_shape(24, 40))
    expected = TF.center_crop(TF.resize(batch, target, antialias=True), [view.size, view.size])
    assert torch.equal(out, expected)
