"""Shared fixtures: a fresh ledger on SQLite (temp file) and on PostgreSQL (own schema).

PostgreSQL tests skip with the reason when no server answers, unless
`SES_LEDGER_REQUIRE_POSTGRES=1` (set by `.ci/run`), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.config import LedgerConfig
from ledger.keys import KeyRing

PG_URL = os.environ.get("SES_LEDGER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
#: The tests' PostgreSQL schemas are named with this prefix (`SES_LEDGER_TEST_SCHEMA_PREFIX`,
#: default `t_`): several checkouts testing on one server at once keep to their own schemas.
SCHEMA_PREFIX = os.environ.get("SES_LEDGER_TEST_SCHEMA_PREFIX") or "t_"


def pg_schema_name() -> str:
    """A fresh name for a test's PostgreSQL schema."""
    return f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:12]}"


def _pg_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as exc:  # any failure to connect is a reason to skip
        return f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}: {exc}"


_PG_PROBLEM: str | None | bool = False


def require_postgres() -> None:
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = _pg_reachable()
    if _PG_PROBLEM:
        if os.environ.get("SES_LEDGER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{_PG_PROBLEM} (SES_LEDGER_REQUIRE_POSTGRES=1)")
        pytest.skip(str(_PG_PROBLEM))


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL with a fresh schema, dropped afterwards."""
    require_postgres()
    import psycopg

    schema = pg_schema_name()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?schema={schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger_config(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> LedgerConfig:
    """A ledger home with a signing key, on the parametrised backend."""
    home = tmp_path / "home"
    KeyRing(home).init()
    if backend == "postgres":
        url = request.getfixturevalue("pg_schema_url")
    else:
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    return LedgerConfig(home=home, db_url=url)


@pytest.fixture
def sqlite_config(tmp_path: Path) -> LedgerConfig:
    home = tmp_path / "home"
    KeyRing(home).init()
    return LedgerConfig(home=home, db_url=f"sqlite:///{tmp_path / 'ledger.db'}")


def outside_verifier() -> Path:
    """The contract's outside verifier: `shared/tools/verify_ledger.py` beside the checkout.

    `SES_LEDGER_VERIFIER` overrides. A missing verifier fails the tests that need it rather
    than skipping them: it is how we know we follow the contract.
    """
    override = os.environ.get("SES_LEDGER_VERIFIER")
    candidates = [Path(override)] if override else []
    root = Path(__file__).resolve().parents[1]
    candidates += [
        root.parent / "shared" / "tools" / "verify_ledger.py",
        Path("/work/shared/tools/verify_ledger.py"),
    ]
    for path in candidates:
        if path.is_file():
            return path
    pytest.fail(f"the outside verifier is not at any of {[str(p) for p in candidates]}")
