"""`ses_ledger.workers.HandoffServer`: a worker that is stopping still serves the connections
it was handed before the main process marked it stopping, whether its loop took them
already or they still wait in its socket pair; none is closed unanswered."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from uvicorn.config import Config

from ses_ledger.workers import HandoffServer


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


class Running:
    def __init__(self) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.parent_end = parent_end
        config = Config(app, lifespan="off", log_level="warning")
        self.server = HandoffServer(config, child_end)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))

    def _serve(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        asyncio.run(serve())

    def hand(self) -> socket.socket:
        """A client connection with its request sent, handed to the worker."""
        client = socket.create_connection(self.listener.getsockname())
        conn, _ = self.listener.accept()
        client.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        socket.send_fds(self.parent_end, [b"c"], [conn.fileno()])
        conn.close()  # the worker holds its own copy
        return client


def answer(client: socket.socket) -> bytes:
    client.settimeout(5)
    received = b""
    while chunk := client.recv(4096):
        received += chunk
        if b"served" in received:
            break
    return received


@pytest.fixture
def running() -> Iterator[Running]:
    running = Running()
    running.thread.start()
    deadline = time.monotonic() + 5
    while not running.server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield running
    running.server.should_exit = True
    running.thread.join(timeout=10)
    running.listener.close()


def test_a_connection_handed_as_the_worker_stops_is_served(running: Running) -> None:
    running.server.should_exit = True  # SIGTERM: the loop takes what comes meanwhile
    client = running.hand()
    assert answer(client).startswith(b"HTTP/1.1 200")
    running.thread.join(timeout=10)
    assert not running.thread.is_alive()


def test_a_connection_still_waiting_in_the_pair_at_shutdown_is_served(
    running: Running,
) -> None:
    assert running.loop is not None
    loop = running.loop
    done = threading.Event()

    def stop_taking() -> None:  # as if the worker's loop had not come round to it yet
        running.server._stop_taking(loop)
        done.set()

    loop.call_soon_threadsafe(stop_taking)
    assert done.wait(5)
    client = running.hand()
    time.sleep(0.2)  # nothing takes it while the worker runs on
    running.server.should_exit = True
    assert answer(client).startswith(b"HTTP/1.1 200")
    running.thread.join(timeout=10)
    assert not running.thread.is_alive()


def test_the_main_process_skips_a_worker_that_takes_nothing() -> None:
    """A hung worker's pair fills up: the send fails at once (it does not block the
    acceptor) and the connection goes to the next worker; a worker marked stopping is
    handed nothing."""
    from ses_ledger.workers import WorkerProcess, Workers

    config = Config(app, lifespan="off", log_level="warning")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        workers = Workers(config, listener)
        hung, well = WorkerProcess(config), WorkerProcess(config)
        workers.processes = [hung, well]
        # Fails here, rather than hanging below, if the main process's end ever blocks.
        assert not hung.handoff.getblocking()
        with socket.socket() as filler:
            sent = 0
            with pytest.raises(BlockingIOError):
                while True:  # what a worker that never reads would leave in its pair
                    socket.send_fds(hung.handoff, [b"c"], [filler.fileno()])
                    sent += 1
            assert sent > 0
            for _ in range(2):  # round robin: one turn would be the hung worker's
                workers._hand_off(filler)
            well._child_end.setblocking(False)
            for _ in range(2):  # one message per connection
                _data, fds, _flags, _addr = socket.recv_fds(well._child_end, 64, 16)
                assert len(fds) == 1
                socket.socket(fileno=fds[0]).close()
            workers._mark_stopping(well)
            workers._hand_off(filler)  # nobody left to take it: closed, not queued
            with pytest.raises(BlockingIOError):
                socket.recv_fds(well._child_end, 64, 16)
        for worker in (hung, well):
            worker.close_handoff()
            worker._child_end.close()


def test_a_stopping_server_refuses_new_connections_at_once() -> None:
    """SIGTERM to `serve --workers N` (`docker compose stop`): from then on a new connection
    is refused, as by `--workers 1`, not accepted by the kernel into the backlog of a socket
    nobody accepts from any more and reset, request unread, once the workers have finished
    (found under load: every keep-alive client that reconnected during the shutdown got
    'connection reset by peer' for a POST it could not tell was not received)."""
    from ses_ledger.workers import Workers

    config = Config(app, lifespan="off", log_level="warning")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        workers = Workers(config, listener)
        workers.processes = []
        workers.should_exit.set()
        workers.terminate_all()  # the start of the shutdown: workers not yet joined
        with pytest.raises(ConnectionRefusedError), socket.socket() as client:
            client.settimeout(5)
            client.connect(("127.0.0.1", port))
