"""The class-conditional UNet of the DDPM generator: diffusers' ``UNet2DModel`` with a learned class embedding.

The class embedding has ``num_classes + 1`` rows: row ``num_classes`` is the null (unconditional) label that
classifier-free guidance needs. It is added to the timestep embedding, so every residual block sees the label.

UNet levels: level i has ``block_out_channels[i]`` channels, and every level but the last halves the resolution,
so an image side must be divisible by ``2 ** (levels - 1)``: 32x32 takes up to 6 levels, 28x28 up to 3 (28 -> 14
-> 7). Attention (single-head, as in Ho et al. 2020), when on, sits at the second level (16x16 for 32x32 images,
14x14 for 28x28, the resolution DDPM used) and in the middle block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # diffusers is imported when a UNet is built: `cli.py fit --help` lists this generator without it
    from diffusers import UNet2DModel


def max_levels(side: int) -> int:
    """The most UNet levels an image side allows: 1 + how many times it halves exactly."""
    side, levels = int(side), 1
    while side % 2 == 0 and side > 1:
        side //= 2
        levels += 1
    return levels


def build_unet(
    image_shape: tuple[int, int, int],
    num_classes: int,
    block_out_channels: tuple[int, ...] = (64, 128, 256),
    layers_per_block: int = 2,
    attention: bool = True,
    norm_num_groups: int = 32,
    dropout: float = 0.0,
) -> UNet2DModel:
    """A ``UNet2DModel`` predicting the noise of ``image_shape`` images, conditioned on ``num_classes + 1`` labels.

    Raises ValueError when the image sides do not fit the number of levels or the channels do not fit the groups;
    The DDPM generator checks both first and turns them into ConfigErrors that name the setting to change.
    """
    channels, height, width = (int(s) for s in image_shape)
    levels = len(block_out_channels)
    for side in (height, width):
        if levels > max_levels(side):
            raise ValueError(
                f"image side {side} is not divisible by 2**{levels - 1}: use at most {max_levels(side)} levels"
            )
    if any(int(c) % norm_num_groups for c in block_out_channels):
        raise ValueError(f"every block_out_channels entry must be divisible by norm_num_groups={norm_num_groups}")
    # level 1 (or level 0 of a one-level net) gets attention; the highest resolution never does (it is costly)
    from diffusers import UNet2DModel

    attention_level = min(1, levels - 1) if attention else -1
    down = tuple("AttnDownBlock2D" if i == attention_level else "DownBlock2D" for i in range(levels))
    up = tuple("AttnUpBlock2D" if i == attention_level else "UpBlock2D" for i in reversed(range(levels)))
    return UNet2DModel(
        sample_size=(height, width),
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(int(c) for c in block_out_channels),
        down_block_types=down,
        up_block_types=up,
        layers_per_block=int(layers_per_block),
        add_attention=bool(attention),
        attention_head_dim=None,  # one head of the full width
        norm_num_groups=int(norm_num_groups),
        dropout=float(dropout),
        num_class_embeds=int(num_classes) + 1,
    )
