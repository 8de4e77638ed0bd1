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

A request whose Transfer-Encoding does not end in chunked (`identity`, `gzip`) was read
until the client closed, and answered 408 by the body's timer; one with a coding before
chunked (`gzip, chunked`) reached its route still coded. RFC 9112 (6.1, 6.3): 400 and
501 now, problem+json, the connection closed. A body that does not parse (a bad chunk
size) is answered 400 at once, not held back behind its own request's answer until 408.
A client that half-closes after its requests (`shutdown(SHUT_WR)`) is answered before
the connection is closed (uvicorn closed at once), and a body the server stops reading
(queued behind an answer still being written) is not timed while it is not read: its
408 cut that answer off.

`ses-ledger serve` gives uvicorn this protocol by name (`PROTOCOL`, in every worker); it is
the one uvicorn's `auto` would choose (httptools comes with `uvicorn[standard]`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

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


def refusal(status: int, default_headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """The whole HTTP/1.1 answer to a head over the bound (414, 431), to a request not
    sent in time (408) or to one whose Transfer-Encoding is not chunked alone (400, 501),
    as problem+json, with uvicorn's `default_headers` (`date`, which RFC 9110 6.6.1 asks
    of every 4xx, and `server`) as every other answer has them."""
    if status == 408:
        slug, title, reason = "request-timeout", "Request timeout", "Request Timeout"
        detail = (
            f"the request was not sent in time: its head must arrive within "
            f"{HEAD_TIMEOUT_SECONDS:g} s of its first byte, and its body without a pause of "
            f"{BODY_IDLE_SECONDS:g} s"
        )
    elif status == 400:
        slug, title, reason = "bad-request", "Bad request", "Bad Request"
        detail = (
            "the request's Transfer-Encoding does not end in chunked, so where its body ends "
            "cannot be known (RFC 9112, 6.3): send the body with Content-Length, or chunked"
        )
    elif status == 501:
        slug, title, reason = "not-implemented", "Not implemented", "Not Implemented"
        detail = (
            "the request's Transfer-Encoding names a coding this server does not decode: "
            "chunked is the only one (RFC 9112, 6.1); a body is read only as sent"
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
    fields = b"".join(name + b": " + value + b"\r\n" for name, value in default_headers or ())
    head = (
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return f"HTTP/1.1 {status} {reason}\r\n".encode() + fields + head.encode() + body


class _HeadTooLarge(Exception):
    """Raised from the parser's callback to stop it; answered in `send_400_response`."""


def transfer_coding_refusal(headers: list[tuple[bytes, bytes]]) -> int | None:
    """400 for a Transfer-Encoding whose final coding is not chunked (the body's end cannot
    be known), 501 for one that names another coding before chunked (it cannot be decoded),
    None for none or chunked alone. llhttp read a body after `identity` or `gzip` until the
    client closed (answered, by the timer, 408), and passed one after `gzip, chunked` to
    the route still gzipped."""
    codings = [
        coding.split(b";")[0].strip(b" \t").lower()
        for name, value in headers
        if name == b"transfer-encoding"
        for coding in value.split(b",")
    ]
    codings = [coding for coding in codings if coding]  # empty list elements (RFC 9110 5.6.1)
    if not codings or codings == [b"chunked"]:
        return None
    return 400 if codings[-1] != b"chunked" else 501


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a head over `MAX_HEAD_BYTES`."""

    _head_open = False
    _head_wire = 0
    #: In the read being parsed: whether a head began in it, and the fewest bytes of it that
    #: the heads and bodies before it took.
    _begun = False
    _before_head = 0
    _chunked = False
    _head_size = 0
    _refused: int | None = None
    _body_open = False
    _timer: asyncio.TimerHandle | None = None
    #: An answer that closes the connection, written once the answers before it are.
    _deferred: Callable[[], None] | None = None
    #: The client has half-closed: close once the requests it sent are answered.
    _eof = False
    #: The request being answered (`cycle` is the newest one read, maybe queued behind it).
    _running: RequestResponseCycle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEAD_TIMEOUT_SECONDS)  # a connection that sends nothing is not kept

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        running = self._running
        if running is not None and not running.response_complete and running is not self.cycle:
            # uvicorn tells only the newest request's route: one answering while a request
            # was queued behind it wrote to a closed transport (a logged traceback)
            running.disconnected = True
            running.message_event.set()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return
        self._begun = False
        self._before_head = 0
        super().data_received(data)
        # Bytes of a head begun before (all of `data`), or of one begun in it (those after
        # the bodies and heads before it: a head was refused 431 when it came in one read
        # with the end of a large body pipelined before it).
        if self._begun:
            self._head_wire = len(data) - self._before_head
        else:
            self._head_wire += len(data)
        if self.transport.get_protocol() is not self:  # upgraded (a WebSocket): not ours now
            self._head_open = self._body_open = False
            self._disarm()
            return
        if self._body_open and self._refused is None:
            self._arm(BODY_IDLE_SECONDS)  # counted from the last read
        if self._refused is None and self._head_open:
            if len(self.url) > MAX_HEAD_BYTES:
                self._refuse(414)
            elif self._head_wire > _INCOMPLETE_HEAD_BYTES:
                self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
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

    def on_body(self, body: bytes) -> None:
        # at least the body and, chunked, a chunk's size line and two line ends
        self._before_head += len(body) + (5 if self._chunked else 0)
        super().on_body(body)

    def on_headers_complete(self) -> None:
        # at least the request line ("GET / HTTP/1.1" CRLF), each "name:value" CRLF and CRLF
        self._before_head += len(self.parser.get_method()) + len(self.url) + 12 + 2
        self._before_head += sum(len(name) + len(value) + 3 for name, value in self.headers)
        self._chunked = any(name == b"transfer-encoding" for name, _ in self.headers)
        self._head_open = False
        self._disarm()
        if (refused := transfer_coding_refusal(self.headers)) is not None:
            self._refused = refused
            raise _HeadTooLarge
        super().on_headers_complete()
        self._body_open = True  # after: a request refused in it has no body of its own

    def on_message_complete(self) -> None:
        self._body_open = False
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refused is not None:  # the parser stopped at `_HeadTooLarge`
            self._refuse(self._refused)
            return
        if self._body_open:
            # The request whose body does not parse (a bad chunk size) is the one being
            # read: it will not be served. Its route, waiting for the rest, was left to the
            # body's timer (408 after 20 s, the 400 never sent).
            self._body_open = False
            self._disarm()
            self._abandon(self.cycle)
        self._refused = 400  # nothing more is read on this connection
        if self._answer_pending():
            # Bytes after a request still being answered that do not parse (a body longer
            # than its Content-Length): uvicorn wrote its 400 at once and closed, and the
            # answer to the request before them was lost, a write recorded while its client
            # read 400. That answer first, then the 400 and the close.
            self.flow.pause_reading()
            self._deferred = lambda: HttpToolsProtocol.send_400_response(self, msg)
        else:
            super().send_400_response(msg)

    def eof_received(self) -> bool | None:  # type: ignore[override]
        """The client has sent all it will (a half-close, `shutdown(SHUT_WR)`): the requests
        it sent whole are answered, then the connection is closed; one cut short is not.
        uvicorn closed at once, and a request still being answered was never answered."""
        self._eof = True
        self._head_open = False
        if self._body_open:
            self._body_open = False
            self._abandon(self.cycle)
        self._disarm()
        if self._answer_pending():
            return True  # kept open to write; closed in `on_response_complete`
        return None  # the transport closes itself

    def on_response_complete(self) -> None:
        paused = self.flow.read_paused
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if paused and not self.flow.read_paused and (self._head_open or self._body_open):
            # read again from now: the time reading was paused was not the client's
            self._arm(BODY_IDLE_SECONDS if self._body_open else HEAD_TIMEOUT_SECONDS)
        if self._answer_pending():
            return
        if self._deferred is not None:
            answer, self._deferred = self._deferred, None
            self._unset_keepalive_if_required()
            answer()
        elif self._eof:
            self.transport.close()

    def _abandon(self, cycle: RequestResponseCycle | None) -> None:
        """A request that will never arrive whole is not served: out of the queue, and its
        route (if it runs and has not begun its answer) told the client is gone. An answer
        already begun is written to its end."""
        if cycle is None or cycle.response_started:
            return
        self.pipeline = deque(entry for entry in self.pipeline if entry[0] is not cycle)
        cycle.disconnected = True
        cycle.message_event.set()

    def _answer_pending(self) -> bool:
        """Whether a request read on this connection is still being answered."""
        running = self._running
        return bool(self.pipeline) or (
            running is not None and not running.response_complete and not running.disconnected
        )

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        self._running = cycle  # `cycle` is the newest request's, maybe queued behind this
        super()._start_asgi_task(cycle, app)

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
        waiting = self._body_open and cycle is not None and cycle.waiting_for_100_continue
        if waiting or (self.flow.read_paused and (self._head_open or self._body_open)):
            # The server is not reading (a request queued behind one still being answered,
            # or a body the route has not yet read), or has not yet asked for the body the
            # client holds back until `100 Continue` (RFC 9110 10.1.1): its time is not the
            # client's. A body queued so was answered 408 when the answer before it took
            # 20 s, that answer cut off mid-way; one waiting for 100 was answered 408.
            self._arm(BODY_IDLE_SECONDS if self._body_open else HEAD_TIMEOUT_SECONDS)
        elif self._head_open:
            self._refuse(408)
        elif self._body_open and cycle is not None and not cycle.response_started:
            self._abandon(cycle)  # not served; answered after the requests before it
            self._refuse(408)
        elif self._body_open and cycle is not None and not cycle.response_complete:
            self._arm(BODY_IDLE_SECONDS)
        else:
            self.transport.close()

    def _refuse(self, status: int) -> None:
        """Answer `status` and close, after the answers to the requests before it."""
        self._refused = status
        self._head_open = self._body_open = False
        self._disarm()
        if self.transport.is_closing():
            return
        if status == 408:
            log.warning("a request not sent in time was refused (408)")
        elif status in (400, 501):
            log.warning("a request's Transfer-Encoding was refused (%d)", status)
        else:
            log.warning("a request head over %d bytes was refused (%d)", MAX_HEAD_BYTES, status)
        if self._answer_pending():  # the requests before it first
            self.flow.pause_reading()
            self._deferred = lambda: self._write_and_close(self._refusal(status))
        else:
            self._write_and_close(self._refusal(status))

    def _refusal(self, status: int) -> bytes:
        return refusal(status, self.server_state.default_headers)

    def _write_and_close(self, answer: bytes) -> None:
        self.transport.write(answer)
        self.transport.close()
