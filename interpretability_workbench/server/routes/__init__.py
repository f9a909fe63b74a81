"""One router per resource; app.py mounts every router listed here."""
from __future__ import annotations

from fastapi import APIRouter

from . import corpora, health, model

ROUTERS: list[APIRouter] = [health.router, model.router, corpora.router]
