"""Fixtures for training tests: a small, fast config on the tiny Llama (d_model 64)."""
from __future__ import annotations

import pytest

from interpretability_workbench.training.config import TrainingConfig


def small_config(**kw) -> TrainingConfig:
    base = dict(hook_names=["blocks.1.hook_resid_post"], d_sae=256, k=8, total_tokens=24_576, batch_size=512,
                context_size=64, model_batch_size=32, buffer_tokens=4096, eval_tokens=2048, ce_eval_contexts=4,
                checkpoint_every=10, lr=3e-3, dead_after_tokens=8192, analyze=False, accelerator="cpu")
    base.update(kw)
    return TrainingConfig(**base)


@pytest.fixture
def make_config():
    return small_config
