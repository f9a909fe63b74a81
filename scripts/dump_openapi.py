#!/usr/bin/env python3
"""Write the server's OpenAPI schema to ui/openapi.json (no model load, no server).

    python scripts/dump_openapi.py [--out ui/openapi.json] [--check]

The UI's typed client is generated from that file: afterwards run `(cd ui && npm run gen:api)`.
tests/test_openapi_snapshot.py fails when the committed file differs from the live app's schema.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "ui" / "openapi.json"


def live_schema() -> dict:
    """The schema of create_app() under default settings: IWB_* env vars are set aside while the app is built
    (and restored after), so the dump does not depend on who runs it."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from interpretability_workbench.server.app import create_app
    from interpretability_workbench.settings import Settings

    saved = {k: os.environ.pop(k) for k in [k for k in os.environ if k.startswith("IWB_") and k != "IWB_HOME"]}
    try:
        app = create_app(Settings(model="none"), load_model=False)
        return app.openapi()
    finally:
        os.environ.update(saved)


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write (default ui/openapi.json)")
    p.add_argument("--check", action="store_true", help="exit 1 if the file differs from the live schema")
    a = p.parse_args(argv)
    text = render(live_schema())
    if a.check:
        same = a.out.is_file() and a.out.read_text(encoding="utf-8") == text
        print(f"{a.out}: {'up to date' if same else 'STALE'}")
        return 0 if same else 1
    tmp = a.out.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, a.out)
    n = len(json.loads(text).get("paths", {}))
    print(f"wrote {a.out} ({n} paths)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
