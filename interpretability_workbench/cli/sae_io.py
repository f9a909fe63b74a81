"""``microscope export`` / ``microscope import``: SAE folders and zips (SAELens v6 layout, safetensors only)."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..sae.archive import import_zip, zip_folder
from .common import make_state


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="export a registered SAE as a SAELens folder or .zip")
    e.add_argument("--sae", required=True, help="SAE id (GET /api/saes)")
    e.add_argument("--out", required=True, help="output folder, or a path ending in .zip")
    e.set_defaults(func=run_export)
    i = sub.add_parser("import", help="import a SAELens SAE folder or .zip")
    i.add_argument("path", help="folder with cfg.json + sae_weights.safetensors, or a .zip of one")
    i.add_argument("--name", default=None, help="display name")
    i.set_defaults(func=run_import)


def run_export(args: argparse.Namespace) -> int:
    state = make_state(args, need_model=False)
    try:
        row = state.saes.row(args.sae)
        out = Path(args.out)
        if out.suffix == ".zip":
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(zip_folder(Path(row.path)))
        else:
            shutil.copytree(row.path, out, dirs_exist_ok=True)
        print(f"exported {args.sae} ({row.hook_name}, d_sae {row.d_sae}) to {out}")
        return 0
    finally:
        state.close()


def run_import(args: argparse.Namespace) -> int:
    state = make_state(args, need_model=False)
    try:
        p = Path(args.path)
        if p.is_file():
            sae_id = import_zip(state.saes, p.read_bytes(), name=args.name or p.stem)
        elif p.is_dir():
            sae_id = state.saes.import_folder(p, name=args.name)
        else:
            raise FileNotFoundError(f"{p} does not exist")
        row = state.saes.row(sae_id)
        print(f"imported {sae_id}: {row.hook_name} d_sae {row.d_sae} ({row.architecture})")
        return 0
    finally:
        state.close()
