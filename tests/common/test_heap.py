"""common/heap.py: with the mmap threshold fixed, a batch-sized buffer gets its own mapping (returned to the OS when
freed) even after a larger buffer was freed; without it, glibc serves it from the heap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
import torch
from common.heap import fix_mmap_threshold

def anonymous_mappings():
    return {line.split()[0] for line in open("/proc/self/maps") if len(line.split()) == 5}

fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else None
big = torch.ones(24 << 20, dtype=torch.uint8)
del big  # glibc's dynamic threshold now rises to 24 MiB
before = anonymous_mappings()
batch = torch.ones(2 << 20, dtype=torch.uint8)  # a batch's worth
print(fixed, len(anonymous_mappings() - before))
"""


def probe(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.skipif(not Path("/proc/self/maps").exists() or not sys.platform.startswith("linux"),
                    reason="reads the process's mappings from /proc (Linux)")
def test_a_batch_sized_buffer_gets_its_own_mapping_only_with_the_threshold_fixed():
    assert probe("dynamic") == "None 0"  # from the heap: the pattern that grew a generating rank's memory with S
    assert probe("fix") == "True 1"


def test_the_shard_writer_fixes_the_threshold_when_generation_starts(monkeypatch):
    import callbacks.shard_writer as shard_writer

    calls = []
    monkeypatch.setattr(shard_writer, "fix_mmap_threshold", lambda: calls.append(True))

    class Stop(Exception):
        pass

    class Trainer:
        @property
        def global_rank(self):
            raise Stop

    with pytest.raises(Stop):
        shard_writer.ShardWriter("unused", 10, 5).setup(Trainer(), None, "predict")
    assert calls == [True]
