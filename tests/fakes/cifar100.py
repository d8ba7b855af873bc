"""A tiny fake CIFAR-100 in the original on-disk format, so the reader is tested against what the real files hold.

The real batches were pickled by Python 2 (protocol 2): byte strings are Python 2 ``str`` opcodes and arrays are
rebuilt by ``numpy.core.multiarray._reconstruct``. Python 3's pickler would write bytes as ``_codecs.encode``
calls instead, so ``write_py2_pickle`` emits the Python 2 opcodes itself. The names and the fine -> coarse mapping
are written here independently of ``datamodules/cifar.py`` (names list + the well-known coarse-label array), so
the code's table is checked against a second source.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

FINE_LABEL_NAMES = """
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle
caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish
forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle
mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar
sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
willow_tree wolf woman worm
""".split()
COARSE_LABEL_NAMES = """
aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices household_furniture
insects large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores
medium_mammals non-insect_invertebrates people reptiles small_mammals trees vehicles_1 vehicles_2
""".split()
#: coarse label of every fine label, as widely reproduced from the CIFAR-100 batches
COARSE_OF_FINE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13, 16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]  # fmt: skip

_ARRAY_RECONSTRUCT = np.zeros(0).__reduce__()[0]
#: globals spelled as numpy 1.x pickled them when the real files were made
_PY2_GLOBAL_NAMES = {
    id(_ARRAY_RECONSTRUCT): ("numpy.core.multiarray", "_reconstruct"),
    id(np.ndarray): ("numpy", "ndarray"),
    id(np.dtype): ("numpy", "dtype"),
}


class _Python2Pickler(pickle._Pickler):
    """Protocol-2 pickler that writes ``bytes`` as Python 2 ``str`` and numpy globals with their old names."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if id(obj) not in _PY2_GLOBAL_NAMES:
            return super().save_global(obj, name)
        module, qualname = _PY2_GLOBAL_NAMES[id(obj)]
        self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
        self.memoize(obj)


def write_py2_pickle(obj: Any, path: str | Path) -> None:
    """Pickle ``obj`` the way Python 2's cPickle wrote the CIFAR batches (protocol 2, ``bytes`` as ``str``)."""
    with open(path, "wb") as handle:
        _Python2Pickler(handle, protocol=2).dump(obj)


def make_batch(data: np.ndarray, fine_labels: list[int], batch_label: bytes) -> dict[bytes, Any]:
    """One batch dict in the original layout; ``data`` uint8 (N, 3072) = red, green, blue planes, row-major."""
    fine_labels = [int(label) for label in fine_labels]
    return {
        b"filenames": [f"fake_{index:05d}.png".encode() for index in range(len(fine_labels))],
        b"batch_label": batch_label,
        b"fine_labels": fine_labels,
        b"coarse_labels": [COARSE_OF_FINE[label] for label in fine_labels],
        b"data": np.ascontiguousarray(data, dtype=np.uint8),
    }


def make_meta() -> dict[bytes, Any]:
    return {
        b"fine_label_names": [name.encode() for name in FINE_LABEL_NAMES],
        b"coarse_label_names": [name.encode() for name in COARSE_LABEL_NAMES],
    }


def _tinted_images(fine_labels: np.ndarray, rng: np.random.Generator, tint: bool) -> np.ndarray:
    """Noise pixels (N, 3072); with ``tint`` each superclass has its own colour (shifted a little per fine class)."""
    noise = rng.integers(0, 256, size=(len(fine_labels), 3, 32 * 32))
    if not tint:
        return noise.reshape(len(fine_labels), -1).astype(np.uint8)
    coarse_colour = np.random.default_rng(1234).integers(30, 226, size=(len(COARSE_LABEL_NAMES), 3))
    fine_shift = np.random.default_rng(5678).integers(-25, 26, size=(len(FINE_LABEL_NAMES), 3))
    colour = coarse_colour[np.asarray(COARSE_OF_FINE)[fine_labels]] + fine_shift[fine_labels]
    pixels = 0.7 * colour[:, :, None] + 0.3 * noise
    return pixels.round().clip(0, 255).astype(np.uint8).reshape(len(fine_labels), -1)


def write_fake_cifar100(
    root: str | Path, n_train_per_fine: int = 10, n_test_per_fine: int = 4, seed: int = 0, tint: bool = True
) -> Path:
    """Write ``<root>/cifar-100-python/{train,test,meta}`` with seeded pixels; returns the folder.

    Samples are shuffled (as in the real files), every fine class has exactly the requested count per split.
    """
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, per_fine in (("train", n_train_per_fine), ("test", n_test_per_fine)):
        fine = rng.permutation(np.repeat(np.arange(len(FINE_LABEL_NAMES)), per_fine))
        batch = make_batch(_tinted_images(fine, rng, tint), fine.tolist(), f"{split}ing batch 1 of 1".encode())
        write_py2_pickle(batch, folder / split)
    write_py2_pickle(make_meta(), folder / "meta")
    return folder
