"""Building blocks for module-scoped fixtures: a WorkbenchState over a model folder, and a TestClient on it.

Used as ``yield from`` in the conftest files of the packages that need one state per module."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def workbench_state(home: Path, model_dir: Path | str, dtype: str = "float32") -> Iterator[Any]:
    """A WorkbenchState with ``model_dir`` loaded on the CPU in ``dtype``; shut down and closed afterwards."""
    from interpretability_workbench.settings import Settings
    from interpretability_workbench.state import WorkbenchState

    settings = Settings(home=home, model=str(model_dir), device="cpu", dtype=dtype)
    st = WorkbenchState(settings)
    st.load_model(settings.model)
    yield st
    st.shutdown()
    st.close()


def workbench_client(state: Any) -> Iterator[Any]:
    """A TestClient on the app around ``state`` (the model already loaded)."""
    from fastapi.testclient import TestClient

    from interpretability_workbench.server.app import create_app

    with TestClient(create_app(state.settings, state, load_model=False)) as c:
        yield c
