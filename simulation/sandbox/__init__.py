"""The analytic sandbox: the loop on a Gaussian-mixture world with maximum-likelihood generators, whose answers are
known in closed form (docs/beyond-the-paper.md#analytic-sandbox-checking-the-loop-against-theory)."""
