"""The shared-folder helper the end-to-end tests lean on: built once, reused, a failure reported to every asker."""

import pytest

from tests.session_once import once_per_session


def test_a_folder_is_built_once_and_then_reused(tmp_path_factory):
    builds = []

    def build(folder):
        builds.append(folder)
        (folder / "made").write_text(str(len(builds)))

    first = once_per_session(tmp_path_factory, "built_once_probe", build)
    second = once_per_session(tmp_path_factory, "built_once_probe", build)
    assert first == second and len(builds) == 1 and (first / "made").read_text() == "1"


def test_a_failed_build_is_reported_again_to_the_next_asker(tmp_path_factory):
    def broken(folder):
        raise RuntimeError("the reference run failed")

    with pytest.raises(RuntimeError, match="the reference run failed"):
        once_per_session(tmp_path_factory, "failing_probe", broken)
    with pytest.raises(pytest.fail.Exception, match="failed earlier in this session:(.|\n)*the reference run failed"):
        once_per_session(tmp_path_factory, "failing_probe", lambda folder: None)
