"""StableDiffusionLoRA draws the same latents from cached moments as from encoding the images at the step."""

from __future__ import annotations

import pytest
import torch

from common.samples import make_batch
from lightning_modules.stable_diffusion import StableDiffusionLoRA
from tests.fakes.tiny_sd import build_tiny_sd


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    path = build_tiny_sd(tmp_path_factory.mktemp("tiny_sd"), seed=0)
    module = StableDiffusionLoRA(pretrained_path=str(path), class_names=["cat", "dog", "bird"], lora_rank=4,
                                 lora_alpha=4, train_resolution=16, generation_resolution=16)
    module.configure_model()
    return module


def images(count: int = 5) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 16, 16), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)


def test_moments_are_the_vae_distribution_mean_then_std(module):
    moments = module.latent_moments(images())
    distribution = module.vae.encode(module.to_model_pixels(images())).latent_dist
    assert moments.shape == (5, 8, 8, 8) and moments.dtype == torch.float32
    assert torch.equal(moments[:, :4], distribution.mean) and torch.equal(moments[:, 4:], distribution.std)
    assert bool((moments[:, 4:] > 0).all())


def test_cached_moments_draw_the_latents_encoding_draws_and_the_same_loss(module):
    batch = images()
    moments = module.latent_moments(batch)
    torch.manual_seed(11)
    encoded = module.sample_latents(batch)
    torch.manual_seed(11)
    cached = module.sample_latents(moments)
    assert torch.equal(cached, encoded)
    torch.manual_seed(12)
    other = module.sample_latents(moments)
    assert not torch.equal(other, cached)  # the draw follows the RNG: not the mean alone
    # ... and the diffusers draw it replaces: mean + std * randn from the same RNG state
    torch.manual_seed(11)
    reference = module.vae.encode(module.to_model_pixels(batch)).latent_dist.sample()
    assert torch.equal(cached, reference * module.vae.config.scaling_factor)
    labels = torch.tensor([0, 1, 2, 0, 1])
    losses = []
    for inputs in (batch, moments):
        torch.manual_seed(5)
        losses.append(module.training_step(make_batch(inputs, labels, torch.full((5,), -1)), 0))
    assert torch.equal(losses[0], losses[1])


def test_the_cache_is_on_by_default_and_can_be_turned_off(module):
    assert module.cache_latents is True
    off = StableDiffusionLoRA(pretrained_path=module.pretrained_path, class_names=["cat"], cache_latents=False)
    assert off.cache_latents is False and off.fresh().cache_latents is False
