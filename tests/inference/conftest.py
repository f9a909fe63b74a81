from __future__ import annotations

import pytest

from patches.conftest import PROMPTS, make_sae  # noqa: F401  (tests/ is on sys.path via the root conftest)


@pytest.fixture
def steer_patch(state) -> str:
    sid, _ = make_sae(state, layer=1)
    return state.patches.create(sae_id=sid, features=[2], mode="steer", strength=6.0).id
