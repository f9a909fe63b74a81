"""``microscope``: the workbench from the command line. Each subcommand lives in its own module with a
``register(subparsers)`` function; scripts drive the same WorkbenchState as the server."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import WorkbenchError

COMMAND_MODULES = ["serve", "model", "trace", "infer", "backup", "analyze"]
COMMAND_MODULES.append("provenance")
COMMAND_MODULES += ["patch", "contrast"]
COMMAND_MODULES += ["train", "sae_io", "explain"]
COMMAND_MODULES.append("corpus")
COMMAND_MODULES.append("trace_circuit")
COMMAND_MODULES.append("evals")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="microscope",
        description="Interpretability Workbench: record activations, train SAEs, explore features, "
                    "patch models, trace provenance. Settings come from IWB_* environment variables.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as e:
        print(f"error: {e.detail}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
