"""StableDiffusionLoRA on a tiny offline SD folder: LoRA-only training, LoRA-only checkpoints, seeded generation."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler
from torch.utils.data import DataLoader, TensorDataset

from common.errors import ConfigError
from datamodules.generational import GenerationalDataModule, TrainingSpec
from datamodules.hard_imagenet import HardImageNet
from datamodules.regime import DataRegime
from lightning_modules.stable_diffusion import StableDiffusionLoRA
from tests.fakes.hard_imagenet import add_striped_image, write_fake_hard_imagenet
from tests.fakes.samples import labelled_loader
from tests.fakes.tiny_sd import build_tiny_sd
from tests.float_rounding import assert_same_uint8_images

CLASS_NAMES = ["cat", "dog", "bird"]


@pytest.fixture(scope="module")
def tiny_sd_path(tmp_path_factory):
    return str(build_tiny_sd(tmp_path_factory.mktemp("tiny_sd"), seed=0))


def make_module(path: str, **overrides) -> StableDiffusionLoRA:
    kwargs = dict(
        pretrained_path=path, class_names=CLASS_NAMES, stack_resolution=24, lora_rank=4, lora_alpha=4,
        lr=5e-2, train_resolution=16, num_inference_steps=2, guidance_scale=3.0, generation_resolution=16,
    )
    kwargs.update(overrides)
    return StableDiffusionLoRA(**kwargs)


def training_loader(num_images: int = 4, size: int = 28) -> DataLoader:
    """uint8 images at a size other than train_resolution, so the resize path runs too."""
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (num_images, 3, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(num_images) % len(CLASS_NAMES)
    groups = torch.full((num_images,), -1)
    return labelled_loader(images, labels, groups, 2)


def make_trainer(tmp_path, **overrides) -> L.Trainer:
    kwargs = dict(
        accelerator="cpu", devices=1, max_steps=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


def is_lora(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def fit(module: StableDiffusionLoRA, tmp_path, **trainer_overrides) -> L.Trainer:
    trainer = make_trainer(tmp_path, **trainer_overrides)
    trainer.fit(module, train_dataloaders=training_loader())
    return trainer


@pytest.fixture(scope="module")
def trained(tiny_sd_path, tmp_path_factory):
    """One 2-step LoRA fine-tune shared by the tests that inspect its result (fits are the slow part)."""
    L.seed_everything(0)
    module = make_module(tiny_sd_path)
    module.configure_model()
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    folder = tmp_path_factory.mktemp("trained")
    trainer = fit(module, folder)
    checkpoint = folder / "generator.ckpt"
    trainer.save_checkpoint(checkpoint)
    return module, before, checkpoint


def test_fine_tune_changes_only_lora_weights(trained):
    module, before, _ = trained
    assert sum(is_lora(n) for n in before) > 0
    assert all(is_lora(n) == p.requires_grad for n, p in module.named_parameters())
    after = dict(module.named_parameters())
    assert set(after) == set(before)
    for name, value in before.items():
        if is_lora(name):
            assert not torch.equal(after[name], value), f"LoRA weight {name} did not train"
        else:
            assert torch.equal(after[name], value), f"frozen weight {name} changed"
    assert all(p.dtype == torch.float32 for n, p in module.named_parameters() if is_lora(n))
    assert module.unet.training and not module.vae.training and not module.text_encoder.training


def test_the_unet_trains_on_landscape_photos_at_its_resolution_without_aspect_distortion(tiny_sd_path, tmp_path):
    """Through the loop's data path (Hard ImageNet, the generator's view): what the VAE encodes and the UNet denoises
    has the generator's resolution, and a 40 x 120 striped photo arrives as its green centre, not squashed."""
    roots = write_fake_hard_imagenet(tmp_path / "data", n_train_per_class=1, n_val_per_class=1, size=40, width=64,
                                     unmasked_per_class=0)
    add_striped_image(roots)
    source = HardImageNet(*roots, image_size=16, resize=20, val_fraction=0.0)
    data = GenerationalDataModule(source, regime=DataRegime(synthetic_share=0.5), batch_size=16)
    torch.manual_seed(0)
    module = make_module(tiny_sd_path, class_names=source.class_names, train_resolution=16)
    module.configure_model()
    encoded, denoised = [], []
    encode = module.vae.encode

    def recording_encode(pixels, *args, **kwargs):
        encoded.append(pixels.detach())
        return encode(pixels, *args, **kwargs)

    module.vae.encode = recording_encode
    module.unet.register_forward_pre_hook(lambda unet, args: denoised.append(args[0].shape))
    spec = TrainingSpec(batch_size=16, epoch_seed=0, image_size=module.training_resolution)
    make_trainer(tmp_path, max_steps=1).fit(module, datamodule=data.for_training(spec))

    pixels = encoded[0]
    assert pixels.shape == (16, 3, 16, 16)  # 15 landscape photos + the striped one, one batch
    downsampling = 2 ** (len(module.vae.config.block_out_channels) - 1)
    assert denoised[0] == (16, 4, 16 // downsampling, 16 // downsampling)
    green = (pixels[:, 1] == 1).flatten(1).all(1) & (pixels[:, [0, 2]] == -1).flatten(1).all(1)
    assert int(green.sum()) == 1  # the striped photo: its centre only (a squash would keep red and blue borders)
    assert (pixels[~green][:, 0] > -1).any()  # the other photos are not green squares


def test_fresh_is_cheap_and_draws_a_new_adapter(tiny_sd_path):
    module = make_module(tiny_sd_path)
    torch.manual_seed(0)
    module.configure_model()
    other = module.fresh()
    assert other.unet is None and dict(other.hparams) == dict(module.hparams)
    other.configure_model()
    first, second = module.lora_state_dict(), other.lora_state_dict()
    assert first.keys() == second.keys()
    a_keys = [k for k in first if ".lora_A." in k]
    assert all(not torch.equal(first[k], second[k]) for k in a_keys)  # drawn from the advanced global RNG
    assert all(torch.count_nonzero(first[k]) == 0 for k in first if ".lora_B." in k)  # starts as the base model


def test_checkpoint_holds_only_lora_and_round_trips(trained, tiny_sd_path, tmp_path):
    module, _, checkpoint = trained
    saved = torch.load(checkpoint, weights_only=True, map_location="cpu")
    keys = list(saved["state_dict"])
    assert keys and all(k.startswith("unet.") and is_lora(k) for k in keys)
    assert len(keys) == sum(is_lora(n) for n, _ in module.named_parameters())
    assert saved["hyper_parameters"]["class_names"] == CLASS_NAMES
    assert saved["lora_config"]["rank"] == 4

    labels, indices = torch.tensor([0, 1, 2]), torch.tensor([5, 6, 7])
    expected = module.generate(labels, indices, 3)

    torch.manual_seed(123)  # a different adapter init, overwritten by the checkpoint
    untrained = module.fresh()
    assert not torch.equal(untrained.generate(labels, indices, 3), expected), "training had no visible effect"

    torch.manual_seed(456)
    restored = StableDiffusionLoRA.load_from_checkpoint(checkpoint)
    assert torch.equal(restored.generate(labels, indices, 3), expected)

    untrained.load_state_dict(module.state_dict())
    assert torch.equal(untrained.generate(labels, indices, 3), expected)

    wrong_rank = make_module(tiny_sd_path, lora_rank=2)
    with pytest.raises(ConfigError, match="lora_rank"):
        wrong_rank.load_state_dict(module.state_dict())


def test_predict_returns_uint8_images_deterministic_per_index(tiny_sd_path, tmp_path):
    torch.manual_seed(0)
    module = make_module(tiny_sd_path, generation_resolution=32)  # the tiny pipeline's native size, resized to 24
    indices = torch.arange(10, 16)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    loader = DataLoader(TensorDataset(indices, labels, torch.full_like(indices, 7)), batch_size=4)
    outputs = make_trainer(tmp_path).predict(module, dataloaders=loader)

    images = torch.cat([o["image"] for o in outputs])
    assert images.dtype == torch.uint8 and images.shape == (6, 3, 24, 24)
    assert torch.equal(torch.cat([o["index"] for o in outputs]), indices)
    assert torch.equal(torch.cat([o["label"] for o in outputs]), labels)
    assert images.float().std() > 0

    # another split and order of the same indices gives the same images
    reordered = module.generate(labels[[5, 2, 0]], indices[[5, 2, 0]], 7)
    assert_same_uint8_images(reordered, images[[5, 2, 0]])
    assert_same_uint8_images(module.generate(labels[3:4], indices[3:4], 7), images[3:4])
    # the sample seed and the index both matter
    assert not torch.equal(module.generate(labels[:1], indices[:1], 8), images[:1])
    assert not torch.equal(module.generate(labels[:1], indices[1:2], 7), images[:1])


def test_bf16_mixed_fit_runs_on_cpu(tiny_sd_path, tmp_path):
    L.seed_everything(0)
    module = make_module(tiny_sd_path)
    trainer = fit(module, tmp_path, precision="bf16-mixed", max_steps=1)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert module.unet.conv_in.weight.dtype == torch.bfloat16
    assert module.vae.dtype == torch.bfloat16 and module.text_encoder.dtype == torch.bfloat16
    lora = [p for n, p in module.unet.named_parameters() if is_lora(n)]
    assert lora and all(p.dtype == torch.float32 and p.requires_grad for p in lora)
    images = module.generate(torch.tensor([1]), torch.tensor([0]), 0)
    assert images.dtype == torch.uint8 and images.shape == (1, 3, 24, 24)


def test_missing_pretrained_parts_are_listed(tiny_sd_path, tmp_path):
    partial = tmp_path / "sd15"
    (partial / "unet").mkdir(parents=True)
    (partial / "model_index.json").write_text("{}")
    with pytest.raises(ConfigError) as error:
        make_module(str(partial)).validate()  # checked by the loop before any work, not at construction
    message = str(error.value)
    for part in ("unet/config.json", "vae/", "text_encoder/", "tokenizer/", "scheduler/"):
        assert part in message
    assert "model_index.json," not in message.split("needs")[0]
    assert "huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5" in message

    with pytest.raises(ConfigError, match="does not exist"):
        StableDiffusionLoRA.check_pretrained_path(tmp_path / "nowhere")
    StableDiffusionLoRA.check_pretrained_path(tiny_sd_path)  # complete folder passes


def test_bad_arguments_are_config_errors(tiny_sd_path):
    with pytest.raises(ConfigError, match="scheduler"):
        make_module(tiny_sd_path, scheduler="Heun")
    with pytest.raises(ConfigError, match="num_classes"):
        make_module(tiny_sd_path, num_classes=5)
    with pytest.raises(ConfigError, match="class_name"):
        make_module(tiny_sd_path, prompt_template="a photo")
    with pytest.raises(ConfigError, match="multiple of 8"):
        make_module(tiny_sd_path, train_resolution=30)


def test_scheduler_option_swaps_the_inference_scheduler(tiny_sd_path):
    modules = {name: make_module(tiny_sd_path, scheduler=name) for name in ("DDIM", "DDPM", "EulerDiscrete")}
    for module in modules.values():
        torch.manual_seed(0)
        module.configure_model()
    assert type(modules["DDIM"].pipeline.scheduler) is DDIMScheduler
    assert type(modules["EulerDiscrete"].pipeline.scheduler) is EulerDiscreteScheduler
    assert type(modules["DDPM"].pipeline.scheduler) is DDPMScheduler
    euler = modules["EulerDiscrete"]
    assert type(euler.noise_scheduler) is DDPMScheduler  # the training noise schedule is unaffected
    assert euler.pipeline.scheduler.config.beta_schedule == "scaled_linear"  # built from the folder's config
    labels, indices = torch.tensor([0]), torch.tensor([0])
    # same weights and seed, different sampler -> different images (DDIM and Euler coincide as ODE solvers)
    assert not torch.equal(modules["DDIM"].generate(labels, indices, 0), modules["DDPM"].generate(labels, indices, 0))


def test_the_loaded_parts_are_recorded_with_their_sha256(tiny_sd_path):
    """Provenance (docs/workflow.md): the text encoder, VAE and UNet weight files a run loads are in its records."""
    import hashlib
    from pathlib import Path

    from common.environment import loaded_weight_files
    from lightning_modules.sd_folder import load_frozen_parts

    load_frozen_parts(tiny_sd_path, torch.float32)
    recorded = {Path(r["path"]).parent.name: r for r in loaded_weight_files()
                if r["path"].startswith(str(Path(tiny_sd_path).resolve()))}
    assert set(recorded) == {"text_encoder", "vae", "unet"}
    for part, record in recorded.items():
        assert record["what"] == f"Stable Diffusion {part}"
        assert record["sha256"] == hashlib.sha256(Path(record["path"]).read_bytes()).hexdigest()
