"""Train each generator and a dropout classifier for two steps with EpochSeeder on N CPU processes; every rank saves
the random draws it made (GAN latents, dropout masks, DDPM and SD noise and timesteps, DDPM label dropout).

Run by tests/e2e/test_training_randomness_under_ddp.py as a script, because Lightning's DDP launcher re-executes it
per rank: ``python ddp_training_randomness.py DEVICES OUT_DIR TINY_SD_FOLDER``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from callbacks.epoch_seeder import EpochSeeder  # noqa: E402
from lightning_modules.classifier import ClassifierModule  # noqa: E402
from lightning_modules.dcgan import ConditionalDCGAN  # noqa: E402
from lightning_modules.ddpm import ConditionalDDPM  # noqa: E402
from lightning_modules.stable_diffusion import StableDiffusionLoRA  # noqa: E402
from tests.fakes.samples import labelled_loader  # noqa: E402

BATCH = 4


def loader(shape: tuple[int, int, int], classes: int) -> DataLoader:
    """The same batches on every rank (no distributed sampler), so any difference between ranks is the RNG's."""
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (16, *shape), dtype=torch.uint8, generator=g)
    return labelled_loader(images, torch.arange(16) % classes, torch.zeros(16, dtype=torch.long), BATCH)


def fit(model: L.LightningModule, devices: int, data: DataLoader) -> int:
    strategy = "ddp_find_unused_parameters_true" if devices > 1 else "auto"  # the GAN's two optimisers
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, max_steps=2,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, use_distributed_sampler=False, callbacks=[EpochSeeder(5)])
    trainer.fit(model, train_dataloaders=data)
    return trainer.global_rank


def main(devices: int, out_dir: str, tiny_sd: str) -> None:
    draws: dict[str, list[torch.Tensor]] = {"dcgan_z": [], "dropout_mask": [], "ddpm_noise": [], "ddpm_timesteps": [],
                                            "ddpm_labels": [], "sd_noise": [], "sd_timesteps": []}
    torch.manual_seed(0)
    gan = ConditionalDCGAN(num_classes=4, image_shape=(3, 16, 16), latent_dim=8, base_channels=8)
    gan.generator.register_forward_pre_hook(lambda module, args: draws["dcgan_z"].append(args[0].detach().clone()))
    fit(gan, devices, loader((3, 16, 16), 4))

    torch.manual_seed(0)
    classifier = ClassifierModule("tiny_cnn", 4, 3, (3, 16, 16), lr=0.01, dropout=0.5)
    for module in classifier.modules():
        if isinstance(module, torch.nn.Dropout):
            module.register_forward_hook(
                lambda m, args, out: draws["dropout_mask"].append((out == 0) & (args[0] != 0)))
    fit(classifier, devices, loader((3, 16, 16), 4))

    torch.manual_seed(0)
    ddpm = ConditionalDDPM(num_classes=4, image_shape=(3, 8, 8), block_out_channels=(8, 16), layers_per_block=1,
                           norm_num_groups=8, num_train_timesteps=20, num_inference_steps=4, cond_drop_prob=0.5)
    draw_ddpm = ddpm.training_randomness

    def recording_ddpm(clean, labels):
        noise, timesteps, dropped = draw_ddpm(clean, labels)
        for key, value in (("ddpm_noise", noise), ("ddpm_timesteps", timesteps), ("ddpm_labels", dropped)):
            draws[key].append(value.clone())
        return noise, timesteps, dropped

    ddpm.training_randomness = recording_ddpm
    fit(ddpm, devices, loader((3, 8, 8), 4))

    torch.manual_seed(0)
    sd = StableDiffusionLoRA(pretrained_path=tiny_sd, class_names=["cat", "dog"], lora_rank=4, lora_alpha=4,
                             train_resolution=16, num_inference_steps=2, generation_resolution=16)
    sd.configure_model()
    add_noise = sd.noise_scheduler.add_noise

    def recording_add_noise(latents, noise, timesteps):
        draws["sd_noise"].append(noise.clone())
        draws["sd_timesteps"].append(timesteps.clone())
        return add_noise(latents, noise, timesteps)

    sd.noise_scheduler.add_noise = recording_add_noise
    rank = fit(sd, devices, loader((3, 16, 16), 2))
    torch.save({k: torch.stack(v) for k, v in draws.items()}, Path(out_dir) / f"draws_{devices}_rank{rank}.pt")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
