"""The benchmark's HTTP/1.1 client (`bench/http1.py`) against a scripted server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.http1 import Connection, ProtocolError  # noqa: E402

Script = Callable[[bytes, int], list[bytes] | None]


async def _serve(script: Script) -> tuple[asyncio.Server, str, list[bytes]]:
    """A server that answers request number n (per connection) with `script(request, n)`:
    chunks written one by one (None: close the connection without answering)."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + (await reader.readexactly(length) if length else b"")
                seen.append(request)
                answer = script(request, n)
                n += 1
                if answer is None:
                    break
                for chunk in answer:
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(0)
                if b"Connection: close" in answer[0]:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", seen


def _run(script: Script, body: Callable[[str, list[bytes]], object]) -> None:
    async def main() -> None:
        server, url, seen = await _serve(script)
        async with server:
            await body(url, seen)  # type: ignore[misc]

    asyncio.run(main())


def test_content_length_keep_alive_and_split_reads() -> None:
    def script(_: bytes, n: int) -> list[bytes]:
        body = f'{{"n":{n}}}'.encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nServer-Timing: app;dur=1\r\n\r\n"
        raw = head.encode() + body
        return [raw[:5], raw[5:40], raw[40:]]  # arrives in pieces

    async def body(url: str, seen: list[bytes]) -> None:
        conn = await Connection.open(url)
        for n in range(3):
            r = await conn.request("POST", "/x", {"A": "b"}, b'{"k":1}')
            assert (r.status, r.body) == (200, f'{{"n":{n}}}'.encode())
            assert r.headers["server-timing"] == "app;dur=1"
        conn.close()
        assert len(seen) == 3  # one connection, three requests
        assert b"Content-Length: 7\r\n" in seen[0] and seen[0].endswith(b'{"k":1}')

    _run(script, body)


def test_chunked_with_extensions_and_trailers() -> None:
    def script(_: bytes, n: int) -> list[bytes]:
        trailer = b"X-T: 1\r\n" if n else b""
        return [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"5;ext=1\r\nhello\r\n",
            b"6\r\n world\r\n0\r\n",
            trailer + b"\r\n",
        ]

    async def body(url: str, _: list[bytes]) -> None:
        conn = await Connection.open(url)
        assert (await conn.request("GET", "/")).body == b"hello world"
        assert (await conn.request("GET", "/")).body == b"hello world"
        conn.close()

    _run(script, body)


def test_no_body_statuses_and_close_delimited_body() -> None:
    def script(_: bytes, n: int) -> list[bytes] | None:
        if n == 0:
            return [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"]
        return [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil ", b"close"]

    async def body(url: str, _: list[bytes]) -> None:
        conn = await Connection.open(url)
        r = await conn.request("GET", "/")
        assert (r.status, r.body) == (204, b"")
        # no framing: the body runs until the server closes (as it says it will)
        r = await conn.request("GET", "/")
        assert (r.status, r.body) == (200, b"until close")
        conn.close()

    _run(script, body)


def test_reopens_a_connection_the_server_closed_while_idle() -> None:
    def script(_: bytes, n: int) -> list[bytes] | None:
        return [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"]

    async def body(url: str, seen: list[bytes]) -> None:
        conn = await Connection.open(url)
        for _ in range(3):
            assert (await conn.request("GET", "/")).body == b"ok"
        conn.close()
        assert len(seen) == 3

    _run(script, body)


def test_resends_once_when_a_kept_connection_was_dropped_unanswered() -> None:
    answered: list[int] = []

    def script(_: bytes, n: int) -> list[bytes] | None:
        if n == 1:
            return None  # drop the second request on this connection without a byte
        answered.append(n)
        return [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]

    async def body(url: str, seen: list[bytes]) -> None:
        conn = await Connection.open(url)
        assert (await conn.request("GET", "/")).body == b"ok"
        assert (await conn.request("GET", "/")).body == b"ok"  # sent again on a new one
        conn.close()
        assert len(seen) == 3

    _run(script, body)


def test_garbage_is_an_error() -> None:
    def script(_: bytes, n: int) -> list[bytes]:
        return [b"SMTP ready\r\n\r\n"]

    async def body(url: str, _: list[bytes]) -> None:
        conn = await Connection.open(url)
        with pytest.raises(ProtocolError):
            await conn.request("GET", "/")
        conn.close()

    _run(script, body)
