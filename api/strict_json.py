"""Request bodies with a member named twice are refused, not read with the last value winning.

RFC 8259 leaves duplicate names to the parser, and parsers differ: one reads the first
value, another the last. A ledger whose entries are evidence must not record a body whose
meaning depends on who reads it (I-JSON, RFC 7493 section 2.3: names MUST be unique; RFC
8785's canonical form presumes I-JSON). FastAPI reads bodies with `Request.json`
(the standard library's parser, last value wins), so the routes that take bodies use a
request whose `json` refuses them; FastAPI turns the decode error into its `json_invalid`
validation error, which `api.errors` answers (422, or the 401/403 a body would get).

A member name with an unpaired surrogate (`"\\ud800"`, escaped: the text is UTF-8) is
not Unicode text (RFC 8259 8.2): refused the same way, naming it; pydantic would report
it of the whole object ("Input should be a valid string") without saying which name.

Every other way a body can fail to parse ends the same way, so that no caller learns of it
before the token check: nesting too deep for the parser (`read_json` says so) and a number
too long to convert and NaN or Infinity, which are not JSON (`ValueError`) are JSON decode
errors too (422, as such a value in any field already was), and text that is not UTF-8 is
`NotUtf8`, a 400 `api.errors` also answers after the token check. FastAPI would answer
each with its own 400 ("There was an error parsing the body") before any dependency ran.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ledger.offline_verify import read_json


class NotUtf8(HTTPException):
    """A body that is not UTF-8 text (400, `api.errors`, after the token check)."""

    def __init__(self) -> None:
        super().__init__(400, "the request body is not UTF-8 text")


def loads_unique(text: str | bytes) -> Any:
    """`json.loads`, refusing an object with a member name twice (`json.JSONDecodeError`).

    The names are noted by the evidence verifier's parser (`ledger.offline_verify.read_json`,
    which reports them in a bundle), so both read JSON alike.

    Bytes are UTF-8 (RFC 8259 8.1; a leading byte order mark is ignored, as 8.1 allows):
    `json.loads` would also read UTF-16 and UTF-32, which docs/api.md refuses as a body that
    is not UTF-8 text (400, `bad-request`)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise NotUtf8() from None
    value, repeated = read_json(text)
    if repeated:
        message = f"the member name {json.dumps(repeated[0])} appears more than once in an object"
        raise json.JSONDecodeError(message, text, 0)
    if _SURROGATE_ESCAPE.search(text):
        name = _name_not_text(value)
        if name is not None:
            message = (
                f"the member name {json.dumps(name)} holds an unpaired surrogate: it is not "
                "Unicode text (RFC 8259 8.2)"
            )
            raise json.JSONDecodeError(message, text, 0)
    return value


#: `\uD800`-`\uDFFF` escaped: only such a body can hold a name that is not Unicode text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _name_not_text(value: Any) -> str | None:
    """The first member name, at any depth, with an unpaired surrogate (which a field's
    validation would report of the whole object, without naming it), else None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for name, member in item.items():
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    return str(name)
                stack.append(member)
        elif isinstance(item, list):
            stack.extend(item)
    return None


def loads_body(body: bytes) -> Any:
    """`loads_unique`, with every failure to parse a `json.JSONDecodeError`, except text
    that is not UTF-8 (`NotUtf8`, raised by `loads_unique`)."""
    try:
        return loads_unique(body)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer of more than 4300 digits (sys.int_info)
        doc = body.decode("utf-8", "replace")
        why = "a number has too many digits" if "digits" in str(exc) else "a value cannot be read"
        raise json.JSONDecodeError(why, doc, 0) from None


class UnsupportedEncoding(HTTPException):
    """A body under a content coding (`Content-Encoding: gzip`): 415, after the token check
    (`api.errors`), with `Accept-Encoding: identity` (RFC 9110 15.5.16). It was read as the
    coded bytes and answered 400 "not UTF-8 text", which sent the client looking for a
    character-set fault."""

    def __init__(self, coding: str) -> None:
        super().__init__(
            415,
            f"the request body is coded (Content-Encoding: {coding}); the ledger reads bodies "
            "only as they are (identity): send the JSON uncompressed",
            headers={"Accept-Encoding": "identity"},
        )


def _coding(request: Request) -> str | None:
    """The body's content coding when it is not `identity` (None: the body is as sent)."""
    codings = [
        c.strip().lower()
        for value in request.headers.getlist("Content-Encoding")
        for c in value.split(",")
        if c.strip()
    ]
    coded = [c for c in codings if c != "identity"]
    return ", ".join(coded) if coded else None


class _UniqueNamesRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            coding = _coding(self)
            if coding is not None:
                raise UnsupportedEncoding(coding)
            self._json = loads_body(await self.body())
        return self._json


class UniqueNamesRoute(APIRoute):
    """An `APIRoute` whose body is parsed with `loads_unique` (FastAPI's documented way to
    change how a route reads its request)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(_UniqueNamesRequest(request.scope, request.receive))

        return handle
