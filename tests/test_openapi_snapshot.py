"""The committed ui/openapi.json (from which the UI's typed client is generated) must equal the live app's schema."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIX = "python scripts/dump_openapi.py && (cd ui && npm run gen:api)"


def _dump_module():
    spec = importlib.util.spec_from_file_location("dump_openapi", ROOT / "scripts" / "dump_openapi.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_openapi_matches_live_app() -> None:
    dump = _dump_module()
    committed = ROOT / "ui" / "openapi.json"
    assert committed.is_file(), f"ui/openapi.json is missing; run: {FIX}"
    live = dump.render(dump.live_schema())
    if committed.read_text(encoding="utf-8") == live:
        return
    old, new = json.loads(committed.read_text(encoding="utf-8")), json.loads(live)
    changed = sorted(set(old.get("paths", {})) ^ set(new.get("paths", {})))
    changed += sorted(p for p in set(old.get("paths", {})) & set(new.get("paths", {}))
                      if old["paths"][p] != new["paths"][p])
    schemas = sorted(k for k in set(old.get("components", {}).get("schemas", {})) |
                     set(new.get("components", {}).get("schemas", {}))
                     if old.get("components", {}).get("schemas", {}).get(k)
                     != new.get("components", {}).get("schemas", {}).get(k))
    raise AssertionError(
        "ui/openapi.json is stale: the API changed without regenerating the UI's client.\n"
        f"  changed paths: {changed[:20]}\n  changed schemas: {schemas[:20]}\n"
        f"Run: {FIX}\nthen fix the UI pages the TypeScript compiler points at (cd ui && npm run build).")
