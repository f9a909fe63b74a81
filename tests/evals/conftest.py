"""Fixtures for the evaluation service tests: one WorkbenchState on the tiny Llama per module, with a client."""
from __future__ import annotations

import pytest

from workbench_fixtures import workbench_client, workbench_state


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir):
    yield from workbench_state(tmp_path_factory.mktemp("ehome"), tiny_llama_dir, "float32")


@pytest.fixture(scope="module")
def client(state):
    yield from workbench_client(state)
