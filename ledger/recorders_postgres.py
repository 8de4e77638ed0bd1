"""The ledger's PostgreSQL recorder: `ledger.recorders`' tables and idempotency records on
eventsourcing's PostgreSQL recorder.

A module of its own so that an SQLite ledger (the default) never imports psycopg and
eventsourcing's PostgreSQL module: about 0.12 s of every command's start, and of every
process a parallel rebuild spawns. `LedgerConfig` names it by topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

from ledger.recorders import LedgerTables, record_idempotency, restamped

#: The advisory lock key under which PostgreSQL stores are created (`create_table`).
_CREATE_LOCK = 7461836926


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
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

    def _insert_stored_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """eventsourcing's insert, with the write stamped no earlier than the log's head.

        The table lock is taken first (eventsourcing takes it again in the same transaction,
        which holds it already), so the head is read after every earlier append committed
        and before any later one can (`ledger.recorders.restamped`).
        """
        restamp = kwargs.get("restamp")
        if restamp is not None:
            self._lock_table(curs)
            curs.execute(self.tables.select_head)
            row = curs.fetchone()
            restamped(restamp, None if row is None else bytes(row["s"]), stored_events)
        super()._insert_stored_events(curs, stored_events, **kwargs)

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        assert ids is not None
        record_idempotency(self.tables, curs, ids, kwargs)
        return ids
