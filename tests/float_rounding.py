"""What "the same result" means for two float computations that may run different kernels.

A batch of another size, another memory layout or another thread count can make oneDNN/ATen pick another kernel on
some CPUs (not on others), and two kernels may round a float32 sum differently in the last bit. Tests that compare such
paths use these checks, which allow float32 rounding and nothing more; a test that compares two runs of the same
kernels (a resume on the same machine and threads) stays exact and says why.
"""

import torch

#: a pixel is a float in [-1, 1] rounded to one of 256 levels: a last-bit difference moves it by at most one level,
#: and only where the float lay within rounding of a level boundary (a few pixels in 10,000)
MAX_LEVELS_OFF = 1
MAX_SHARE_OFF = 1e-3
#: ... but at least this many pixels, so a small block (6 tiny images of 1,152 pixels) may have a few boundary cases
MIN_PIXELS_OFF = 8


def assert_same_uint8_images(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal images up to float32 rounding before the uint8 quantisation. An image drawn from other noise, or for
    another label, differs by many levels in most pixels, so this still fails on every real difference."""
    assert actual.dtype == expected.dtype == torch.uint8 and actual.shape == expected.shape, (actual.shape,
                                                                                              expected.shape)
    off = (actual.int() - expected.int()).abs()
    changed = int((off > 0).sum())
    share = changed / off.numel()
    allowed = max(MAX_SHARE_OFF * off.numel(), MIN_PIXELS_OFF)
    assert int(off.max()) <= MAX_LEVELS_OFF and changed <= allowed, (
        f"images differ by up to {int(off.max())} levels in {share:.2%} of pixels: more than float32 rounding")
