"""Records which process is which rank at the start of every stage (``common.rank_roster``), so a launch whose
rank dies mid-stage can name it."""

from __future__ import annotations

import lightning as L

from common.rank_roster import record_roster


class RankRoster(L.Callback):
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        record_roster()
