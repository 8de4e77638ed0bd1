"""The request head (target and header fields) is bounded (`api/http_head.py`).

uvicorn's httptools protocol read a head of any size: a 50 MB header field was answered
200, a 200 MB one held the worker's event loop for 38 s (httptools copies the whole field
value again for each piece that arrives), `/healthz` on another connection waited 17 s,
and the worker's peak memory grew by 380 MB. Now a target over 32 KiB is 414
`uri-too-long`, a target and header fields over 32 KiB together 431
`header-fields-too-large`, problem+json, at once, and nothing else waits.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.http_head import BODY_IDLE_SECONDS, HEAD_TIMEOUT_SECONDS, MAX_HEAD_BYTES
from tests.api import story
from tests.api.server import Server, cli, keyed_env

pytestmark = pytest.mark.slow

#: The bytes of names and values of the fields `_head` always sends, and of its target.
_FIXED = len("/healthz") + len("host") + len("x") + len("connection") + len("close") + len("x-pad")


def _head(target: str = "/healthz", pad: int = 0) -> bytes:
    """A GET of `target` whose target and fields (names and values) hold `_FIXED - 8 +
    len(target) + pad` bytes (an `X-Pad` field of `pad` bytes)."""
    head = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: {'a' * pad}\r\n\r\n"
    return head.encode()


def _send(port: int, data: bytes, pieces: int = 1, timeout: float = 20) -> tuple[int, bytes]:
    """Send `data` in `pieces` and read the answer until the server closes: its status and
    body (a server that closes while a piece is still being sent has answered already)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        step = max(1, -(-len(data) // pieces))
        try:
            for start in range(0, len(data), step):
                conn.sendall(data[start : start + step])
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), answer[:200]
    return int(head.split()[1]), body


def _problem(body: bytes, status: int, slug: str) -> None:
    problem = json.loads(body)
    assert problem["type"] == f"urn:ses-ledger:problem:{slug}"
    assert problem["status"] == status
    assert str(MAX_HEAD_BYTES) in problem["detail"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(keyed_env(tmp_path_factory.mktemp("head"))) as running:
        yield running


@pytest.mark.parametrize("pieces", [1, 40])
def test_a_head_at_the_bound_is_served_and_one_byte_more_is_431(
    server: Server, pieces: int
) -> None:
    at_bound = MAX_HEAD_BYTES - _FIXED
    assert _send(server.port, _head(pad=at_bound), pieces)[0] == 200
    status, body = _send(server.port, _head(pad=at_bound + 1), pieces)
    assert status == 431
    _problem(body, 431, "header-fields-too-large")


def test_a_target_over_the_bound_is_414(server: Server) -> None:
    status, body = _send(server.port, _head("/healthz?" + "a" * MAX_HEAD_BYTES))
    assert status == 414
    _problem(body, 414, "uri-too-long")


def test_many_small_fields_over_the_bound_are_431(server: Server) -> None:
    fields = b"".join(b"x-%d: 1\r\n" % i for i in range(MAX_HEAD_BYTES // 4))
    status, body = _send(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert status == 431
    _problem(body, 431, "header-fields-too-large")


def test_a_huge_header_field_is_refused_at_once_and_holds_up_no_one(server: Server) -> None:
    """50 MB of one field value, sent in pieces: refused after the first of them; another
    client is served meanwhile, as quickly as ever."""
    huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 50_000_000 + b"\r\n\r\n"
    answered: list[tuple[int, float]] = []

    def hostile() -> None:
        started = time.monotonic()
        status, _ = _send(server.port, huge, pieces=2000)
        answered.append((status, time.monotonic() - started))

    thread = threading.Thread(target=hostile)
    thread.start()
    slowest = 0.0
    while thread.is_alive():
        started = time.monotonic()
        assert _send(server.port, _head())[0] == 200
        slowest = max(slowest, time.monotonic() - started)
    thread.join()
    [(status, took)] = answered
    assert status == 431
    assert took < 5, took
    assert slowest < 1, slowest


def test_a_second_request_on_a_connection_is_bounded_too(server: Server) -> None:
    """A keep-alive connection: the first request is served, the next head over the bound
    refused (the bound is per request, not per connection)."""
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    second = _head(pad=MAX_HEAD_BYTES)
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as conn:
        conn.sendall(first)
        answer = b""
        while not answer.endswith(b'{"status":"ok"}'):
            answer += conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        conn.sendall(second)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_every_worker_bounds_the_head(tmp_path: Path) -> None:
    """`--workers 2`: the workers serve connections handed to them, with the same bound."""
    with Server(keyed_env(tmp_path), "--workers", "2") as server:
        for _ in range(4):  # handed to each worker in turn
            assert _send(server.port, _head(pad=MAX_HEAD_BYTES))[0] == 431
            assert _send(server.port, _head())[0] == 200


def test_requests_not_sent_in_time_are_408_and_their_connections_closed(server: Server) -> None:
    """A client that opens connections and sends nothing, half a request line, half a head
    or half a body held each connection for good (until the server's file descriptors ran
    out: then no one was served). Each is now answered 408 (nothing to answer: closed)
    within `HEAD_TIMEOUT_SECONDS` (or `BODY_IDLE_SECONDS`) and closed."""
    sent = {
        "nothing": b"",
        "half a line": b"GET /heal",
        "half a head": b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        "half a body": b"POST /v1/executives HTTP/1.1\r\nHost: x\r\nContent-Type: "
        b'application/json\r\nContent-Length: 300\r\n\r\n{"executive_id": ',
    }
    connections = {}
    for name, data in sent.items():
        connections[name] = socket.create_connection(("127.0.0.1", server.port), timeout=40)
        connections[name].sendall(data)
    started = time.monotonic()
    answers = {}
    for name, conn in connections.items():
        with conn:
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
            answers[name] = answer
    took = time.monotonic() - started
    assert took < max(HEAD_TIMEOUT_SECONDS, BODY_IDLE_SECONDS) + 5, took
    assert answers.pop("nothing") == b""
    for name, answer in answers.items():
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), (name, answer[:200])
        assert json.loads(body)["type"] == "urn:ses-ledger:problem:request-timeout", name
    assert _send(server.port, _head())[0] == 200


def test_a_write_followed_by_bytes_that_are_no_request_is_answered_201(tmp_path: Path) -> None:
    """A body longer than its Content-Length: the executive was registered, and its client
    read `400 Invalid HTTP request received.` (uvicorn answered the rest at once and closed
    the connection before the 201 was sent). Now the 201 comes first, then the 400."""
    env = keyed_env(tmp_path)
    token = cli(env, "token", "issue", "--subject", "hr-1", "--role", "hr_app", "--agency", "DOE")
    body = json.dumps(story.executive("E1")).encode()
    head = (
        f"POST /v1/executives HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token.stdout.strip()}"
        f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with Server(env) as server, socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.sendall(head.encode() + body + b"XYZ")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]
    assert b"}HTTP/1.1 400 " in answer, answer[-300:]


@pytest.mark.parametrize(
    ("coding", "status", "slug"),
    [("identity", 400, "bad-request"), ("gzip", 400, "bad-request")]
    + [("gzip, chunked", 501, "not-implemented")],
)
def test_a_transfer_encoding_other_than_chunked_is_refused_at_once(
    server: Server, coding: str, status: int, slug: str
) -> None:
    """RFC 9112 6.1 and 6.3. A body after `Transfer-Encoding: identity` was read until the
    client closed: the client that waited for its answer got one only from the body's timer
    (20 s). One after `gzip, chunked` went to its route still gzipped."""
    head = (
        "POST /v1/executives HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: {coding}\r\n\r\n"
    )
    body = b"2\r\n{}\r\n0\r\n\r\n" if coding.endswith("chunked") else b"{}"
    started = time.monotonic()
    answered, problem = _send(server.port, head.encode() + body)
    assert time.monotonic() - started < 5
    assert answered == status
    assert json.loads(problem)["type"] == f"urn:ses-ledger:problem:{slug}"
