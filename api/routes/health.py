"""`/healthz`: liveness for orchestrators; answers only when the store does."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ServicesDep
from api.responses import Json
from api.schemas.responses import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz(services: ServicesDep) -> Any:
    services.merkle.size()  # one indexed read: an unreachable store fails the check
    return Json({"status": "ok"})  # rendered: no response-model pass on another thread
