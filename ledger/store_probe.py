"""Whether the configured store can be used, asked once before anything waits on it.

eventsourcing's PostgreSQL pool retries a refused connection in the background until its
30-second timeout, then reports only "couldn't get a connection"; one direct connection
with a short timeout tells at once why (refused, unknown database, wrong password). An
SQLite path that cannot be opened, or a file that is not a database, is reported the same
way. Callers: the command line before it builds the application, and `serve` before it
starts its workers.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import replace

from ledger.config import LedgerConfig
from ledger.errors import NoLedger, StoreUnavailable

#: A table every ledger has from its first start (`ledger.recorders.LedgerTables`).
LEDGER_TABLE = "ledger_merkle_state"
#: Said of a command that writes, on a ledger that cannot be written (an archive).
READ_ONLY_HINT = (
    " (the ledger's file or its directory cannot be written, and this command writes; "
    "`verify`, `replay`, `audit`, `bundle export` and `projections status|digest` read a "
    "read-only ledger)"
)
#: Said when PostgreSQL refuses the role in SES_LEDGER_DB (or its session) what a command
#: asked: a command that writes, or a read of a table the role was not granted.
PRIVILEGE_HINT = (
    " (the role in SES_LEDGER_DB lacks a privilege: a command that writes needs it to own the "
    "ledger's schema, or the database with CREATE on it for a schema not made yet; `verify`, "
    "`replay`, `audit`, `bundle export` and `projections status|digest` need only USAGE on "
    "the schema and SELECT on its tables: README, PostgreSQL roles)"
)
#: PostgreSQL's SQLSTATEs of a role or session that may not write: insufficient_privilege,
#: read_only_sql_transaction (a standby, `default_transaction_read_only`).
_CANNOT_WRITE = {"42501", "25006"}
#: Seconds to wait for a PostgreSQL server that neither answers nor refuses.
CONNECT_TIMEOUT = 10


def probe_store(
    config: LedgerConfig, timeout: int = CONNECT_TIMEOUT, *, existing: bool = False
) -> LedgerConfig:
    """Open the store once and close it again (StoreUnavailable, with the reason, if not).

    `existing`: the command only reads or checks a ledger, so a store that holds none (a
    mistyped SES_LEDGER_HOME or schema) is refused instead of created empty and reported on
    as if it were the ledger.

    Returns the configuration to open the store with: for a command that only reads
    (`config.read_only`) a PostgreSQL ledger its role may not write, `store_read_only`.
    """
    # StoreUnavailable for a malformed URL; a store that must exist is not created first
    env = config.eventsourcing_env(create=not existing)
    if config.is_postgres:
        writable = _probe_postgres(config, env, timeout, existing)
        if config.read_only and existing and not writable:
            return replace(config, store_read_only=True)
    else:
        _probe_sqlite(config, existing)
    return config


def _no_ledger(where: str) -> NoLedger:
    return NoLedger(
        f"there is no ledger at {where} (check SES_LEDGER_HOME and SES_LEDGER_DB); "
        "`ses-ledger serve` or `ses-ledger demo` creates one"
    )


def _probe_postgres(
    config: LedgerConfig, env: dict[str, str], timeout: int, existing: bool
) -> bool:
    """Whether the role may write the ledger's schema: create in it (the tables are
    created, or checked, by `CREATE ... IF NOT EXISTS` on opening), in a session that is not
    read-only (a standby, `default_transaction_read_only`)."""
    import psycopg  # only for PostgreSQL: an SQLite ledger does not import it

    schema = env["POSTGRES_SCHEMA"]
    try:
        with psycopg.connect(
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            dbname=env["POSTGRES_DBNAME"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=timeout,
        ) as connection:
            table = f"{schema}.{LEDGER_TABLE}" if schema else LEDGER_TABLE
            found = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            writable = True
            if found is not None and found[0] is not None:
                # the schema that holds the ledger (of a schema not made yet, PostgreSQL 15
                # refuses to name it: "schema ... does not exist")
                row = connection.execute(
                    "SELECT current_setting('transaction_read_only') = 'off' "
                    "AND has_schema_privilege(relnamespace, 'CREATE') "
                    "FROM pg_class WHERE oid = to_regclass(%s)",
                    (table,),
                ).fetchone()
                writable = bool(row and row[0])
    except psycopg.Error as exc:
        raise StoreUnavailable(
            f"cannot use the store {config.redacted_db_url()}: {_one_line(str(exc))}"
        ) from exc
    if existing and (found is None or found[0] is None):
        raise _no_ledger(config.redacted_db_url())
    return writable


def _probe_sqlite(config: LedgerConfig, existing: bool) -> None:
    path = config.sqlite_path()
    if path.is_dir():
        raise StoreUnavailable(f"cannot use the SQLite store {path}: it is a directory")
    if existing and not path.is_file():
        raise _no_ledger(str(path))
    try:
        connection = sqlite3.connect(config.sqlite_database(), uri=True)
        try:
            connection.execute("PRAGMA schema_version").fetchone()  # reads the header
            # A file that holds no ledger (another program's database, an empty file) is
            # refused as a missing one is: opening it would give it the ledger's tables,
            # and `verify` would call it a verified ledger of 0 events.
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
            held = not existing or connection.execute(sql, (LEDGER_TABLE,)).fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        hint = ""
        if path.is_file() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            hint = READ_ONLY_HINT
        raise StoreUnavailable(f"cannot use the SQLite store {path}: {exc}{hint}") from exc
    if not held:
        raise _no_ledger(f"{path} (the file holds no ledger's tables)")


def privilege_hint(exc: BaseException) -> str:
    """PRIVILEGE_HINT when `exc` (or what it was raised from: eventsourcing wraps psycopg's
    errors) is PostgreSQL refusing the role or the session a write, else ''."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if getattr(seen, "sqlstate", None) in _CANNOT_WRITE:
            return PRIVILEGE_HINT
        seen = seen.__cause__ or seen.__context__
    return ""


def _one_line(message: str) -> str:
    """libpq's messages run over several lines (a hint indented by a tab)."""
    return " ".join(message.split())
