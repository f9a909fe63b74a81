"""GPU tests: each module here sets ``pytestmark = pytest.mark.gpu`` (collected everywhere, skipped without CUDA:
see tests/conftest.py). Random models of real shapes come from ``bench/gpu_common.py`` (built on the GPU,
nothing downloaded)."""
from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
