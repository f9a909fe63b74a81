"""``microscope export`` / ``microscope import``: SAE folders and zips (SAELens v6 layout, safetensors only),
and SAEs of pretrained releases (``microscope import --release R --sae-id S`` or ``--all``)."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..sae.archive import import_zip, zip_folder
from ..settings import Settings
from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="export a registered SAE as a SAELens folder or .zip")
    e.add_argument("--sae", required=True, help="SAE id (GET /api/saes)")
    e.add_argument("--out", required=True, help="output folder, or a path ending in .zip")
    e.set_defaults(func=run_export)
    i = sub.add_parser("import", help="import a SAELens SAE folder or .zip, or SAEs of a pretrained release")
    i.add_argument("path", nargs="?", help="folder with cfg.json + sae_weights.safetensors, or a .zip of one")
    i.add_argument("--name", default=None, help="display name (folder or zip import)")
    i.add_argument("--release", default=None,
                   help="a pretrained release (SAELens's registry + IWB_SAE_REGISTRY files) instead of a path")
    i.add_argument("--sae-id", action="append", dest="sae_ids", default=None,
                   help="SAE id inside the release (repeat for several)")
    i.add_argument("--all", action="store_true", help="every SAE of the release (multi-layer work)")
    i.add_argument("--registry", action="append", default=[], help="extra registry file (SAELens's YAML layout)")
    i.add_argument("--download", action="store_true",
                   help="fetch missing files from the Hugging Face Hub (default: the local cache only)")
    add_model_args(i)
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


def run_pretrained(args: argparse.Namespace) -> int:
    """Import SAEs of a release; the model is loaded so they are checked against it and recorded under its id."""
    if args.path:
        raise ValueError("give either a path or --release, not both")
    if bool(args.sae_ids) == bool(args.all):
        raise ValueError("with --release give --sae-id ID (repeatable) or --all")
    base = Settings()
    overrides = {"sae_registry": [*base.sae_registry, *args.registry], "sae_downloads": base.sae_downloads or args.download}
    state = make_state(args, settings_overrides=overrides)
    try:
        for d in state.pretrained.import_release(args.release, None if args.all else args.sae_ids):
            row = state.saes.row(d.sae_id)
            print(f"imported {d.sae_id}: {d.release}/{d.pretrained_id} -> {row.hook_name} d_sae {row.d_sae} "
                  f"({row.architecture})")
        return 0
    finally:
        state.close()


def run_import(args: argparse.Namespace) -> int:
    if args.release:
        return run_pretrained(args)
    if not args.path:
        raise ValueError("give a folder or .zip to import, or --release R --sae-id S")
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
