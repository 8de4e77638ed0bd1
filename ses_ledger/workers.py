"""`serve --workers N`: uvicorn's worker supervisor, each worker with its own listening socket.

uvicorn's supervisor binds one socket and every worker accepts from it. asyncio accepts
every waiting connection on each wake-up, so a burst of connections (an HR application's
connection pool opening, a load test) goes to whichever worker woke first: the API
benchmark saw 32 keep-alive connections split 32/0 and 31/1, one worker doing all the
work while the other idled. Here each worker binds its own socket with `SO_REUSEPORT`
and the kernel spreads new connections over the workers by a hash of their addresses.

Hand-written because uvicorn has no such option (0.54): `WorkerProcess` binds in the
worker, and `Workers` starts `WorkerProcess`es wherever uvicorn's `Multiprocess` starts
its own (first start, SIGTTIN, restart on SIGHUP, replacement of a dead worker); the
rest (signals, health pings, shutdown) is uvicorn's. The parent listens on nothing: a
listening socket in the port's group that nobody accepts from would still get its share
of connections. It first checks that the port is free with a plain bind (no
`SO_REUSEPORT`), so a second server on the same port fails at start instead of silently
sharing it, then keeps the port bound (not listening) while it runs. Connections waiting
in the accept queue of a worker that stops are reset (Linux 5.14+ can move them to
another worker: `sysctl net.ipv4.tcp_migrate_req=1`).
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

logger = logging.getLogger("uvicorn.error")


def reuse_port_available() -> bool:
    """Linux spreads connections over `SO_REUSEPORT` listeners; elsewhere uvicorn's shared
    socket is kept (BSDs give the whole port to the last listener)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def port_is_free(host: str, port: int) -> OSError | None:
    """None if nothing is bound to (host, port), else the bind's error."""
    with _socket(host) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def bind_reuse_port(host: str, port: int) -> socket.socket:
    sock = _socket(host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class WorkerProcess(Process):
    """A uvicorn worker that listens on a socket of its own (bound in the worker)."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            sock = bind_reuse_port(self.config.host, self.config.port)
        except OSError as exc:
            logger.error("cannot listen on %s:%s: %s", self.config.host, self.config.port, exc)
            sys.exit(STARTUP_FAILURE)
        super().target([sock])


class Workers(Multiprocess):
    """uvicorn's `Multiprocess`, starting `WorkerProcess`es (module docstring)."""

    def __init__(self, config: Config) -> None:
        super().__init__(config, sockets=[])
        #: A worker died before it served (uvicorn's STARTUP_FAILURE): the exit status.
        self.startup_failed = False

    def _process(self) -> Process:
        process = WorkerProcess(self.config, [])
        process.start()
        return process

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
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    logger.error("new worker [%s] was not ready in time; restart aborted", new.pid)
                return
            old.terminate()
            old.join()
            self.processes[idx] = new

    def keep_subprocess_alive(self) -> None:
        """As uvicorn's: a hung worker is killed and a dead one replaced, unless it died
        before it ever served (a broken app or socket fails the same way every time)."""
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error("worker [%s] failed to start; stopping", process.pid)
                self.startup_failed = True
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info("worker [%s] died; starting another", process.pid)
            self.processes[idx] = self._process()

    def handle_ttin(self) -> None:
        """SIGTTIN: one worker more (as uvicorn's, with a socket of its own)."""
        logger.info("Received SIGTTIN, increasing the number of processes.")
        self.processes_num += 1
        self.processes.append(self._process())


def run(app: str, **options: Any) -> int:
    """Serve `app` (an import string) with `options.workers` workers on reused ports.

    The parent keeps a socket bound to the port (with `SO_REUSEPORT`, never listening: it
    gets no connections) for as long as it runs, so the port stays reserved between
    workers, e.g. while all restart, and port 0 picks one port for all of them.
    Returns an exit status: 1 when the port is taken, 3 when a worker failed to start.
    """
    config = Config(app, **options)
    if config.port:
        taken = port_is_free(config.host, config.port)
        if taken is not None:
            logger.error("cannot listen on %s:%s: %s", config.host, config.port, taken)
            return 1
    try:
        reserved = bind_reuse_port(config.host, config.port)
    except OSError as exc:
        logger.error("cannot listen on %s:%s: %s", config.host, config.port, exc)
        return 1
    with reserved:
        config.port = reserved.getsockname()[1]
        logger.info(
            "listening on %s:%s, one socket per worker (SO_REUSEPORT)", config.host, config.port
        )
        workers = Workers(config)
        try:
            workers.run()
        except KeyboardInterrupt:
            pass
    return STARTUP_FAILURE if workers.startup_failed else 0
