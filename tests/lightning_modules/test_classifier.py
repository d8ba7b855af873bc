"""ClassifierModule and the architecture registry."""

import pytest
import torch
import torchvision

from common.errors import ConfigError
from filters.uncertainty import dropout_modules
from lightning_modules.classifier import ClassifierModule
from lightning_modules.networks.registry import ARCHITECTURES

PAPER_ARCHS = ["lenet", "alexnet", "vgg19", "resnet50", "mobilenet_v3", "mobilenet_v3_small", "deit_small"]


@pytest.mark.parametrize("arch", PAPER_ARCHS + ["tiny_cnn", "tiny_vit", "resnet18"])
def test_every_architecture_classifies_uint8_mnist_sized_images(arch):
    torch.manual_seed(0)
    model = ClassifierModule(arch, num_classes=7, num_groups=3, image_shape=(3, 28, 28)).eval()
    images = torch.randint(0, 256, (2, 3, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        logits = model(images)
        features = model.features(images)
    assert logits.shape == (2, 7)
    assert features.ndim == 2 and features.shape[0] == 2 and features.shape[1] == model.head.in_features
    # the input is upsampled to what the architecture needs (AlexNet cannot take 28x28, DeiT-S needs 224)
    assert model.input_size == max(28, ARCHITECTURES[arch].min_size)


def test_normalisation_happens_on_the_batch():
    model = ClassifierModule("lenet", num_classes=10, num_groups=3, image_shape=(3, 28, 28))
    images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 28, 28)
    x = model.preprocess(images)
    assert torch.allclose(x[0], torch.full_like(x[0], -1.0)) and torch.allclose(x[1], torch.full_like(x[1], 1.0))
    grey = ClassifierModule("lenet", num_classes=10, num_groups=3, image_shape=(1, 28, 28))
    assert grey.preprocess(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape == (2, 1, 28, 28)


def test_pretrained_weights_load_from_a_local_file_and_adapt_input(tmp_path):
    torch.manual_seed(1)
    imagenet = torchvision.models.mobilenet_v3_small(weights=None)  # stands in for the real ImageNet weights
    path = tmp_path / "mobilenet_v3_small-imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    model = ClassifierModule("mobilenet_v3_small", num_classes=20, num_groups=5, image_shape=(3, 32, 32),
                             pretrained=True, weights_path=str(path))
    loaded = model.net.state_dict()
    for key, value in imagenet.state_dict().items():
        if not key.startswith("classifier.3"):
            assert torch.equal(loaded[key], value), key
    assert model.head.out_features == 20
    assert model.input_size == 224
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).shape == (1, 20)


def test_linear_probe_trains_only_the_head(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    model = ClassifierModule("mobilenet_v3_small", num_classes=5, num_groups=0, image_shape=(3, 32, 32),
                             pretrained=True, weights_path=str(path), linear_probe=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"net.classifier.3.weight", "net.classifier.3.bias"}


def test_missing_or_wrong_weights_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        ClassifierModule("resnet18", 10, 3, (3, 32, 32), pretrained=True, weights_path=str(tmp_path / "none.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), wrong)
    with pytest.raises(ConfigError, match="does not fit 'resnet18'"):
        ClassifierModule("resnet18", 10, 3, (3, 32, 32), pretrained=True, weights_path=str(wrong))
    with pytest.raises(ConfigError, match="unknown architecture 'resnet9000'"):
        ClassifierModule("resnet9000", 10, 3, (3, 32, 32))


def test_dropout_detection_for_mc_dropout():
    assert dropout_modules(ClassifierModule("alexnet", 10, 3, (3, 28, 28)))
    assert not dropout_modules(ClassifierModule("resnet18", 10, 3, (3, 28, 28)))


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed", "32-true"])
def test_training_steps_under_mixed_precision_change_the_weights(precision):
    import lightning as L
    from torch.utils.data import DataLoader

    from datamodules.base import ImageSplit

    torch.manual_seed(0)
    data = ImageSplit(torch.randint(0, 256, (32, 3, 28, 28), dtype=torch.uint8), torch.arange(32) % 10,
                      torch.arange(32) % 3)
    model = ClassifierModule("lenet", num_classes=10, num_groups=3, image_shape=(3, 28, 28))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = L.Trainer(accelerator="cpu", precision=precision, max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(data, batch_size=16))
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("net.features") for k in changed) and any(k.startswith("net.classifier") for k in changed)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay float32


def _fit_two_steps(model: ClassifierModule):
    import lightning as L
    from torch.utils.data import DataLoader

    from datamodules.base import ImageSplit

    generator = torch.Generator().manual_seed(0)
    data = ImageSplit(torch.randint(0, 256, (32, 3, 28, 28), dtype=torch.uint8, generator=generator),
                      torch.arange(32) % 10, torch.arange(32) % 3)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(data, batch_size=16))
    return trainer


def test_training_loss_and_accuracy_are_the_epochs_means():
    model = ClassifierModule("lenet", num_classes=10, num_groups=3, image_shape=(3, 28, 28))
    fixed = torch.zeros(10)
    fixed[3] = 5.0  # always predicts class 3: right for labels 3, 13, 23 of arange(32) % 10
    object.__setattr__(model, "_step_net", lambda x: fixed.expand(len(x), 10) + 0.0 * model.net(x).sum())
    metrics = _fit_two_steps(model).callback_metrics
    labels = torch.arange(32) % 10
    assert metrics["train/acc"] == pytest.approx(3 / 32)
    assert metrics["train/loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(
        fixed.expand(32, 10), labels)), rel=1e-6)


