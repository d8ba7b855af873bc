"""The float-rounding check passes last-bit differences and fails every real difference between two images."""

import pytest
import torch

from lightning_modules.generator import to_uint8
from tests.float_rounding import assert_same_uint8_images


def test_rounding_at_a_level_boundary_passes_and_other_noise_fails():
    floats = torch.rand(6, 3, 24, 24, generator=torch.Generator().manual_seed(0)) * 2 - 1
    images = to_uint8(floats)
    assert_same_uint8_images(to_uint8(floats * (1 + 2e-7)), images)  # a last-bit change of every value
    nudged = images.clone()
    nudged.view(-1)[:5] += 1  # 5 pixels in 10,368 one level off, as a rounding boundary would
    assert_same_uint8_images(nudged, images)
    with pytest.raises(AssertionError, match="differ by up to"):
        other = torch.rand(6, 3, 24, 24, generator=torch.Generator().manual_seed(1)) * 2 - 1
        assert_same_uint8_images(to_uint8(other), images)  # other noise
    with pytest.raises(AssertionError, match="differ by up to 2 levels"):
        base, two_off = images.clone(), images.clone()
        base.view(-1)[0], two_off.view(-1)[0] = 100, 102
        assert_same_uint8_images(two_off, base)
    with pytest.raises(AssertionError, match="differ by up to 1 levels"):
        assert_same_uint8_images(torch.where(images < 255, images + 1, images), images)  # every pixel a level up
