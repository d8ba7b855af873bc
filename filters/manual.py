"""Manual review, a selector: keep every sample except the ids a human listed (paper app. C, first step).

The reviewer looks at the contact sheets (``common/image_grids.py``, every image captioned ``<id> · <class>``,
e.g. ``10 · 9`` for sample 10 of class 9) and writes the ids to reject in a text file per generation: one id per
line, ``#`` starts a comment.
The file is ``reject_lists[generation]`` or ``<reject_dir>/gen_<generation>.txt``; no file = nothing rejected.
"""

from __future__ import annotations

import glob
import os

import torch

from common.errors import ConfigError

from .base import FilterContext, Selector


def read_id_list(path: str) -> set[int]:
    """The integer ids in ``path`` (one per line, ``#`` comments and blank lines allowed)."""
    ids: set[int] = set()
    with open(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                ids.add(int(text))
            except ValueError:
                raise ConfigError(
                    f"{path}:{line_number}: {text!r} is not a sample id; write one integer id per line "
                    "(the numbers printed under each image of the contact sheets), '#' for comments"
                ) from None
    return ids


class ManualRejectFilter(Selector):
    """Keeps every sample but the ids the reviewer listed for the generation (no list yet: every sample)."""

    name = "manual"

    def __init__(self, reject_lists: dict[int, str] | None = None, reject_dir: str | None = None) -> None:
        self.reject_lists: dict[int, str] = {}
        for generation, path in (reject_lists or {}).items():
            try:
                key = int(generation)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"ManualRejectFilter.reject_lists keys must be generation numbers, got {generation!r}"
                ) from None
            if not os.path.isfile(path):
                raise ConfigError(
                    f"ManualRejectFilter.reject_lists[{key}] = {path!r} does not exist; write the rejected ids "
                    "there (one per line) or remove the entry"
                )
            self.reject_lists[key] = str(path)
        if reject_dir is not None and not os.path.isdir(reject_dir):
            raise ConfigError(
                f"ManualRejectFilter.reject_dir {reject_dir!r} is not a directory; create it and put gen_<g>.txt "
                "files of rejected ids in it, or unset reject_dir"
            )
        self.reject_dir = reject_dir

    def list_path(self, generation: int) -> str | None:
        """The reject list of ``generation``, or None when the reviewer wrote none."""
        if int(generation) in self.reject_lists:
            return self.reject_lists[int(generation)]
        if self.reject_dir is not None:
            candidate = os.path.join(self.reject_dir, f"gen_{int(generation)}.txt")
            if os.path.isfile(candidate):
                return candidate
        return None

    def check_available(self) -> None:
        """Parse every list already written (a typo surfaces before any work; ids are checked per block later)."""
        paths = list(self.reject_lists.values())
        if self.reject_dir is not None:
            paths += sorted(glob.glob(os.path.join(self.reject_dir, "gen_*.txt")))
        for path in paths:
            read_id_list(path)

    def review_pending(self, generation: int) -> str | None:
        """Where the reviewer should write generation ``generation``'s list, while it does not exist."""
        if self.list_path(generation) is not None:
            return None
        if int(generation) in self.reject_lists:
            return self.reject_lists[int(generation)]
        if self.reject_dir is not None:
            return os.path.join(self.reject_dir, f"gen_{int(generation)}.txt")
        return "reject_lists[<generation>] or a reject_dir with gen_<generation>.txt"

    def rejected_ids(self, generation: int) -> set[int]:
        path = self.list_path(generation)
        return read_id_list(path) if path is not None else set()

    def validate(self, context: FilterContext) -> None:
        unknown = sorted(self.rejected_ids(context.generation) - set(context.sample_ids.tolist()))
        if unknown:
            shown = ", ".join(map(str, unknown[:20])) + (f", ... ({len(unknown)} in all)" if len(unknown) > 20 else "")
            raise ConfigError(
                f"{self.list_path(context.generation)} rejects ids that are not in generation "
                f"{context.generation}'s samples: {shown}; use the ids shown on that generation's contact sheets"
            )

    def select(self, labels: torch.Tensor, context: FilterContext) -> torch.Tensor:
        """Keep mask: False exactly for the listed ids among ``context.sample_ids`` (the images are not needed)."""
        rejected = torch.tensor(sorted(self.rejected_ids(context.generation)), dtype=torch.long)
        return ~torch.isin(context.sample_ids.long().cpu(), rejected)

    def __repr__(self) -> str:
        return f"ManualRejectFilter(reject_lists={self.reject_lists}, reject_dir={self.reject_dir!r})"
