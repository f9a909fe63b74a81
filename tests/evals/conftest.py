"""Fixtures for the evaluation service tests: one WorkbenchState on the tiny Llama per module, with a client."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    settings = Settings(home=tmp_path_factory.mktemp("ehome"), model=str(tiny_llama_dir), device="cpu",
                        dtype="float32")
    st = WorkbenchState(settings)
    st.load_model(settings.model)
    yield st
    st.shutdown()
    st.close()


@pytest.fixture(scope="module")
def client(state):
    from fastapi.testclient import TestClient

    from interpretability_workbench.server.app import create_app

    with TestClient(create_app(state.settings, state, load_model=False)) as c:
        yield c
