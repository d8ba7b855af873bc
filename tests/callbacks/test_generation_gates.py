"""The generation stage's gates, fed batch by batch as trainer.predict would, in one process.

(Their agreement across 2 DDP processes is tested end to end in tests/e2e/test_gates_under_ddp.py.)
"""

from types import SimpleNamespace

import torch

from callbacks.block_statistics import BlockStatistics
from callbacks.contact_sheets import ContactSheets
from callbacks.filter_scores import FilterScores
from callbacks.shard_writer import ShardWriter
from common.generated import GeneratedBatch, GeneratedBlock, chunk_is_complete, write_chunk
from common.image_grids import save_contact_sheets
from datamodules.colored_mnist import color_oracle
from filters import ManualRejectFilter, Scorer
from lightning_modules.classifier import ClassifierModule
from metrics.block_statistics import block_statistics, subgroup_counts

MODULE = SimpleNamespace(device=torch.device("cpu"))
TRAINER = SimpleNamespace(global_rank=0, world_size=1, is_global_zero=True,
                          strategy=SimpleNamespace(barrier=lambda: None))


def block(n: int = 10) -> dict[str, torch.Tensor]:
    """Generated samples: id i, label i % 3, a stroke of colour i % 3 (readable by the colour oracle)."""
    ids = torch.arange(n)
    images = torch.zeros(n, 3, 28, 28, dtype=torch.uint8)
    images[ids, ids % 3, 10:18, 12:16] = 200
    return {"index": ids, "label": ids % 3, "image": images}


def feed(callbacks, outputs: dict[str, torch.Tensor], batches: list[list[int]]) -> None:
    """Call the predict hooks like trainer.predict, with the block split into ``batches`` of ids (any order)."""
    for callback in callbacks:
        callback.on_predict_start(TRAINER, MODULE)
    for number, ids in enumerate(batches):
        part = {key: value[ids] for key, value in outputs.items()}
        for callback in callbacks:
            callback.on_predict_batch_end(TRAINER, MODULE, part, None, number)
    for callback in callbacks:
        callback.on_predict_epoch_end(TRAINER, MODULE)


class IdFilter(Scorer):
    name = "id"

    def __init__(self) -> None:
        super().__init__(ratio=0.5)
        self.batches: list[list[int]] = []

    def score(self, images, labels, context):
        self.batches.append(context.sample_ids.tolist())
        return context.sample_ids.double() * 10


def test_filter_scores_are_computed_per_batch_and_gathered_in_id_order(tmp_path):
    scoring, manual = IdFilter(), ManualRejectFilter(reject_dir=str(tmp_path))
    gate = FilterScores([scoring, manual], generation=1, class_names=["a", "b", "c"])
    feed([gate], block(), [[6, 7, 8, 9], [0, 1, 2], [3, 4, 5]])
    assert scoring.batches == [[6, 7, 8, 9], [0, 1, 2], [3, 4, 5]]  # scored as generated
    assert list(gate.scores) == ["id"]  # the reviewer's filter is scored at selection, from the ids
    assert gate.scores["id"].tolist() == [10.0 * i for i in range(10)]


def write_reference(tmp_path) -> tuple[str, ClassifierModule]:
    torch.manual_seed(0)
    model = ClassifierModule("tiny_cnn", num_classes=3, num_groups=3, image_shape=(3, 28, 28))
    path = tmp_path / "reference.ckpt"
    torch.save({"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}, path)
    return str(path), model.eval()


def test_block_statistics_gate_equals_the_statistics_of_the_whole_block(tmp_path):
    checkpoint, reference = write_reference(tmp_path)
    real_counts = torch.tensor([[8, 1, 1], [1, 8, 1], [1, 1, 8]])
    gate = BlockStatistics(checkpoint, real_counts, lambda device: lambda images, labels: color_oracle(images))
    outputs = block()
    batches = [[5, 6, 7, 8, 9], [0, 1, 2, 3, 4]]
    feed([gate], outputs, batches)
    predicted = torch.empty(len(outputs["label"]), dtype=torch.long)
    with torch.no_grad():  # in the gate's batches: a batch of another size may run other float kernels (any CPU)
        for ids in batches:
            predicted[ids] = reference(outputs["image"][ids]).argmax(1)
    groups = color_oracle(outputs["image"])
    assert torch.equal(gate.per_sample["predicted"], predicted)
    assert torch.equal(gate.per_sample["group"], groups) and torch.equal(gate.per_sample["label"], outputs["label"])
    assert gate.statistics == block_statistics(outputs["label"], predicted, groups, real_counts)
    # every digit has its majority colour: u_t = 0.2 (the real shares are 0.8), majority gain +0.2
    assert subgroup_counts(outputs["label"], groups, 3, 3).diag().sum() == 10
    assert abs(gate.statistics["imbalance_u"] - 0.2) < 1e-9 and abs(gate.statistics["majority_gain"] - 0.2) < 1e-9


def test_chunks_and_contact_sheets_cover_the_block_once(tmp_path):
    shards, sheets = tmp_path / "shards", tmp_path / "sheets"
    outputs = block(12)
    writer = ShardWriter(shards, 12, 4)
    writer.setup(TRAINER, MODULE, "predict")
    assert writer.done_batches() == set()
    for number, ids in enumerate([[4, 5, 6, 7], [0, 1, 2, 3], [8, 9, 10, 11]]):
        writer.write_on_batch_end(TRAINER, MODULE, {k: v[ids] for k, v in outputs.items()}, None, None, number, 0)
    assert sorted(p.name for p in shards.iterdir()) == [f"chunk_{a:010d}_{a + 4:010d}.safetensors" for a in (0, 4, 8)]
    assert all(chunk_is_complete(p) for p in shards.iterdir())
    stored = list(GeneratedBlock(shards, 12).batches())
    assert torch.equal(torch.cat([b.images for b in stored]), outputs["image"])
    assert torch.equal(torch.cat([b.labels for b in stored]), outputs["label"])
    ContactSheets(shards, sheets, outputs["label"], ["a", "b", "c"], per_sheet=5).on_predict_epoch_end(TRAINER, MODULE)
    assert [p.name for p in sorted(sheets.glob("*.png"))] == [f"contact_sheet_{k:04d}.png" for k in range(3)]


def test_contact_sheets_drawn_chunk_by_chunk_on_two_ranks_equal_the_sheets_of_the_whole_block(tmp_path):
    outputs = block(23)
    for start in range(0, 23, 4):  # chunks of 4 and sheets of 5: no sheet is one chunk
        ids = torch.arange(start, min(start + 4, 23))
        write_chunk(tmp_path / "shards", GeneratedBatch(ids, outputs["label"][ids], outputs["image"][ids]))
    whole = save_contact_sheets(outputs["image"], outputs["index"], str(tmp_path / "whole"), per_sheet=5,
                                labels=outputs["label"], class_names=["a", "b", "c"])
    sheets = ContactSheets(tmp_path / "shards", tmp_path / "ranks", outputs["label"], ["a", "b", "c"], per_sheet=5)
    rank0, rank1 = sheets.draw(0, 2), sheets.draw(1, 2)
    assert [len(rank0), len(rank1)] == [2, 3]  # 5 sheets shared out: 0-1 on rank 0, 2-4 on rank 1
    assert [open(p, "rb").read() for p in rank0 + rank1] == [open(p, "rb").read() for p in whole]
