"""RunDeps: what one training run needs from the rest of the workbench (narrow, typed; no Lightning here)."""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..activations.source_types import SourceSpec
from ..events import Publish
from ..sae.registry import SAERegistry
from ..store.runs import RunRepo


@dataclass
class RunDeps:
    runs: RunRepo
    """Run rows and metric history."""
    saes: SAERegistry
    """Where the trained SAEs are registered."""
    publish: Publish
    """Progress, done and cancelled events."""
    scope: AbstractContextManager[Any]
    """Held around every model forward (the model lock, with every patch switched off)."""
    runs_dir: Path
    """Run folders (checkpoints) live under it."""
    corpus: SourceSpec
    """How to open the run's corpus (streamed; the held-out slice comes from it, trace runs too)."""
