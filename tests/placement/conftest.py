"""A WorkbenchState per module over the tiny Llama loaded in bf16 (CPU), and its TestClient."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bf16_state(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir):
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    settings = Settings(home=tmp_path_factory.mktemp("bf16home"), model=str(tiny_llama_dir), device="cpu",
                        dtype="bfloat16")
    st = WorkbenchState(settings)
    st.load_model(settings.model)
    yield st
    st.shutdown()
    st.close()


@pytest.fixture(scope="module")
def bf16_client(bf16_state):
    from fastapi.testclient import TestClient

    from interpretability_workbench.server.app import create_app

    with TestClient(create_app(bf16_state.settings, bf16_state, load_model=False)) as c:
        yield c
