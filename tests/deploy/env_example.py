"""Render ``.env.example`` from the Settings fields, so the documented variables are always the real ones.

    python tests/deploy/env_example.py      # rewrites .env.example at the repository root
"""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from interpretability_workbench.settings import Settings  # noqa: E402

HEADER = """\
# Interpretability Workbench: every setting is an environment variable IWB_<NAME>.
# Copy to .env (docker compose reads it as env_file) and edit. Generated from the Settings class by
# `python tests/deploy/env_example.py`; tests/deploy checks that it lists exactly the real settings.
# Commented lines show the default. In the container, IWB_HOME=/workspace, IWB_HOST=0.0.0.0 and
# IWB_PORT=8000 are set by the Dockerfile and docker-compose.yml.
"""

# values written uncommented: what a docker deployment must decide
ACTIVE = {"api_key": ""}


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    v = field.get_default(call_default_factory=True)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    if isinstance(v, Path):
        return str(v)
    return str(v)


def render() -> str:
    out = [HEADER]
    for name, field in Settings.model_fields.items():
        desc = field.description or ""
        if name == "api_key":
            desc += " REQUIRED in the container (it binds 0.0.0.0): a long random secret, e.g. `openssl rand -hex 32`."
        out.append("")
        out += ["# " + line for line in textwrap.wrap(desc, 100)]
        var = f"IWB_{name.upper()}"
        out.append(f"{var}={ACTIVE[name]}" if name in ACTIVE else f"# {var}={_default(name)}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    (REPO / ".env.example").write_text(render())
    print(f"wrote {REPO / '.env.example'}")
