"""The ledger's PostgreSQL recorder: `ledger.recorders`' tables and idempotency records on
eventsourcing's PostgreSQL recorder.

A module of its own so that an SQLite ledger (the default) never imports psycopg and
eventsourcing's PostgreSQL module: about 0.12 s of every command's start, and of every
process a parallel rebuild spawns. `LedgerConfig` names it by topic.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import ConnectionPool, PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import Environment, EnvType
from psycopg_pool import PoolTimeout

from ledger.config import DEFAULT_STORE_WAIT_SECONDS, STORE_WAIT_KEY
from ledger.errors import StoreUnreachable, WriteOutcomeUnknown
from ledger.recorders import LedgerTables, record_idempotency

#: The advisory lock key under which PostgreSQL stores are created (`create_table`).
_CREATE_LOCK = 7461836926

#: Tries of one write whose connection fails, and the pause between them (eventsourcing's
#: own retry of `insert_events`, which this recorder replaces: see `insert_events`).
WRITE_ATTEMPTS = 10
RETRY_WAIT = 0.2
#: Seconds the look-up after a lost commit waits for the lost transaction to end.
SETTLE_LOCK_TIMEOUT = 5

#: eventsourcing's one try of an insert, without its retry decorator.
_insert_once: Callable[..., Sequence[int] | None] = (
    PostgresApplicationRecorder.insert_events.__wrapped__
)


class LedgerConnectionPool(ConnectionPool[Any]):
    """eventsourcing's pool with a bounded wait and a pre-ping that does not back off.

    psycopg_pool's own pre-ping (`check=`) sleeps between failed checks, 1 s, 2 s, 4 s ...:
    after PostgreSQL's server processes ended (`pg_terminate_backend`, a restart), a request
    met one dead pooled connection after another, and a write was answered 201 only after
    3-7 s (up to the pool's 30 s); while PostgreSQL was down, every request waited those
    30 s for its 503. Here a connection that fails its check (the same one round trip as
    before, an empty query) is closed and the next one is checked at once: a dead
    connection fails its check at once, so only a new connection is waited for, and no
    longer than `timeout` (`SES_LEDGER_STORE_WAIT_SECONDS`), after which `StoreUnreachable`
    says so (not retried: the wait was the retry). `reconnect_timeout` is that wait too:
    psycopg_pool otherwise reconnects a lost connection in the background with doubling
    pauses for 5 minutes, so after a long outage a waiting request could be handed the
    connection only at the next of those tries; now a slot gives up after the wait, and a
    request that finds no connection has a new one made at once.
    """

    def __init__(self, *args: Any, pre_ping: bool, **kwargs: Any) -> None:
        self.pre_ping = pre_ping
        #: Why the latest new connection was refused (None once one is made): the wait's
        #: `StoreUnreachable` names it, so that a role refused its login, or a password
        #: rotated in PostgreSQL only, is told apart from a server that is down.
        self.connect_failure: str | None = None
        super().__init__(*args, check=None, **kwargs)

    def _connect(self, timeout: float | None = None) -> Any:
        try:
            conn = super()._connect(timeout)
        except Exception as exc:
            self.connect_failure = " ".join(str(exc).split())  # libpq's: no password in it
            raise
        self.connect_failure = None
        return conn

    def getconn(self, timeout: float | None = None) -> Any:
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            try:
                conn = super().getconn(max(deadline - time.monotonic(), 0.001))
            except PoolTimeout as exc:
                failure = self.connect_failure
                why = f"; the last try to connect: {failure}" if failure else ""
                raise StoreUnreachable(
                    f"no connection to the PostgreSQL store within {wait:g} s "
                    f"(SES_LEDGER_STORE_WAIT_SECONDS): {exc}{why}"
                ) from exc
            if not self.pre_ping:
                return conn
            try:
                self.check_connection(conn)
            except Exception:  # noqa: BLE001 - any failure: the connection is unusable
                conn.close()  # given back closed, the pool replaces it with a new one
                self.putconn(conn)
                continue
            return conn


class LedgerPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory with `LedgerConnectionPool` in place of its pool.

    The library's datastore makes its pool itself, unopened; it is replaced here before
    anything opens it, with the same settings but for the wait (`STORE_WAIT_KEY`), which
    bounds the wait for a connection, a background reconnection (`reconnect_timeout`) and
    a new connection to a server that does not answer (libpq's `connect_timeout`).
    """

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        wait = float(self.env.get(STORE_WAIT_KEY) or DEFAULT_STORE_WAIT_SECONDS)
        datastore = self.datastore
        unopened = datastore.pool
        kwargs = unopened.kwargs
        assert isinstance(kwargs, dict)  # the library passes its connection settings so
        datastore.pool = LedgerConnectionPool(
            get_password_func=unopened.get_password_func,
            connection_class=unopened.connection_class,
            kwargs={**kwargs, "connect_timeout": max(2, math.ceil(wait))},
            min_size=unopened.min_size,
            max_size=unopened.max_size,
            open=False,
            configure=datastore.after_connect_func(),
            timeout=wait,
            max_waiting=unopened.max_waiting,
            max_lifetime=unopened.max_lifetime,
            reconnect_timeout=wait,
            pre_ping=datastore.pre_ping,
        )


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: Per thread: the server process of the current write's transaction, once begun.
        self._began = threading.local()
        super().__init__(*args, **kwargs)
        schema = self.datastore.schema
        self.tables = LedgerTables(
            "postgres", schema, events_table=f'"{schema}"."{self.events_table_name}"'
        )
        from psycopg.sql import SQL, Composed

        self.sql_create_statements.extend(Composed([SQL(s)]) for s in self.tables.create)

    def create_table(self) -> None:
        """Create the schema the URL names (`?schema=`) and the tables, one process at a time.

        PostgreSQL refuses concurrent `CREATE OR REPLACE` of one function ("tuple
        concurrently updated"), so processes opening the store together (the workers of
        `serve --workers N`) each took turns only by luck: one died of it at start. An
        advisory lock (PostgreSQL's `pg_advisory_lock`, held by this session) now makes
        them take turns; the others then find everything made.
        """
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_CREATE_LOCK,))
            try:
                self._create_schema_and_tables()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_CREATE_LOCK,))

    def _create_schema_and_tables(self) -> None:
        """eventsourcing creates tables only, and a missing schema failed with a traceback.
        Existence is checked first, so a role without CREATE on the database still opens a
        schema that exists."""
        import psycopg
        from psycopg.sql import SQL, Identifier

        schema = self.datastore.schema
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            exists = cursor.fetchone() is not None
        if not exists:
            try:
                with self.datastore.transaction(commit=True) as cursor:
                    cursor.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
            except psycopg.errors.UniqueViolation:
                pass  # created by another process at the same moment
        super().create_table()

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert the events in one transaction; after a lost connection, find out whether
        that transaction committed before trying again.

        eventsourcing retries a write whose connection failed as if nothing had been
        stored. A connection lost at COMMIT leaves that unknown: the commit may have run.
        Its retry then met its own events ("already exists", or a lost race that the API
        retried into a second append), or, with the server still gone, every try failed and
        the client was told that nothing was recorded. Now a try that failed after its
        transaction began is settled first (`_stored_ids`): the events are there (the write
        succeeded: their positions), or provably not (try again), or the store cannot say
        (`WriteOutcomeUnknown`). A failure before the transaction began sent nothing.
        """
        error: Exception | None = None
        for attempt in range(WRITE_ATTEMPTS):
            if attempt:
                time.sleep(RETRY_WAIT)
            self._began.pid = None
            try:
                return _insert_once(self, stored_events, **kwargs)
            except (InterfaceError, OperationalError) as exc:
                error = exc
                if self._began.pid is None:
                    continue  # no transaction began: nothing was sent
            # Settled before the next try: a try is never left open behind another one.
            ids = self._stored_ids(stored_events, error)
            if ids is not None:
                return ids
        assert error is not None
        raise error  # every try failed, and none of them was stored

    def _insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """Note the server process of the write's transaction: from here on, a lost
        connection leaves the outcome to be looked up (`insert_events`)."""
        self._began.pid = curs.connection.info.backend_pid
        super()._insert_events(curs, stored_events, **kwargs)

    def _stored_ids(
        self, stored_events: Sequence[StoredEvent], lost: Exception
    ) -> Sequence[int] | None:
        """The positions of exactly these events if they are stored, None if provably not.

        A SHARE lock on the events table waits for every transaction that inserted into it
        (they hold EXCLUSIVE: eventsourcing's `_lock_table`) to end, the lost one included,
        so what is read after it is that transaction's final outcome. The events' state
        holds their hash and signature (over `recorded_at`), so another writer's events at
        the same versions never match. WriteOutcomeUnknown when the store cannot be asked.
        """
        from psycopg.sql import SQL, Identifier

        wanted = {(e.originator_id, e.originator_version): e.state for e in stored_events}
        found: dict[tuple[Any, int], int] = {}
        try:
            with self.datastore.transaction(commit=False) as curs:
                curs.execute(SQL("SET LOCAL lock_timeout = '{}s'").format(SETTLE_LOCK_TIMEOUT))
                table = SQL("{}.{}").format(
                    Identifier(self.datastore.schema), Identifier(self.events_table_name)
                )
                curs.execute(SQL("LOCK TABLE {} IN SHARE MODE").format(table))
                curs.execute(
                    SQL(
                        "SELECT originator_id, originator_version, notification_id, state "
                        "FROM {} WHERE originator_id = ANY(%s)"
                    ).format(table),
                    (sorted({str(e.originator_id) for e in stored_events}),),
                )
                for row in curs.fetchall():
                    key = (row["originator_id"], row["originator_version"])
                    if key in wanted and bytes(row["state"]) == wanted[key]:
                        found[key] = row["notification_id"]
        except Exception as exc:
            raise WriteOutcomeUnknown(
                f"the connection was lost while the write was committed ({lost}), and the "
                f"store could not be asked whether it was ({exc})"
            ) from exc
        if not found:
            return None
        if len(found) < len(wanted):  # a transaction is all or nothing: never partial
            raise WriteOutcomeUnknown(f"only part of a lost write's events are stored ({lost})")
        return [found[(e.originator_id, e.originator_version)] for e in stored_events]

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        assert ids is not None
        record_idempotency(self.tables, curs, ids, kwargs)
        return ids
