"""`api.http_head.BoundedHeadProtocol`, in-process (its timers short): a request
that is sent slowly but steadily, or answered slowly, is served; one whose head or body
stops coming is 408; a keep-alive connection's next request has its own time; bytes that
do not parse after a request are answered 400 after that request's own answer."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from api import http_head


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 with the request's body, after `?sleep` seconds."""
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["query_string"].startswith(b"sleep="):
        await asyncio.sleep(float(scope["query_string"][6:]))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(http_head, "HEAD_TIMEOUT_SECONDS", 0.6)
    monkeypatch.setattr(http_head, "BODY_IDLE_SECONDS", 0.6)
    config = uvicorn.Config(
        _echo,
        http=http_head.BoundedHeadProtocol,
        lifespan="off",
        log_level="error",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _read(conn: socket.socket) -> bytes:
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    return answer


def _post(body: bytes, target: str = "/") -> bytes:
    head = f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n"


def test_a_body_sent_steadily_for_longer_than_the_timeouts_is_served(port: int) -> None:
    body = b"0123456789"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(_post(body))
        for byte in body:  # 10 pauses of 0.2 s: 2 s in all, each pause within 0.6 s
            time.sleep(0.2)
            conn.sendall(bytes([byte]))
        answer = _read(conn)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert answer.endswith(b"\r\n" + body + b"\r\n0\r\n\r\n")  # chunked


def test_a_slow_answer_is_not_cut_off(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(_post(b"x", "/?sleep=1.5") + b"x")
        assert _read(conn).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    "sent",
    [b"POST / HTT", b"POST / HTTP/1.1\r\nHost: x\r\n", _post(b"12345") + b"12"],
    ids=["request-line", "head", "body"],
)
def test_a_request_that_stops_coming_is_408(port: int, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(sent)
        started = time.monotonic()
        answer = _read(conn)
    assert 0.5 < time.monotonic() - started < 3
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in head.lower()
    problem = json.loads(body)
    assert problem["type"] == "urn:ses-ledger:problem:request-timeout"
    assert problem["status"] == 408


def test_a_head_sent_too_slowly_is_408_though_it_never_pauses_long(port: int) -> None:
    """The head's time runs from its first byte: a byte every 0.2 s does not keep it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        started = time.monotonic()
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            if select.select([conn], [], [], 0.2)[0]:  # answered: send no more
                break
            conn.sendall(bytes([byte]))
        answer = _read(conn)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() - started < 3


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        started = time.monotonic()
        assert _read(conn) == b""
    assert 0.5 < time.monotonic() - started < 3


def test_the_next_request_on_a_keep_alive_connection_has_its_own_time(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"0\r\n\r\n"):  # the whole answer (chunked)
            answer += conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")
        time.sleep(1.0)  # idle longer than the head's time: uvicorn's keep-alive (30 s) holds
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read(conn).startswith(b"HTTP/1.1 200 ")


def test_bytes_after_a_body_that_do_not_parse_are_refused_after_its_answer(port: int) -> None:
    """A body longer than its Content-Length: the rest is no request (400), but the request
    before it is answered first. uvicorn answered the rest at once and closed, and the
    request's own answer (a write's 201) never reached its client, who read 400."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST /?sleep=0.3 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcJUNK")
        answer = _read(conn)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    _, _, rest = answer.partition(b"\r\n3\r\nabc\r\n0\r\n\r\n")
    assert rest.startswith(b"HTTP/1.1 400 "), answer


def test_a_head_over_the_bound_after_a_request_is_refused_after_its_answer(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /?sleep=0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40_000 + b"\r\n\r\n")
        answer = _read(conn)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert b"\r\n\r\nHTTP/1.1 431 " in answer, answer
