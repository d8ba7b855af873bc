"""One CUDA availability probe per process on machines without a GPU, not one per optimizer step.

Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` when imported, so that asking whether CUDA is there never
initialises it before a fork. torch's Adam asks on every ``step()``; with a CUDA build of torch and no GPU, the NVML
answer is never cached and each step loads the NVML library again: about 0.16 ms a step, some 3% of a LeNet step on
a CPU (measured with cProfile; BENCHMARKS.md). With no GPU there is no CUDA state a fork could inherit, so the
runtime's own check, which torch caches, is safe there.
"""

from __future__ import annotations

import os

import torch

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def probe_cuda_once_without_gpu() -> bool:
    """Switch torch to its cached CUDA check where NVML sees no GPU; True when it did. GPU machines are untouched."""
    if os.environ.get(NVML_CHECK) != "1" or not hasattr(torch._C, "_cuda_getDeviceCount"):
        return False
    if torch.cuda.device_count() > 0:
        return False
    os.environ[NVML_CHECK] = "0"
    return True
