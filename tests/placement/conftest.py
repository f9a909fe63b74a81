"""A WorkbenchState per module over the tiny Llama loaded in bf16 (CPU), and its TestClient."""
from __future__ import annotations

import pytest

from workbench_fixtures import workbench_client, workbench_state


@pytest.fixture(scope="module")
def bf16_state(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir):
    yield from workbench_state(tmp_path_factory.mktemp("bf16home"), tiny_llama_dir, "bfloat16")


@pytest.fixture(scope="module")
def bf16_client(bf16_state):
    yield from workbench_client(bf16_state)
