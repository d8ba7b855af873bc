"""The per-step NVML probe is switched off only on machines without a GPU."""

import os

import torch

from common.cuda_probe import NVML_CHECK, probe_cuda_once_without_gpu


def test_without_a_gpu_the_cached_runtime_check_replaces_nvml(monkeypatch):
    monkeypatch.setenv(NVML_CHECK, "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert probe_cuda_once_without_gpu() is True
    assert os.environ[NVML_CHECK] == "0"


def test_with_a_gpu_or_without_lightnings_setting_nothing_changes(monkeypatch):
    monkeypatch.setenv(NVML_CHECK, "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert probe_cuda_once_without_gpu() is False
    assert os.environ[NVML_CHECK] == "1"
    monkeypatch.delenv(NVML_CHECK)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert probe_cuda_once_without_gpu() is False and NVML_CHECK not in os.environ
