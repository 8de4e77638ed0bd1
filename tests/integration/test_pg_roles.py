"""A PostgreSQL ledger read through a role that may not write it (least privilege).

An auditor's role with USAGE on the ledger's schema and SELECT on its tables, or a session
that is read-only (a hot standby, `default_transaction_read_only`), could not run even
`verify`: every command opened the store with eventsourcing's `CREATE TABLE IF NOT EXISTS`
and `CREATE OR REPLACE FUNCTION`, which need CREATE on the schema (and ownership of the
function), so each failed with "permission denied for schema ..." (exit 69). The commands
that only read (`verify`, `replay`, `audit`, `bundle export`, `projections status|digest`)
now open such a store without creating anything, as they open an SQLite archive that cannot
be written (README, "PostgreSQL roles"). A command that writes, run by such a role, says in
one line what the role lacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from ledger.application import LedgerApp
from ledger.bundle import merkle_log
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from ses_ledger import cli
from ses_ledger.demo import SimulatedClock, run_demo
from tests.conftest import PG_URL

pytestmark = pytest.mark.postgres


def _as_role(url: str, role: str) -> str:
    """`url` with its user replaced by `role` (and its password, if any, kept)."""
    parts = urlsplit(url)
    password = f":{parts.password}" if parts.password else ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}{password}@{host}"))


@pytest.fixture
def ledger(pg_schema_url: str, tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A small ledger written by the schema's owner: (home, schema, owner's URL)."""
    home = tmp_path / "home"
    clock = SimulatedClock()
    KeyRing(home).init(clock.now)
    app = LedgerApp(LedgerConfig(home=home, db_url=pg_schema_url), clock=clock)
    try:
        run_demo(app, clock, executives=2, years=1, seed=5, until=datetime.now(UTC))
        log = merkle_log(app)
        log.integrate()
        log.issue_checkpoint(app.signer, app.config.origin)
    finally:
        app.close()
    yield home, pg_schema_url.rpartition("?schema=")[2], pg_schema_url


@pytest.fixture
def reader_role(ledger: tuple[Path, str, str]) -> Iterator[str]:
    """A login role of the ledger's schema that may only read it (dropped afterwards)."""
    import psycopg
    from psycopg.sql import SQL, Identifier, Literal

    _, schema, _ = ledger
    role = f"{schema}_ro"
    password = urlsplit(PG_URL).password
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        create = SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
            Identifier(role)
        )
        if password:
            create = SQL("{} PASSWORD {}").format(create, Literal(password))
        conn.execute(create)
        conn.execute(SQL("GRANT USAGE ON SCHEMA {} TO {}").format(*map(Identifier, (schema, role))))
        conn.execute(
            SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                *map(Identifier, (schema, role))
            )
        )
    try:
        yield role
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(SQL("DROP OWNED BY {}").format(Identifier(role)))
            conn.execute(SQL("DROP ROLE {}").format(Identifier(role)))


def _run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    home: Path,
    db: str,
    *argv: str,
) -> tuple[int, str, str]:
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.setenv("SES_LEDGER_DB", db)
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _objects(schema: str) -> list[tuple[str, str]]:
    """Every relation and function in the schema, with the transaction that last wrote its
    catalog row (a `CREATE OR REPLACE` rewrites it)."""
    import psycopg

    with psycopg.connect(PG_URL) as conn:
        rows = conn.execute(
            "SELECT relname, xmin::text FROM pg_class WHERE relnamespace = %s::regnamespace "
            "UNION ALL SELECT proname, xmin::text FROM pg_proc "
            "WHERE pronamespace = %s::regnamespace ORDER BY 1",
            (schema, schema),
        ).fetchall()
    return [(str(name), str(xmin)) for name, xmin in rows]


