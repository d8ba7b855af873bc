"""TableImageSource on fake tables and image trees in each real layout (CelebA, Waterbirds, FairFace) and a generic
table, with the init_args of the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from common.errors import ConfigError
from datamodules.table import TableImageSource
from scripts.celeba_table import main as celeba_table_main
from tests.fakes.tables import FAIRFACE_RACES, make_celeba, make_fairface, make_table, make_waterbirds

ROOT = Path(__file__).resolve().parents[2]


def config_arguments(name: str, **paths) -> dict:
    arguments = yaml.safe_load((ROOT / "configs" / name).read_text())["data"]["source"]["init_args"]
    return {**arguments, **paths}


def cell_counts(split) -> dict[tuple[int, int], int]:
    pairs = torch.stack([split.labels, split.groups], 1).tolist()
    return {tuple(p): pairs.count(p) for p in map(list, {tuple(p) for p in pairs})}


def test_celeba_through_the_conversion_script_and_the_official_split(tmp_path):
    root = make_celeba(tmp_path / "celeba", per_cell=3)
    assert celeba_table_main([str(root), "--out", str(root / "blond_male.csv")]) == 0
    lines = (root / "blond_male.csv").read_text().splitlines()
    assert lines[0] == "path,label,subgroup,split" and lines[1] == "img_align_celeba/000001.jpg,0,0,train"
    source = TableImageSource(**config_arguments("celeba_blond.yaml", table=str(root / "blond_male.csv"),
                                                 image_root=str(root)))
    source.validate()
    assert source.class_names == ["person with dark hair", "person with blond hair"]
    assert source.group_names == ["female", "male"] and source.num_groups == 2 and source.facts.oracle == "learned"
    splits = source.load()
    assert {k: len(v) for k, v in splits.items()} == {"train": 12, "val": 12, "test": 12}
    assert cell_counts(splits["test"]) == {(0, 0): 3, (0, 1): 3, (1, 0): 3, (1, 1): 3}
    image, label, group = splits["train"][0]["image"], splits["train"][0]["label"], splits["train"][0]["subgroup"]
    assert image.shape == (3, 224, 224) and image.dtype == torch.uint8 and (int(label), int(group)) == (0, 0)


def test_the_conversion_script_names_an_unknown_attribute(tmp_path, capsys):
    root = make_celeba(tmp_path / "celeba", per_cell=1)
    assert celeba_table_main([str(root), "--label", "Blond", "--out", str(tmp_path / "t.csv")]) == 2
    assert "'Blond' is not a CelebA attribute" in capsys.readouterr().err


def test_waterbirds_reads_its_own_metadata(tmp_path):
    folder = make_waterbirds(tmp_path, per_cell=2)
    source = TableImageSource(**config_arguments("waterbirds.yaml", table=str(folder / "metadata.csv"),
                                                 image_root=str(folder)))
    splits = source.load()
    assert source.class_names == ["landbird", "waterbird"]
    assert source.group_names == ["land background", "water background"]
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "val": 8, "test": 8}
    assert cell_counts(splits["val"]) == {(0, 0): 2, (0, 1): 2, (1, 0): 2, (1, 1): 2}
    assert "001.Black_footed_Albatross" in splits["train"].image_paths[-1]  # y = 1 is the waterbird


def test_fairface_carves_validation_from_its_train_list_and_tests_on_val(tmp_path):
    make_fairface(tmp_path / "fairface", per_cell=5)
    arguments = config_arguments("fairface.yaml", image_root=str(tmp_path / "fairface"))
    arguments["table"] = {split: str(tmp_path / "fairface" / Path(path).name)
                          for split, path in arguments["table"].items()}
    source = TableImageSource(**arguments)
    splits = source.load()
    assert source.class_names == ["woman", "man"] and source.group_names == list(FAIRFACE_RACES)
    assert len(splits["test"]) == 2 * 7 * 5 and len(splits["val"]) == 2 * 7 * 1  # 10% of each cell of 10
    assert len(splits["train"]) == 2 * 7 * 9
    assert {int(g) for g in splits["test"].groups} == set(range(7))
    assert int((splits["test"].labels == 1).sum()) == 35  # "Male" -> index 1, "man"


def test_a_table_without_split_gets_a_seeded_stratified_split(tmp_path):
    table = make_table(tmp_path, per_cell=10)
    source = TableImageSource(table=str(table), image_root=str(tmp_path), val_fraction=0.2, test_fraction=0.3)
    splits = source.load()
    assert source.class_names == ["class0", "class1"] and source.group_names == ["group0", "group1"]
    assert {k: len(v) for k, v in splits.items()} == {"train": 20, "val": 8, "test": 12}
    for split, per_cell in (("train", 5), ("val", 2), ("test", 3)):
        assert set(cell_counts(splits[split]).values()) == {per_cell}
    again = TableImageSource(table=str(table), image_root=str(tmp_path), val_fraction=0.2, test_fraction=0.3).load()
    assert again["test"].image_paths == splits["test"].image_paths
    other = TableImageSource(table=str(table), image_root=str(tmp_path), val_fraction=0.2, test_fraction=0.3,
                             seed=1).load()
    assert other["test"].image_paths != splits["test"].image_paths


def test_a_parquet_table_reads_like_its_csv(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.csv
    import pyarrow.parquet

    table = make_table(tmp_path, per_cell=4, split=True)
    pyarrow.parquet.write_table(pyarrow.csv.read_csv(table), tmp_path / "images.parquet")
    from_csv = TableImageSource(table=str(table), image_root=str(tmp_path)).load()
    from_parquet = TableImageSource(table=str(tmp_path / "images.parquet"), image_root=str(tmp_path)).load()
    assert from_parquet["val"].image_paths == from_csv["val"].image_paths and len(from_csv["val"]) == 4


def test_every_problem_is_listed_with_where_to_get_the_data(tmp_path):
    table = make_table(tmp_path, per_cell=2)
    (tmp_path / "img" / "c1" / "g0_1.png").unlink()
    source = TableImageSource(table=str(table), image_root=str(tmp_path), class_names=["class0"], resize=100,
                              where_to_get="fetch it from example.org")
    with pytest.raises(ConfigError) as raised:
        source.validate()
    message = str(raised.value)
    assert "resize (100) must be an int >= image_size (224)" in message
    assert "class values ['class1'] of the table are not in class_names ['class0']" in message
    assert "1 of 8 images listed in the table are missing" in message and "img/c1/g0_1.png" in message
    assert message.endswith("How to fix: fetch it from example.org.")
    with pytest.raises(ConfigError, match="lacks the columns \\['y'\\] \\(it has \\['path', 'label', 'subgroup'\\]\\)"):
        TableImageSource(table=str(table), image_root=str(tmp_path), label_column="y").validate()


def test_the_clip_prompts_read_the_configs_class_names():
    from filters import ClipScoreFilter

    clip = ClipScoreFilter(ratio=0.6, template="a photo of a {class_name}")
    prompts = {name: clip.prompts(TableImageSource(**config_arguments(name)).class_names)
               for name in ("celeba_blond.yaml", "waterbirds.yaml", "fairface.yaml")}
    assert prompts["celeba_blond.yaml"] == ["a photo of a person with dark hair", "a photo of a person with blond hair"]
    assert prompts["waterbirds.yaml"] == ["a photo of a landbird", "a photo of a waterbird"]
    assert prompts["fairface.yaml"] == ["a photo of a woman", "a photo of a man"]
