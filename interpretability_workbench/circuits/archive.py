"""Transcoder sets as zip files: a circuit-tracer folder (``config.yaml`` + ``layer_{i}.safetensors``) or
SAELens transcoder folders (``cfg.json`` + ``sae_weights.safetensors``, one folder per layer or one at the
top). Unpacking accepts only those names (at most two folders deep), refuses absolute paths, ``..`` and
links, and bounds the unpacked size; weights load through safetensors only.
"""
from __future__ import annotations

import io
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import Invalid
from .io import CT_CONFIG, SAELENS_CFG, SAELENS_WEIGHTS

MAX_UNPACKED_BYTES = 8 << 30
_ALLOWED = re.compile(rf"^({re.escape(CT_CONFIG)}|layer_\d+\.safetensors|{re.escape(SAELENS_CFG)}|"
                      rf"{re.escape(SAELENS_WEIGHTS)})$")


def zip_files(files: dict[str, Path]) -> bytes:
    """``{name in the archive: file}`` as a zip (stored, not compressed: safetensors do not shrink)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, path in files.items():
            zf.write(path, arcname=name)
    return buf.getvalue()


def _target(info: zipfile.ZipInfo) -> PurePosixPath | None:
    name = info.filename
    if name.endswith("/"):
        return None
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or ":" in name:
        raise Invalid(f"zip member {name!r} points outside the archive")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise Invalid(f"zip member {name!r} is a symbolic link; links are not accepted")
    if p.name.startswith("._") or p.parts[0] == "__MACOSX":
        return None
    if len(p.parts) > 3:
        raise Invalid(f"zip member {name!r} is nested too deep (at most two folders)")
    if any(part.startswith(".") for part in p.parts) or not _ALLOWED.match(p.name):
        raise Invalid(f"zip member {name!r} is not allowed; a transcoder zip holds {CT_CONFIG} and "
                      f"layer_<i>.safetensors (circuit-tracer) or {SAELENS_CFG} and {SAELENS_WEIGHTS} per folder (SAELens)")
    return p


def unpack(data: bytes, dest: Path) -> Path:
    """Validate and unpack an uploaded zip into ``dest``; returns ``dest``."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise Invalid("the upload is not a zip file; zip a circuit-tracer or SAELens transcoder folder") from None
    with zf:
        infos = zf.infolist()
        if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
            raise Invalid(f"the zip unpacks to more than the {MAX_UNPACKED_BYTES} bytes allowed")
        remaining = MAX_UNPACKED_BYTES
        for info in infos:
            target = _target(info)
            if target is None:
                continue
            out_path = dest.joinpath(*target.parts)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            if out_path.exists():
                raise Invalid(f"the zip holds {target} twice")
            with zf.open(info) as src, open(out_path, "wb") as out:
                while chunk := src.read(1 << 20):
                    remaining -= len(chunk)
                    if remaining < 0:
                        raise Invalid("the zip unpacks to more than its headers claim")
                    out.write(chunk)
    return dest


def find_set_root(folder: Path) -> tuple[str, Path | list[Path]]:
    """What an unpacked upload holds: ``("circuit-tracer", folder)`` or ``("saelens", [folders])``."""
    configs = sorted(folder.rglob(CT_CONFIG))
    if len(configs) > 1:
        raise Invalid(f"the upload holds {len(configs)} {CT_CONFIG} files; upload one transcoder set")
    if configs:
        return "circuit-tracer", configs[0].parent
    cfgs = sorted(p.parent for p in folder.rglob(SAELENS_CFG))
    if not cfgs:
        raise Invalid(f"the upload holds neither {CT_CONFIG} (circuit-tracer) nor {SAELENS_CFG} (SAELens)")
    return "saelens", cfgs
