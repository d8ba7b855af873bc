"""The view store in a whole run (fake Hard ImageNet JPEGs, tiny SD): the same result rows as decoding at every
read, with every real image decoded once per run for the classifiers."""

from __future__ import annotations

import collections
import json
import traceback
from pathlib import Path

import pytest
from torchvision.io import ImageReadMode

import datamodules.imagenet_folders as imagenet_folders
from tests.fakes.hard_imagenet import tiny_hardimagenet_options, without_timing
from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_hardimagenet.yaml")
DECODE_SITES: dict[str, collections.Counter] = {}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return tiny_hardimagenet_options(tmp_path_factory.mktemp("view_store_run"))


def run_counting_decodes(run_dir: Path, options: list[str], monkeypatch) -> tuple[list[dict], int]:
    """The run's result rows and how many JPEG images (not masks) it decoded."""
    decoded = []
    original = imagenet_folders.decode_image

    def counting(path, mode=ImageReadMode.UNCHANGED, **kwargs):
        if mode == ImageReadMode.RGB:
            decoded.append(" < ".join(f"{f.name}" for f in traceback.extract_stack(limit=12)[-12:-1]))
        return original(path, mode=mode, **kwargs)

    monkeypatch.setattr(imagenet_folders, "decode_image", counting)
    proc = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir), "--classifiers.max_epochs", "2",
                        "--classifiers.patience", "2", *options)
    monkeypatch.setattr(imagenet_folders, "decode_image", original)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    DECODE_SITES[run_dir.name] = collections.Counter(decoded)  # where each decode came from, for a failure
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()], len(decoded)


def comparable(row: dict) -> dict:
    return without_timing(row)


def test_a_stored_run_gives_the_decoding_rows_and_decodes_each_image_once(tmp_path, assets, monkeypatch):
    decoding_rows, decoding = run_counting_decodes(tmp_path / "decoding", [*assets, "--data.view_store", "false"],
                                                   monkeypatch)
    stored_rows, stored = run_counting_decodes(tmp_path / "stored", assets, monkeypatch)
    assert [comparable(row) for row in stored_rows] == [comparable(row) for row in decoding_rows]
    n_train = stored_rows[0]["n_real"]
    # the fake tree: 15 classes x (4 train + 2 val) masked images; a quarter of train is validation
    n_all = 15 * (4 + 2)
    assert n_train == 45
    # after: every image once for the classifiers' store, and the training images once more at the generator's
    # view for its latent cache (Stable Diffusion trains at its own resolution)
    assert stored == n_all + n_train, DECODE_SITES["stored"].most_common()
    # before: every classifier epoch decodes the training and validation images (and Lightning's sanity check the
    # validation images once more), every evaluation the test images, the FID its 30 real images once (generation 2
    # reuses generation 1's statistics) and the generator its training images (once, with the latent cache)
    n_val, n_test, epochs, fid_real = 15, 30, 2, 30
    assert decoding == 3 * (epochs * (n_train + n_val) + n_val + n_test) + fid_real + n_train == 570
    stores = sorted(path.name for path in (tmp_path / ".genbias_views").glob("*.json"))
    assert len(stores) == 3  # train, val, test: shared by both runs' folder, built by the second run
    again_rows, again = run_counting_decodes(tmp_path / "again", assets, monkeypatch)
    assert again == n_train  # another run beside them reuses the stores: only the latent cache decodes
    assert [comparable(row) for row in again_rows] == [comparable(row) for row in stored_rows]


def test_the_check_before_a_run_counts_the_store_it_will_build_and_a_built_one_not(tmp_path, assets):
    check = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(tmp_path / "run"), *assets, "--check")
    assert check.returncode == 0, check.stderr
    # 15 classes x (4 train + 2 val) masked images at the classifiers' 24 x 24: 4 bytes a pixel
    assert f"view store: about {90 * 24 * 24 * 4 / 2**20:.1f} MiB to decode once into {tmp_path / '.genbias_views'}" \
        in check.stdout
    assert not (tmp_path / ".genbias_views").exists() and not (tmp_path / "run").exists()  # a check writes nothing