def test_a_select_only_role_runs_the_commands_that_read(
    ledger: tuple[Path, str, str],
    reader_role: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home, schema, owner_url = ledger
    url = _as_role(owner_url, reader_role)
    before = _objects(schema)

    status, out, err = _run(monkeypatch, capsys, home, url, "verify", "--quiet")
    assert (status, err) == (0, ""), err
    assert out.startswith("ledger verified: ")

    status, out, err = _run(monkeypatch, capsys, home, url, "audit", "--executive", "E00001")
    assert status == 0, err
    assert "every one verifies" in err and "E00001" in out

    status, out, err = _run(
        monkeypatch, capsys, home, url, "replay", "--executive", "E00001", "--as-of-position", "5"
    )
    assert status == 0, err
    assert "E00001" in out

    bundle = home.parent / "bundle.json"
    status, out, err = _run(
        monkeypatch, capsys, home, url, "bundle", "export", "--executive", "E00001", "--out",
        str(bundle),
    )  # fmt: skip
    assert status == 0, err
    assert cli.main(["bundle", "verify", str(bundle)]) == 0
    capsys.readouterr()

    for argv in (["projections", "status"], ["projections", "digest"]):
        status, out, err = _run(monkeypatch, capsys, home, url, *argv)
        assert status == 0, (argv, err)

    # nothing made or replaced in the schema by the reads
    assert _objects(schema) == before


def test_a_read_only_session_runs_verify(
    ledger: tuple[Path, str, str],
    reader_role: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A standby's sessions are read-only: the role may create in the schema, but the
    session may not write (here `default_transaction_read_only`, set for the role)."""
    import psycopg
    from psycopg.sql import SQL, Identifier

    home, schema, owner_url = ledger
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(
            SQL("GRANT CREATE ON SCHEMA {} TO {}").format(
                Identifier(schema), Identifier(reader_role)
            )
        )
        conn.execute(
            SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                Identifier(reader_role)
            )
        )
    status, out, err = _run(
        monkeypatch, capsys, home, _as_role(owner_url, reader_role), "verify", "--quiet"
    )
    assert (status, err) == (0, ""), err
    assert out.startswith("ledger verified: ")


def test_a_command_that_writes_names_what_the_role_lacks(
    ledger: tuple[Path, str, str],
    reader_role: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home, schema, owner_url = ledger
    status, out, err = _run(
        monkeypatch, capsys, home, _as_role(owner_url, reader_role), "checkpoint"
    )
    assert status == 69
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert f"permission denied for schema {schema}" in err
    assert "own the ledger's schema" in err and "Traceback" not in err


def test_a_role_that_may_not_create_the_schema_is_told_so(
    ledger: tuple[Path, str, str],
    reader_role: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A new ledger in a schema not made yet, by a role without CREATE on the database:
    one line naming what is missing, and nothing made (no home, no key)."""
    home, schema, owner_url = ledger
    url = _as_role(owner_url, reader_role).replace(f"schema={schema}", f"schema={schema}_new")
    status, out, err = _run(
        monkeypatch, capsys, tmp_path / "new-home", url, "demo", "--executives", "1"
    )
    assert status == 69
    assert len(err.splitlines()) == 1, err
    assert "permission denied for database" in err and "CREATE on it" in err
    assert not (tmp_path / "new-home").exists()


def test_a_role_refused_its_login_while_in_use_is_named_in_the_store_error(
    ledger: tuple[Path, str, str], reader_role: str
) -> None:
    """A running server's role loses its login (NOLOGIN, a password rotated in PostgreSQL
    and not in SES_LEDGER_DB): each request was answered 503 and logged "no connection to
    the PostgreSQL store within N s: couldn't get a connection after N sec", as for a
    server that is down, with nothing to tell the operator why. Now the log line carries
    the last reason PostgreSQL gave for refusing a new connection (never a password: libpq's
    messages hold none)."""
    import psycopg
    from psycopg.sql import SQL, Identifier

    from ledger.errors import StoreUnreachable

    home, _, owner_url = ledger
    config = LedgerConfig(
        home=home,
        db_url=_as_role(owner_url, reader_role),
        store_wait_seconds=1,
        read_only=True,
        store_read_only=True,  # as the probe finds this role
    )
    app = LedgerApp(config)
    try:
        assert app.recorder.max_notification_id()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(SQL("ALTER ROLE {} NOLOGIN").format(Identifier(reader_role)))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (reader_role,),
            )
        with pytest.raises(StoreUnreachable) as caught:
            for _ in range(3):  # a pooled connection may fail its check first
                app.recorder.max_notification_id()
    finally:
        app.close()
    message = str(caught.value)
    assert "within 1 s" in message
    assert f'role "{reader_role}" is not permitted to log in' in message, message


def test_a_reader_not_granted_a_table_is_told_what_it_lacks(
    ledger: tuple[Path, str, str],
    reader_role: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A table made after the grant (an upgrade) is not the reader's: `verify` says which,
    and what a reader needs, not that it writes."""
    import psycopg
    from psycopg.sql import SQL, Identifier

    home, schema, owner_url = ledger
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(
            SQL("REVOKE SELECT ON {}.ledger_merkle_leaves FROM {}").format(
                Identifier(schema), Identifier(reader_role)
            )
        )
    status, out, err = _run(
        monkeypatch, capsys, home, _as_role(owner_url, reader_role), "verify", "--quiet"
    )
    assert status == 69 and out == ""
    assert len(err.splitlines()) == 1, err
    assert "permission denied for table ledger_merkle_leaves" in err
    assert "SELECT on its tables" in err and "this command writes" not in err
