"""Plain metrics (no Lightning): fairness, FID, Hard ImageNet ablations and generated-block statistics."""
