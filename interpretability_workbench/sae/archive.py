"""SAE folders as zip files: export a registered SAE, import an uploaded SAELens folder.

Import accepts only ``cfg.json`` and ``*.safetensors`` members (optionally inside one top-level folder),
rejects absolute paths, ``..`` and links, bounds the unpacked size, and loads weights through safetensors:
nothing is ever unpickled or executed.
"""
from __future__ import annotations

import io
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import Invalid
from .io import CFG_NAME, SPARSITY_NAME, WEIGHTS_NAME

ALLOWED = (CFG_NAME, WEIGHTS_NAME, SPARSITY_NAME)
MAX_UNPACKED_BYTES = 4 << 30


def zip_folder(folder: Path) -> bytes:
    """The SAE folder's files as a zip (flat: cfg.json, sae_weights.safetensors[, sparsity.safetensors])."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in ALLOWED:
            p = Path(folder) / name
            if p.is_file():
                zf.write(p, arcname=name)
    return buf.getvalue()


def _member_target(info: zipfile.ZipInfo) -> str | None:
    """Validated file name for a member (None for directories); raises Invalid on anything unsafe."""
    name = info.filename
    if name.endswith("/"):
        return None
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or ":" in name:
        raise Invalid(f"zip member {name!r} points outside the archive; zip the SAE folder's files only")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise Invalid(f"zip member {name!r} is a symbolic link; links are not accepted")
    if len(p.parts) > 2:
        raise Invalid(f"zip member {name!r} is nested too deep; put cfg.json and sae_weights.safetensors at the "
                      "top level or in one folder")
    if p.name.startswith("._") or p.parts[0] == "__MACOSX":
        return ""  # macOS metadata: skipped
    if p.name not in ALLOWED:
        raise Invalid(f"zip member {name!r} is not allowed; an SAE zip holds only {', '.join(ALLOWED)}")
    return p.name


def unpack_sae_zip(data: bytes, dest: Path) -> Path:
    """Validate and unpack an uploaded SAE zip into ``dest``; returns the folder holding cfg.json."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise Invalid("the upload is not a zip file; zip an SAELens folder (cfg.json + sae_weights.safetensors)") from None
    with zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if total > MAX_UNPACKED_BYTES:
            raise Invalid(f"the zip unpacks to {total} bytes, more than the {MAX_UNPACKED_BYTES} allowed")
        seen: set[str] = set()
        for info in infos:
            target = _member_target(info)
            if not target:
                continue
            if target in seen:
                raise Invalid(f"the zip holds {target} twice; upload one SAE per zip")
            seen.add(target)
            with zf.open(info) as src, open(dest / target, "wb") as out:
                remaining = MAX_UNPACKED_BYTES
                while chunk := src.read(1 << 20):
                    remaining -= len(chunk)
                    if remaining < 0:
                        raise Invalid("the zip unpacks to more than its headers claim")
                    out.write(chunk)
    for need in (CFG_NAME, WEIGHTS_NAME):
        if need not in seen:
            raise Invalid(f"the zip lacks {need}; an SAELens folder has {CFG_NAME} and {WEIGHTS_NAME}")
    return dest


def import_zip(registry, data: bytes, name: str | None = None) -> str:
    """Unpack into a temp folder, import through the registry (safetensors only); returns the SAE id."""
    with tempfile.TemporaryDirectory(prefix="sae-import-") as tmp:
        folder = unpack_sae_zip(data, Path(tmp))
        return registry.import_folder(folder, name=name)
