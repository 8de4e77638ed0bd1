"""Request bodies with a member named twice are refused, not read with the last value winning.

RFC 8259 leaves duplicate names to the parser, and parsers differ: one reads the first
value, another the last. A ledger whose entries are evidence must not record a body whose
meaning depends on who reads it (I-JSON, RFC 7493 section 2.3: names MUST be unique; RFC
8785's canonical form presumes I-JSON). FastAPI reads bodies with `Request.json`
(the standard library's parser, last value wins), so the routes that take bodies use a
request whose `json` refuses them; FastAPI turns the decode error into its `json_invalid`
validation error, which `api.errors` answers (422, or the 401/403 a body would get).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from ledger.offline_verify import read_json


def loads_unique(text: str | bytes) -> Any:
    """`json.loads`, refusing an object with a member name twice (`json.JSONDecodeError`).

    The names are noted by the evidence verifier's parser (`ledger.offline_verify.read_json`,
    which reports them in a bundle), so both read JSON alike.

    Bytes must be UTF-8 (RFC 8259 8.1, I-JSON): `json.loads` would also take UTF-16 and
    UTF-32 by their first bytes. Anything else raises `UnicodeDecodeError`, which FastAPI
    answers 400 (docs/api.md: `bad-request`, a body that is not UTF-8 text)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig")  # strict: no lone surrogates either
    value, repeated = read_json(text)
    if repeated:
        message = f"the member name {json.dumps(repeated[0])} appears more than once in an object"
        raise json.JSONDecodeError(message, text, 0)
    return value


class _UniqueNamesRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_unique(await self.body())
        return self._json


class UniqueNamesRoute(APIRoute):
    """An `APIRoute` whose body is parsed with `loads_unique` (FastAPI's documented way to
    change how a route reads its request)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(_UniqueNamesRequest(request.scope, request.receive))

        return handle
