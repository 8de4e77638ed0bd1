"""Bounds on a request's head (its target and header fields) and on the time a request
takes to arrive, and the order of answers that close a connection, for `serve`.

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

Nor does uvicorn time a request out while it arrives: a connection that sent nothing, half
a request line, half a head or half a body was held for good, and enough of them (one per
file descriptor the server may open) left every other client unserved (reset) until they
closed. Here a head must arrive within `HEAD_TIMEOUT_SECONDS` of its first byte (a new
connection's: of its opening) and a body may not pause for `BODY_IDLE_SECONDS`; else 408
`request-timeout`, and the connection is closed (without an answer when nothing was sent).

Bytes after a request that do not parse (a body longer than its `Content-Length`) were
answered 400 at once by uvicorn, which then closed the connection: the request before them
was still being answered, and its answer never went out (a write recorded, its client told
400). Every answer that closes the connection here (400, 408, 414, 431) waits for the
answers to the requests before it.

`ses-ledger serve` gives uvicorn this protocol by name (`PROTOCOL`, in every worker); it is
the one uvicorn's `auto` would choose (httptools comes with `uvicorn[standard]`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The longest request target, and target and header fields together (names and values).
MAX_HEAD_BYTES = 32 * 1024

#: Bytes on the wire after which a head still incomplete is refused: more than any head of
#: `MAX_HEAD_BYTES` can take (at most 4 bytes on the wire per byte of name, "a:" CRLF, and
#: the request line's method, spaces and version).
_INCOMPLETE_HEAD_BYTES = 4 * MAX_HEAD_BYTES + 1024

#: How long a request's head may take from its first byte (a new connection's, from its
#: opening), and how long its body may pause between two reads.
HEAD_TIMEOUT_SECONDS = 20.0
BODY_IDLE_SECONDS = 20.0

#: uvicorn's `Config(http=...)`, by name: workers load it themselves.
PROTOCOL = "api.http_head:BoundedHeadProtocol"

log = logging.getLogger("uvicorn.error")


def refusal(status: int) -> bytes:
    """The whole HTTP/1.1 answer to a head over the bound (414, 431) or to a request not
    sent in time (408), as problem+json."""
    if status == 408:
        slug, title, reason = "request-timeout", "Request timeout", "Request Timeout"
        detail = (
            f"the request was not sent in time: its head must arrive within "
            f"{HEAD_TIMEOUT_SECONDS:g} s of its first byte, and its body without a pause of "
            f"{BODY_IDLE_SECONDS:g} s"
        )
    elif status == 414:
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
    _body_open = False
    _timer: asyncio.TimerHandle | None = None
    #: An answer that closes the connection, written once the answers before it are.
    _deferred: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEAD_TIMEOUT_SECONDS)  # a connection that sends nothing is not kept

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return
        # Bytes of a head begun before (all of `data`), or of one that may begin in it
        # (the rest of a body may come first: not subtracted, which can only refuse sooner
        # a head that is anyway within a few body bytes of the bound).
        self._head_wire = self._head_wire + len(data) if self._head_open else len(data)
        super().data_received(data)
        if self._body_open and self._refused is None:
            self._arm(BODY_IDLE_SECONDS)  # counted from the last read
        if self._refused is None and self._head_open:
            if len(self.url) > MAX_HEAD_BYTES:
                self._refuse(414)
            elif self._head_wire > _INCOMPLETE_HEAD_BYTES:
                self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_size = 0
        if self._timer is None:  # a keep-alive connection's next request: from its first byte
            self._arm(HEAD_TIMEOUT_SECONDS)

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
        self._body_open = True
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_open = False
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refused is not None:  # the parser stopped at `_HeadTooLarge`
            self._refuse(self._refused)
        elif self._answer_pending():
            # Bytes after a request still being answered that do not parse (a body longer
            # than its Content-Length): uvicorn wrote its 400 at once and closed, and the
            # answer to the request before them was lost, a write recorded while its client
            # read 400. That answer first, then the 400 and the close.
            self._deferred = lambda: HttpToolsProtocol.send_400_response(self, msg)
        else:
            super().send_400_response(msg)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._deferred is not None and not self._answer_pending():
            answer, self._deferred = self._deferred, None
            if not self.transport.is_closing():
                self._unset_keepalive_if_required()
                answer()

    def _answer_pending(self) -> bool:
        """Whether a request read on this connection is still being answered."""
        cycle = getattr(self, "cycle", None)
        return bool(self.pipeline) or (cycle is not None and not cycle.response_complete)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        """The head or the body did not arrive in time: 408 (after the answer to the
        request before it, if one is under way); a new connection that sent nothing is
        closed without a word. A body still coming after its own answer began (a route
        that reads none) is given until that answer ends, then the connection is closed."""
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = getattr(self, "cycle", None)
        if self._head_open:
            self._refuse(408)
        elif self._body_open and cycle is not None and not cycle.response_started:
            self._refuse(408, after_pending=False)  # the pending answer is this request's
        elif self._body_open and cycle is not None and not cycle.response_complete:
            self._arm(BODY_IDLE_SECONDS)
        else:
            self.transport.close()

    def _refuse(self, status: int, after_pending: bool = True) -> None:
        """Answer `status` and close: a head's refusal after the answers to the requests
        before it (`after_pending`), a body's as its own request's answer."""
        self._refused = status
        self._head_open = self._body_open = False
        self._disarm()
        if self.transport.is_closing():
            return
        if status == 408:
            log.warning("a request not sent in time was refused (408)")
        else:
            log.warning("a request head over %d bytes was refused (%d)", MAX_HEAD_BYTES, status)
        if after_pending and self._answer_pending():  # the requests before it first
            self.flow.pause_reading()
            self._deferred = lambda: self._write_and_close(refusal(status))
        else:
            self._write_and_close(refusal(status))

    def _write_and_close(self, answer: bytes) -> None:
        self.transport.write(answer)
        self.transport.close()
