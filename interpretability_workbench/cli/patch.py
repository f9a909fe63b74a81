from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_model_args, make_state


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("patch", help="create, list, change, export and import feature patches")
    psub = p.add_subparsers(dest="patch_cmd", metavar="ACTION", required=True)
    ls = psub.add_parser("list", help="stored patches as JSON")
    ls.set_defaults(func=run_list, need_model=False)
    c = psub.add_parser("create", help="create a patch on SAE features (stored; applied whenever its model is loaded)")
    c.add_argument("--sae", required=True, help="SAE id")
    c.add_argument("--features", required=True, help="comma-separated feature indices")
    c.add_argument("--mode", required=True, choices=["ablate", "scale", "steer", "clamp"])
    c.add_argument("--strength", type=float, default=None, help="ablate fraction / scale factor / steer α / clamp value")
    c.add_argument("--name", default=None)
    c.set_defaults(func=run_create)
    s = psub.add_parser("set", help="change a patch's strength or enabled flag")
    s.add_argument("id")
    s.add_argument("--strength", type=float, default=None)
    s.add_argument("--enable", dest="enabled", action="store_const", const=True, default=None)
    s.add_argument("--disable", dest="enabled", action="store_const", const=False)
    s.set_defaults(func=run_set)
    d = psub.add_parser("delete", help="delete a patch")
    d.add_argument("id")
    d.set_defaults(func=run_delete)
    e = psub.add_parser("export", help="write a zip: PEFT LoRA adapter (peft) or native patch folder (native)")
    e.add_argument("id")
    e.add_argument("--format", choices=["peft", "native"], default="peft")
    e.add_argument("--out", required=True, help="zip file to write")
    e.set_defaults(func=run_export)
    i = psub.add_parser("import", help="import a PEFT adapter zip or a native patch zip")
    i.add_argument("zip")
    i.add_argument("--name", default=None)
    i.set_defaults(func=run_import)
    for sp in (c, s, d, e, i):
        add_model_args(sp)


def _state(args: argparse.Namespace):  # noqa: ANN202
    return make_state(args, need_model=getattr(args, "need_model", True))


def run_list(args: argparse.Namespace) -> int:
    state = _state(args)
    print(json.dumps([c.to_dict() for c in state.patches.list()], indent=2))
    return 0


def run_create(args: argparse.Namespace) -> int:
    state = _state(args)
    cfg = state.patches.create(sae_id=args.sae, features=[int(f) for f in args.features.split(",")], mode=args.mode,
                               strength=args.strength, name=args.name)
    print(json.dumps(cfg.to_dict(), indent=2))
    return 0


def run_set(args: argparse.Namespace) -> int:
    state = _state(args)
    print(json.dumps(state.patches.update(args.id, strength=args.strength, enabled=args.enabled).to_dict(), indent=2))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    _state(args).patches.delete(args.id)
    print(f"deleted {args.id}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    ex = _state(args).patch_transfer.export(args.id, args.format)
    Path(args.out).write_bytes(ex.data)
    print(f"wrote {args.out}: {ex.note}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    state = _state(args)
    cfg = state.patch_transfer.import_zip(Path(args.zip).read_bytes(), args.name)
    print(json.dumps(cfg.to_dict(), indent=2))
    return 0
