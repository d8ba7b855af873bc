"""The atomic writer gives its files the mode a plain ``open(path, "w")`` gives (``0o666 & ~umask``), not the private
``0o600`` of ``mkstemp``: a run's files are as readable as the lab's umask allows. Checked at umask 022 and 002 (a
shared group), against a file made by ``open`` under the same umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from common.io import atomic_save_image, atomic_write, atomic_write_text, current_umask, shared_file_mode


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_umask_is_read_without_being_changed(umask):
    assert current_umask() == umask
    assert current_umask() == umask  # reading it twice: it was not left at another value
    assert shared_file_mode() == {0o022: 0o644, 0o002: 0o664}[umask]


def test_an_atomically_written_file_gets_the_mode_open_would_give(tmp_path, umask):
    expected = {0o022: 0o644, 0o002: 0o664}[umask]
    with open(tmp_path / "plain.txt", "w") as handle:
        handle.write("x")
    assert mode(tmp_path / "plain.txt") == expected  # what every other program writes under this umask
    atomic_write_text(tmp_path / "state.json", "{}")
    assert mode(tmp_path / "state.json") == expected
    atomic_write_text(tmp_path / "state.json", '{"a": 1}')  # a rewrite (rename over the old file) keeps it
    assert mode(tmp_path / "state.json") == expected and (tmp_path / "state.json").read_text() == '{"a": 1}'


def test_an_image_written_through_the_atomic_writer_follows_the_umask(tmp_path, umask):
    from PIL import Image

    atomic_save_image(Image.new("RGB", (4, 4)), tmp_path / "gen_01" / "samples.png")
    assert mode(tmp_path / "gen_01" / "samples.png") == 0o666 & ~umask


def test_a_failed_write_leaves_no_temporary_file_and_the_old_content(tmp_path, umask):
    atomic_write_text(tmp_path / "results.jsonl", "old\n")

    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(tmp_path / "results.jsonl", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]
    assert (tmp_path / "results.jsonl").read_text() == "old\n"


def test_a_mount_that_refuses_chmod_still_gets_the_file_written(tmp_path, monkeypatch):
    """vfat, SMB and FUSE mounts answer chmod with EPERM: the write goes on, the mode is best effort."""
    import errno

    def refuse(fd, mode):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    (tmp_path / "a.txt").write_text("old")
    atomic_write_text(tmp_path / "a.txt", "new")
    assert (tmp_path / "a.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left behind
