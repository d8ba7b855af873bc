"""A filter that keeps each generated sample of subgroup g with probability q_g: a known subgroup bias.

Sample i of subgroup g is kept when u_i < q_g, u_i a uniform number drawn from (generation, sample id), so the kept
count of a subgroup is binomial(n_g, q_g) and the odds of subgroup a to b among the kept samples are q_a / q_b times
those of the block, in expectation over many samples. The subgroups are the oracle's (the dataset's pixels).
"""

from __future__ import annotations

import torch

from common.errors import ConfigError
from common.seeds import stage_seed
from filters.base import FilterContext, Needs, Selector
from sandbox.perfect_generators import per_sample_uniform


class SubgroupKeepRateFilter(Selector):
    """Args:
    keep_rates: q_g, the probability of keeping a sample of subgroup g, one per subgroup in order.
    """

    name = "subgroup_keep_rate"
    needs = Needs(subgroups=True)

    def __init__(self, keep_rates: list[float]) -> None:
        rates = [float(q) for q in keep_rates]
        if not rates or any(not 0.0 < q <= 1.0 for q in rates):
            raise ConfigError(f"SubgroupKeepRateFilter.keep_rates must be probabilities in (0, 1], one per subgroup, "
                              f"got {keep_rates!r}")
        self.keep_rates = rates

    def select(self, labels: torch.Tensor, context: FilterContext) -> torch.Tensor:
        """Keep sample i of subgroup g when u_i < q_g (a subgroup the oracle could not read: dropped)."""
        groups = context.subgroups.long().cpu()
        if bool((groups >= len(self.keep_rates)).any()):
            raise ConfigError(f"SubgroupKeepRateFilter has {len(self.keep_rates)} keep_rates but the oracle read "
                              f"subgroup {int(groups.max())}: give one rate per subgroup")
        rates = torch.tensor(self.keep_rates, dtype=torch.float64)[groups.clamp(min=0)]
        rates[groups < 0] = 0.0
        uniform = per_sample_uniform(context.sample_ids, stage_seed(0, context.generation, "keep_rate"))
        return uniform < rates

    def __repr__(self) -> str:
        return f"SubgroupKeepRateFilter(keep_rates={self.keep_rates})"
