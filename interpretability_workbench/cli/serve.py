from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="serve the REST API, WebSocket and browser UI", aliases=["serve"])
    p.add_argument("--host", default=None, help="bind address (env IWB_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (env IWB_PORT, default 8000)")
    p.add_argument("--model", default=None, help="model to load at start; 'none' for none (env IWB_MODEL)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..server.main import serve

    return serve(host=args.host, port=args.port, model=args.model)
