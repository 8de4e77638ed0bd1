"""JSON rendering for read bodies: compact, and tolerant of dates from the read models."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse

from ledger.entry import format_timestamp


def format_datetime(value: datetime) -> str:
    """RFC 3339 UTC, the ledger's own form (`...T14:02:11.123456Z`)."""
    return format_timestamp(value.astimezone(UTC) if value.tzinfo is not None else value)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "as_json"):
        return value.as_json()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class Json(JSONResponse):
    """`application/json` rendered with the standard library, bypassing FastAPI's encoder."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, separators=(",", ":"), default=_default
        ).encode()


class RawJson(JSONResponse):
    """`application/json` whose body is already rendered (bytes spliced from stored JSON).
    A `JSONResponse` so that OpenAPI documents it as JSON (as a plain `Response` it was
    declared `type: string` beside its model), but it renders nothing again."""

    def render(self, content: Any) -> bytes:
        assert isinstance(content, bytes)
        return content


def documented(model: type[BaseModel], description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry for a body rendered by `Json`: documented by `model`
    (`api.schemas.reads`), never validated or filtered by it."""
    return {"model": model, "description": description}