def _with_sgd(model: ClassifierModule, lr: float = 0.05) -> ClassifierModule:
    """Plain SGD: a weight moves by lr x its gradient, so two float kernels that round a gradient differently move it
    by lr x that rounding (Adam's first step moves every weight by about +-lr, whatever the gradient's size, so a
    last-bit difference in a near-zero gradient can move a weight by 2 lr)."""
    model.configure_optimizers = lambda: torch.optim.SGD(model.parameters(), lr=lr)
    return model


def test_channels_last_changes_the_layout_not_the_results():
    """NHWC runs other float kernels than NCHW (which ones depends on the CPU and the thread count), so the two agree
    at float32 rounding, not bit for bit: outputs at torch's float32 tolerances, and weights after two SGD steps at
    a tolerance of the same order (lr x gradient rounding, far below a step's size). A layout that scrambled pixels
    or gradients would differ by a whole update."""
    torch.manual_seed(0)
    plain = ClassifierModule("lenet", num_classes=10, num_groups=3, image_shape=(3, 28, 28))
    nhwc = ClassifierModule("lenet", num_classes=10, num_groups=3, image_shape=(3, 28, 28), channels_last=True)
    nhwc.load_state_dict(plain.state_dict())
    conv = nhwc.net.get_submodule("features.0").weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    images = torch.randint(0, 256, (4, 3, 28, 28), dtype=torch.uint8)
    assert nhwc.preprocess(images).is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(nhwc.eval()(images), plain.eval()(images))  # float32: rtol 1.3e-6, atol 1e-5
    before = {name: value.clone() for name, value in plain.state_dict().items()}
    _fit_two_steps(_with_sgd(plain.train())), _fit_two_steps(_with_sgd(nhwc.train()))
    moved = max(float((plain.state_dict()[name] - value).abs().max()) for name, value in before.items())
    assert moved > 1e-3  # the steps did move the weights: the comparison below is not of two untouched copies
    for (name, a), b in zip(plain.state_dict().items(), nhwc.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(nhwc.eval()(images), plain.eval()(images), rtol=1e-5, atol=1e-5)


def test_compile_runs_the_steps_through_torch_compile_and_keeps_the_checkpoint_format(monkeypatch):
    compiled, steps = [], []

    def eager_compile(module, **kwargs):  # the eager backend: what torch.compile does, without a C++ toolchain
        compiled.append(module)
        optimized = torch._dynamo.optimize("eager")(module)
        return lambda x: steps.append(len(x)) or optimized(x)

    monkeypatch.setattr(torch, "compile", eager_compile)
    torch.manual_seed(0)
    plain = ClassifierModule("lenet", num_classes=10, num_groups=3, image_shape=(3, 28, 28))
    fast = ClassifierModule("lenet", num_classes=10, num_groups=3, image_shape=(3, 28, 28), compile=True)
    assert compiled == [fast.net]
    assert fast.state_dict().keys() == plain.state_dict().keys()  # no _orig_mod. prefixes: checkpoints load anywhere
    fast.load_state_dict(plain.state_dict())
    _fit_two_steps(plain), _fit_two_steps(fast)
    assert steps == [16, 16]  # both training steps ran the compiled network
    # exact by design: dynamo's eager backend calls the same aten kernels in the same order as the plain module (no
    # decomposition, no fusion), so every gradient and every Adam step is bit-identical on any CPU
    for (name, a), b in zip(plain.state_dict().items(), fast.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    torch._dynamo.reset()
