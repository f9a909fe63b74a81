"""The Python packages ``scripts/gpu_check.sh`` needs besides PyTorch: the project's runtime dependencies
(pyproject.toml) plus what the GPU tests import (pytest, pytest-timeout, sae-lens).

    python scripts/gpu_check_requirements.py             # every requirement, one per line (for pip download)
    python scripts/gpu_check_requirements.py --missing   # only those this Python lacks or has in a wrong version
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
TEST_EXTRAS = ("pytest", "pytest-timeout", "sae-lens")
SKIP = ("torch",)  # the machine's own CUDA build


def _name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req.strip(), maxsplit=1)[0]


def requirements() -> list[str]:
    text = PYPROJECT.read_text()
    try:
        import tomllib

        data = tomllib.loads(text)
        deps = list(data["project"]["dependencies"])
        extras = data["project"].get("optional-dependencies", {}).get("test", [])
    except ModuleNotFoundError:  # Python 3.10: the two arrays are simple enough to read directly
        def array(key: str) -> list[str]:
            m = re.search(rf"^{key}\s*=\s*\[(.*?)\]", text, re.S | re.M)
            return re.findall(r'"([^"]+)"', m.group(1)) if m else []
        deps, extras = array("dependencies"), array("test")
    wanted = deps + [e for e in extras if _name(e) in TEST_EXTRAS]
    return [r for r in wanted if _name(r).lower() not in SKIP]


def satisfied(req: str) -> bool:
    name = _name(req)
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return True
    return Requirement(req).specifier.contains(version, prereleases=True)


def main() -> None:
    reqs = requirements()
    if "--missing" in sys.argv[1:]:
        reqs = [r for r in reqs if not satisfied(r)]
        print(" ".join(f"'{r}'" if any(c in r for c in "<>[") else r for r in reqs))
    else:
        print("\n".join(reqs))


if __name__ == "__main__":
    main()
