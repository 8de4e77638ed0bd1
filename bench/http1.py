"""A minimal HTTP/1.1 keep-alive client for the load generator (`bench/api.py`).

Why not httpx: the load generator shares the benchmark machine's two vCPUs with the server,
and httpx (with httpcore and h11 underneath) spends about 1 ms of CPU per request, as much
as the server spends on many requests, so it takes CPU from the server it measures. This
client spends a small fraction of that (see `bench/api_cpu.py`): one connection per
simulated client, requests sent one at a time on it (no pipelining), the response parsed
in an `asyncio.Protocol` straight from the bytes received.

What it handles: a status line and headers, a body framed by `Content-Length` or by
`Transfer-Encoding: chunked` (trailers skipped), or with neither until the server closes
(HTTP/1.1 semantics for responses without framing), no body for 1xx/204/304 or HEAD;
`Connection: close` from the server. A connection the server closed while idle (keep-alive
timeout) is reopened, and a request that the server never started answering on a
connection it had closed is sent again once on a new one (safe here: the benchmark's writes
carry an `Idempotency-Key`). No TLS, proxies, redirects, cookies or compression: the
benchmark talks to `ses-ledger serve` on loopback.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response this client understands."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)

    @property
    def status_code(self) -> int:
        return self.status

    @property
    def text(self) -> str:
        return self.body.decode()


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.head_request = False
        self.closed = False
        self.received_any = False
        # parse state of the current response
        self._head: tuple[int, dict[str, str]] | None = None
        self._length: int | None = None  # Content-Length, or None
        self._chunked = False
        self._until_close = False
        self._chunks: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        self.buffer += data
        try:
            self._parse()
        except ProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._until_close and self._head is not None:
            self._finish(bytes(self.buffer))
            return
        self._fail(ConnectionResetError("the server closed the connection"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> None:
        buf = self.buffer
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise ProtocolError(f"bad status line {lines[0]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    raise ProtocolError(f"bad header line {line!r}")
                name = name.strip().lower()
                value = value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            if 100 <= status < 200:  # interim response: the real one follows
                return self._parse()
            self._head = (status, headers)
            self._length, self._chunked, self._until_close = None, False, False
            if self.head_request or status in (204, 304):
                self._length = 0
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                self._chunked = True
                self._chunks = []
            elif "content-length" in headers:
                text = headers["content-length"]
                if not text.isdigit():
                    raise ProtocolError(f"bad Content-Length {text!r}")
                self._length = int(text)
            else:
                self._until_close = True
        if self._length is not None:
            if len(buf) < self._length:
                return
            body = bytes(buf[: self._length])
            del buf[: self._length]
            self._finish(body)
        elif self._chunked:
            while True:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size_text!r}") from None
                if size == 0:
                    # last chunk, then optional trailers, then an empty line
                    trailer_end = buf.find(b"\r\n\r\n", end)
                    if trailer_end == end:  # no trailers: "0\r\n\r\n"
                        del buf[: end + 4]
                    elif trailer_end < 0:
                        return
                    else:
                        del buf[: trailer_end + 4]
                    self._finish(b"".join(self._chunks))
                    return
                if len(buf) < end + 2 + size + 2:
                    return
                self._chunks.append(bytes(buf[end + 2 : end + 2 + size]))
                if buf[end + 2 + size : end + 4 + size] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                del buf[: end + 4 + size]

    def _finish(self, body: bytes) -> None:
        assert self._head is not None
        status, headers = self._head
        self._head = None
        self._length, self._chunked = None, False
        if self._until_close or "close" in headers.get("connection", "").lower():
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        self._until_close = False
        if self.buffer and not self.closed:
            self._fail(ProtocolError("bytes after the response that nobody asked for"))
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(Response(status, headers, body))


class Connection:
    """One keep-alive connection to `url`'s host; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.host_header = f"Host: {host}:{port}\r\n".encode("latin-1")
        self._protocol: _Protocol | None = None

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http://host[:port] URLs, not {url!r}")
        conn = cls(parts.hostname, parts.port or 80)
        await conn._connect()
        return conn

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
        self._protocol = protocol
        return protocol

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Response:
        """Send one request and wait for its whole response."""
        head = [f"{method} {path} HTTP/1.1\r\n".encode("latin-1"), self.host_header]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        if body is not None:
            head.append(f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n".encode())
        head.append(b"\r\n")
        if body:
            head.append(body)
        data = b"".join(head)
        for attempt in (1, 2):
            protocol = self._protocol
            if protocol is None or protocol.closed:
                protocol = await self._connect()
            loop = asyncio.get_running_loop()
            protocol.waiter = waiter = loop.create_future()
            protocol.head_request = method == "HEAD"
            protocol.received_any = False
            assert protocol.transport is not None
            protocol.transport.write(data)
            try:
                return await waiter
            except ConnectionResetError:
                # the server closed a connection it thought idle before reading this one
                if attempt == 2 or protocol.received_any:
                    raise
            finally:
                protocol.waiter = None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
