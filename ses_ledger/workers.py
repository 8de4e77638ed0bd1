"""`serve --workers N`: uvicorn's worker supervisor, the parent handing out connections.

uvicorn's supervisor binds one socket and every worker accepts from it. asyncio accepts
every waiting connection on each wake-up, so a burst of connections (an HR application's
connection pool opening, a load test) went to whichever worker woke first: the API
benchmark saw 32 keep-alive connections split 32/0 and 31/1. A listening socket per worker
(`SO_REUSEPORT`, the previous design) spread them by a hash of their addresses, which is
a coin toss per connection: 23/9 and 20/12 splits were common, and the busier worker, held
to one core by its GIL, then set the latency of every request (write p99 100-124 ms at
20/12 and 23/9 against 81-98 ms at 16/16 and 17/15 in the same session, bench/README.md).

Here the parent accepts and hands each connection to the workers in turn (round robin),
passing the socket over a Unix socket pair (`SCM_RIGHTS`); each worker serves what it is
handed with uvicorn's own protocol (`loop.connect_accepted_socket`). Keep-alive
connections opened together are thus split evenly, whenever they arrive. Hand-written
because uvicorn has no such option (0.54): `WorkerProcess` runs a `HandoffServer` and
`Workers` starts `WorkerProcess`es wherever uvicorn's `Multiprocess` starts its own (first
start, SIGTTIN, restart on SIGHUP, replacement of a dead worker); the rest (signals,
health pings, shutdown) is uvicorn's. A worker that is stopping is handed nothing more,
and serves what it was handed before (marking and handing take turns under one lock, and
a stopping worker first takes what waits in its pair). A dead or hung worker is skipped
once sending to it fails; the connections a dead one held or had not yet taken go with
it, as with any worker that dies. A second server on the same port fails at start (the
parent's bind), and port 0 picks one port for all. If the main process dies, its workers
finish the connections they hold and exit, instead of serving on as orphans.

A worker tells the main process that it serves by writing one byte into its pair once its
start-up is complete. A worker that dies without having written it failed before it served
(an app that cannot be built, a lifespan that fails): the server stops with status 3
instead of starting another worker that would fail the same way, again and again. uvicorn
only knows its own exit status 3 for that, and an exception in the app factory ends a
worker with status 1 and a traceback; here such a worker logs its reason in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
from typing import Any

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.server import Server
from uvicorn.supervisors.multiprocess import Multiprocess, Process

logger = logging.getLogger("uvicorn.error")

#: Connections a worker takes from its socket pair per wake-up of its event loop.
TAKE_AT_ONCE = 64

#: What a worker writes into its pair once it serves (`WorkerProcess.has_served`).
SERVING = b"s"


def one_line(exc: BaseException) -> str:
    """An exception as one log line (a pydantic `ValidationError` spans several)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _log_start_failure(who: str, exc: BaseException) -> None:
    """Why a server or worker failed before it served: one line, not a traceback each time
    (`--log-level debug` shows it); uvicorn has logged its own reason before a `SystemExit`."""
    if not isinstance(exc, SystemExit):
        from ledger.store_probe import privilege_hint

        logger.error("%s failed to start: %s%s", who, one_line(exc), privilege_hint(exc))
        logger.debug("%s failed to start", who, exc_info=exc)


def handoff_available() -> bool:
    """Passing sockets between processes (`SCM_RIGHTS`) is POSIX's; elsewhere uvicorn's
    shared socket is kept."""
    return os.name == "posix" and hasattr(socket, "send_fds")


