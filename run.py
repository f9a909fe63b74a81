#!/usr/bin/env python3
"""Start the Interpretability Workbench server (REST, WebSocket and browser UI).

    python run.py [--host 127.0.0.1] [--port 8000] [--model default]
"""
import argparse

from interpretability_workbench.server.main import serve

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default=None, help="bind address (env IWB_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (env IWB_PORT, default 8000)")
    p.add_argument("--model", default=None, help="'default', hub id, folder or .gguf; 'none' (env IWB_MODEL)")
    a = p.parse_args()
    raise SystemExit(serve(host=a.host, port=a.port, model=a.model))
