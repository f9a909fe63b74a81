"""``microscope backup --out FILE.tar.gz [--include-models]`` and ``microscope restore FILE.tar.gz [--force]``
of the workspace at IWB_HOME."""
from __future__ import annotations

import argparse

from ..settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("backup", help="write the workspace (database, SAEs, corpora, runs) to a .tar.gz")
    b.add_argument("--out", required=True, help="archive to write, e.g. iwb-backup.tar.gz")
    b.add_argument("--include-models", action="store_true",
                   help="also archive the model cache (large; rebuilt on demand when left out)")
    b.add_argument("--home", default=None, help="workspace folder (env IWB_HOME)")
    b.set_defaults(func=run_backup)
    r = sub.add_parser("restore", help="restore a workspace backup into IWB_HOME (stop the server first)")
    r.add_argument("archive", help="archive written by `microscope backup`")
    r.add_argument("--force", action="store_true", help="replace the contents of a non-empty workspace")
    r.add_argument("--home", default=None, help="workspace folder (env IWB_HOME)")
    r.set_defaults(func=run_restore)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(home=args.home) if args.home else Settings()


def run_backup(args: argparse.Namespace) -> int:
    from ..backup import create_backup

    res = create_backup(_settings(args), args.out, include_models=args.include_models)
    print(f"wrote {res.path}: {res.n_files} files, {res.n_bytes / 1e6:.1f} MB before compression")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from ..backup import restore_backup

    res = restore_backup(_settings(args), args.archive, force=args.force)
    note = f"; {res.rewritten_paths} stored paths moved from {res.source_home}" if res.rewritten_paths else ""
    print(f"restored {res.n_files} files into {res.home}{note}")
    return 0
