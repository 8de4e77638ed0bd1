"""A bound on the size of a request's head (its target and header fields), for `serve`.

uvicorn's httptools protocol sets none: a 50 MB header field was read whole and answered
200, a 200 MB one held the worker's event loop for 38 s of CPU (httptools joins the pieces
of a field value as they arrive, one copy of the whole value per piece), every other
client of the worker waiting meanwhile (`/healthz` 17 s), the worker's peak memory 460 MB,
and several such connections at once had no bound at all. With this protocol a request
whose target is longer than `MAX_HEAD_BYTES` is answered 414 `uri-too-long`, and one
whose target and header fields (names and values) together are longer, 431
`header-fields-too-large`: problem+json (docs/api.md, Errors), the connection closed. A
head still incomplete after `_INCOMPLETE_HEAD_BYTES` bytes on the wire is refused as it
arrives, with the same answer (no head within the bound takes as many, white space padded
around values aside: each field adds at most 3 bytes of framing to a name of at least one
byte).

`ses-ledger serve` gives uvicorn this protocol by name (`PROTOCOL`, in every worker); it is
the one uvicorn's `auto` would choose (httptools comes with `uvicorn[standard]`).
"""

from __future__ import annotations

import json
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The longest request target, and target and header fields together (names and values).
MAX_HEAD_BYTES = 32 * 1024

#: Bytes on the wire after which a head still incomplete is refused: more than any head of
#: `MAX_HEAD_BYTES` can take (at most 4 bytes on the wire per byte of name, "a:" CRLF, and
#: the request line's method, spaces and version).
_INCOMPLETE_HEAD_BYTES = 4 * MAX_HEAD_BYTES + 1024

#: uvicorn's `Config(http=...)`, by name: workers load it themselves.
PROTOCOL = "api.http_head:BoundedHeadProtocol"

log = logging.getLogger("uvicorn.error")


def refusal(status: int) -> bytes:
    """The whole HTTP/1.1 answer to a head over the bound: 414 or 431, problem+json."""
    if status == 414:
        slug, title, reason = "uri-too-long", "URI too long", "URI Too Long"
        detail = f"the request target is limited to {MAX_HEAD_BYTES} bytes"
    else:
        slug, title = "header-fields-too-large", "Request header fields too large"
        reason = "Request Header Fields Too Large"
        detail = (
            f"the request target and header fields (names and values) are limited to "
            f"{MAX_HEAD_BYTES} bytes together"
        )
    body = json.dumps(
        {
            "type": f"urn:ses-ledger:problem:{slug}",
            "title": title,
            "status": status,
            "detail": detail,
        },
        separators=(",", ":"),
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _HeadTooLarge(Exception):
    """Raised from the parser's callback to stop it; answered in `send_400_response`."""


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a head over `MAX_HEAD_BYTES`."""

    _head_open = False
    _head_wire = 0
    _head_size = 0
    _refused: int | None = None

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return
        # Bytes of a head begun before (all of `data`), or of one that may begin in it
        # (the rest of a body may come first: not subtracted, which can only refuse sooner
        # a head that is anyway within a few body bytes of the bound).
        self._head_wire = self._head_wire + len(data) if self._head_open else len(data)
        super().data_received(data)
        if self._refused is None and self._head_open:
            if len(self.url) > MAX_HEAD_BYTES:
                self._refuse(414)
            elif self._head_wire > _INCOMPLETE_HEAD_BYTES:
                self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_HEAD_BYTES:
            self._refused = 414
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        if len(self.url) + self._head_size > MAX_HEAD_BYTES:
            self._refused = 431
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refused is None:
            super().send_400_response(msg)
        else:  # the parser stopped at `_HeadTooLarge` (uvicorn has logged an invalid request)
            self._refuse(self._refused)

    def _refuse(self, status: int) -> None:
        self._refused = status
        self._head_open = False
        if not self.transport.is_closing():
            log.warning("a request head over %d bytes was refused (%d)", MAX_HEAD_BYTES, status)
            self.transport.write(refusal(status))
            self.transport.close()
