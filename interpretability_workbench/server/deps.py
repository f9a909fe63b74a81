"""Annotated dependency aliases."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..settings import Settings
from ..state import WorkbenchState


def get_state(request: Request) -> WorkbenchState:
    return request.app.state.workbench


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.workbench.settings


StateDep = Annotated[WorkbenchState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