def listen(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


class HandoffServer(Server):
    """uvicorn's server without a listening socket: it serves the connections that arrive
    on `handoff`, one file descriptor per message."""

    def __init__(self, config: Config, handoff: socket.socket) -> None:
        super().__init__(config)
        self.handoff = handoff
        self._create_protocol: Any = None
        #: Connections handed and not yet connected to a protocol.
        self._connecting: set[asyncio.Task[Any]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the app's lifespan; no listener of its own
        with contextlib.suppress(OSError):  # the main process is gone: noticed in `_take`
            self.handoff.send(SERVING)  # blocking, into a pair nothing was written to yet
        if self.should_exit:
            return
        config = self.config

        def create_protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
            )

        loop = asyncio.get_running_loop()
        self._create_protocol = create_protocol
        self.handoff.setblocking(False)
        loop.add_reader(self.handoff.fileno(), self._take, loop)

    def _take(self, loop: asyncio.AbstractEventLoop, limit: int = TAKE_AT_ONCE) -> None:
        """Serve the connections waiting in the pair (at most `limit`): every one handed
        is served, even once this worker is stopping (uvicorn's shutdown then lets its
        request finish), since the main process hands a stopping worker nothing more."""
        for _ in range(limit):
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.handoff, 64, 1)
            except BlockingIOError:
                return
            except ConnectionResetError:
                # The main process is gone, with something this worker wrote (`SERVING`)
                # unread: the kernel reports a reset, not the end of the stream.
                data, fds = b"", []
            except OSError as exc:
                logger.error("connection hand-off failed: %s", exc)
                self._stop_taking(loop)
                return
            if not data and not fds:  # the parent is gone: nobody hands out connections
                logger.warning("the main process is gone; finishing the connections held")
                self._stop_taking(loop)
                self.should_exit = True
                return
            for fd in fds:
                conn = socket.socket(fileno=fd)
                task = loop.create_task(
                    loop.connect_accepted_socket(self._create_protocol, conn, ssl=self.config.ssl)
                )
                self._connecting.add(task)
                task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[Any]) -> None:
        self._connecting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("a handed-off connection could not be served: %s", task.exception())

    def _stop_taking(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(self.handoff.fileno())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Take what is still waiting in the pair first (connections handed in the moment
        before the main process marked this worker stopping), and let those connections
        read their requests, so uvicorn's shutdown finishes them instead of closing them
        unanswered."""
        loop = asyncio.get_running_loop()
        self._stop_taking(loop)
        if self._create_protocol is not None:
            self._take(loop, limit=1 << 20)
        if self._connecting:
            await asyncio.wait(set(self._connecting), timeout=1.0)
            await asyncio.sleep(0.01)  # their first reads: a request in progress is awaited
        await super().shutdown(sockets=None)


class WorkerProcess(Process):
    """A uvicorn worker serving the connections the parent hands it (`HandoffServer`)."""

    def __init__(self, config: Config) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Never wait on a worker that does not take what it is sent (hung): its pair fills,
        # the send fails, and the connection goes to the next worker instead.
        parent_end.setblocking(False)
        #: The parent's end: connections are sent through it.
        self.handoff = parent_end
        self._child_end = child_end
        self._served = False
        super().__init__(config, [child_end])

    def __getstate__(self) -> dict[str, Any]:
        """What the spawned worker gets of this object (its `target` is a bound method):
        not the parent's end of the pair, or the worker would not see the parent go."""
        state = self.__dict__.copy()
        state.pop("handoff", None)
        state.pop("_child_end", None)
        return state

    def start(self) -> None:
        super().start()
        self._child_end.close()  # the worker has its own copy now

    def target(self, sockets: list[socket.socket] | None = None) -> None:
        assert sockets, "a worker needs its end of the hand-off socket pair"
        server = self._server = HandoffServer(self.config, sockets[0])
        try:
            super().target(None)
        except (Exception, SystemExit) as exc:
            if server.started:
                raise
            _log_start_failure(f"worker [{os.getpid()}]", exc)
            sys.exit(STARTUP_FAILURE)

    def has_served(self) -> bool:
        """Whether the worker finished its start-up (it wrote `SERVING` into its pair), even
        if it has died since: what it wrote stays readable."""
        if not self._served:
            with contextlib.suppress(OSError):  # BlockingIOError: nothing written (yet)
                self._served = self.handoff.recv(len(SERVING)) == SERVING
        return self._served

    def close_handoff(self) -> None:
        self.handoff.close()


class Workers(Multiprocess):
    """uvicorn's `Multiprocess`, starting `WorkerProcess`es and handing them connections."""

    def __init__(self, config: Config, listener: socket.socket) -> None:
        super().__init__(config, sockets=[])
        self.listener = listener
        #: A worker died before it served (uvicorn's STARTUP_FAILURE): the exit status.
        self.startup_failed = False
        #: Workers being stopped: handed nothing more.
        self._retiring: set[int] = set()
        #: Held while a connection is handed and while a worker is marked stopping, so no
        #: connection is sent to a worker after its mark (it is served if sent before).
        self._handing = threading.Lock()
        self._turn = 0

    def _process(self) -> WorkerProcess:
        process = WorkerProcess(self.config)
        process.start()
        return process

    def _mark_stopping(self, process: Process) -> None:
        with self._handing:
            self._retiring.add(id(process))

    def _retire(self, process: Process, kill: bool = False) -> None:
        self._mark_stopping(process)
        if kill:
            process.kill()
        else:
            process.terminate()
        process.join()
        if isinstance(process, WorkerProcess):
            process.close_handoff()
        self._retiring.discard(id(process))

    # -- handing out connections (the acceptor thread) -------------------------------------

    def run(self) -> None:
        acceptor = threading.Thread(target=self._accept, name="acceptor", daemon=True)
        acceptor.start()
        try:
            super().run()
        finally:
            self.should_exit.set()
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the acceptor
            acceptor.join(timeout=5)

    def _accept(self) -> None:
        while not self.should_exit.is_set():
            try:
                conn, _addr = self.listener.accept()
            except OSError as exc:
                if self.should_exit.is_set():
                    return
                logger.warning("accept failed: %s", exc)  # e.g. out of file descriptors
                self.should_exit.wait(0.05)
                continue
            with conn:  # the worker holds its own copy once handed
                self._hand_off(conn)

    def _hand_off(self, conn: socket.socket) -> None:
        with self._handing:
            workers = [
                p
                for p in list(self.processes)
                if isinstance(p, WorkerProcess) and id(p) not in self._retiring
            ]
            for _ in range(len(workers)):
                worker = workers[self._turn % len(workers)]
                self._turn += 1
                try:
                    socket.send_fds(worker.handoff, [b"c"], [conn.fileno()])
                    return
                except OSError:  # gone, or not taking (its pair is full): the next one
                    continue
        logger.warning("no worker to hand a connection to; closing it")

    # -- uvicorn's supervisor, with `WorkerProcess`es -----------------------------------------

    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            self.processes.append(self._process())

    def restart_all(self) -> None:
        """As uvicorn's: each replacement serves before the worker it replaces stops."""
        for idx, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._process()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                self._retire(new, kill=True)
                if not self.should_exit.is_set():
                    logger.error("new worker [%s] was not ready in time; restart aborted", new.pid)
                return
            self._mark_stopping(old)  # handed nothing more from now on
            self.processes[idx] = new
            self._retire(old)

    def keep_subprocess_alive(self) -> None:
        """As uvicorn's: a hung worker is killed and a dead one replaced, unless it died
        before it ever served (a broken app fails the same way every time), whatever its
        exit status (uvicorn looks for 3 only, and a failing app factory exits with 1)."""
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            served = not isinstance(process, WorkerProcess) or process.has_served()
            self._retire(process, kill=True)
            if process.exitcode == STARTUP_FAILURE or not served:
                logger.error(
                    "worker [%s] stopped before it served (exit status %s); stopping the "
                    "server (status %s)",
                    process.pid,
                    process.exitcode,
                    STARTUP_FAILURE,
                )
                self.startup_failed = True
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info("worker [%s] died; starting another", process.pid)
            self.processes[idx] = self._process()

    def handle_ttin(self) -> None:
        """SIGTTIN: one worker more (as uvicorn's, handed its share of new connections)."""
        logger.info("Received SIGTTIN, increasing the number of processes.")
        self.processes_num += 1
        self.processes.append(self._process())

    def handle_ttou(self) -> None:
        """SIGTTOU: one worker fewer (as uvicorn's; it is handed nothing more first)."""
        logger.info("Received SIGTTOU, decreasing number of processes.")
        if self.processes_num <= 1:
            logger.info("Already one process: cannot decrease the number of processes.")
            return
        self.processes_num -= 1
        self._retire(self.processes.pop())

    def terminate_all(self) -> None:
        # Stop listening first, as uvicorn's single server closes its socket when it shuts
        # down: a client that connects meanwhile is refused (it knows its request was not
        # sent) instead of queued in the backlog, unaccepted, while the workers finish, and
        # reset with its request unread when the socket closes after them.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        for process in self.processes:
            self._mark_stopping(process)
        super().terminate_all()


def bind(config: Config) -> socket.socket:
    """The listening socket for `config.host`/`config.port`, bound before anything is
    announced; `config.port` becomes the port bound (`--port 0` picks one). Raises
    `OSError` (a port in use: the caller's status 1)."""
    listener = listen(config.host, config.port, config.backlog)
    config.port = listener.getsockname()[1]
    return listener


def run(config: Config, listener: socket.socket) -> int:
    """Serve `config.app` with `config.workers` workers, the parent accepting from
    `listener` (`bind`) and handing out the connections.

    Returns an exit status: 0 when stopped, 3 when a worker failed before it served.
    """
    with listener:
        logger.info(
            "listening on %s:%s, connections handed to %s workers in turn",
            config.host,
            config.port,
            config.workers,
        )
        workers = Workers(config, listener)
        try:
            workers.run()
        except KeyboardInterrupt:
            pass
    return STARTUP_FAILURE if workers.startup_failed else 0


def run_one(config: Config, listener: socket.socket) -> int:
    """Serve `config.app` in this process on `listener` (`bind`): `--workers 1`.

    Returns an exit status: 0 when stopped, 3 when the app failed before it served (its
    reason in one line, as a worker's).
    """
    server = Server(config)
    with listener:
        logger.info("listening on %s:%s", config.host, config.port)
        try:
            server.run(sockets=[listener])
        except KeyboardInterrupt:
            pass
        except (Exception, SystemExit) as exc:
            if server.started:
                raise
            _log_start_failure("the server", exc)
            return STARTUP_FAILURE
    return 0 if server.started else STARTUP_FAILURE
