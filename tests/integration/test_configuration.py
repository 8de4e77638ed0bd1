"""The configuration an operator is told about is the configuration the ledger reads.

README.md (Configuration) and docs/api.md (Running it) list the SES_LEDGER_* variables. The
eventsourcing library under the ledger would also read the whole process environment, by its
own names and prefixed with the application's name: `SESLEDGER_SQLITE_DBNAME` moved the
ledger's events into another file (the home's `ledger.db` stayed empty, and `ses-ledger
verify` without the variable found no ledger), `AGGREGATE_CACHE_MAXSIZE=abc` ended every
command in a traceback. None of them was documented.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from tests.ledger_helpers import register

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SESLEDGER_SQLITE_DBNAME", "elsewhere.db"),  # relative to tmp_path below
        ("SESLEDGER_POSTGRES_DBNAME", "no_such_database_qa"),
        ("SQLITE_DBNAME", "elsewhere.db"),
        ("AGGREGATE_CACHE_MAXSIZE", "abc"),
        ("PERSISTENCE_MODULE", "no.such.module"),
    ],
)
def test_the_process_environment_does_not_configure_the_store_behind_the_ledger(
    ledger_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
) -> None:
    if value.endswith(".db"):
        value = str(tmp_path / value)
    monkeypatch.setenv(variable, value)
    app = LedgerApp(ledger_config)
    # only what LedgerConfig derives from SES_LEDGER_*, nothing of the process environment
    assert dict(app.env) == ledger_config.eventsourcing_env()
    register(app)
    app.close()
    monkeypatch.delenv(variable)
    assert not (tmp_path / "elsewhere.db").exists()
    reopened = LedgerApp(ledger_config)  # the store SES_LEDGER_DB names holds the event
    try:
        assert reopened.recorder.max_notification_id() == 1
    finally:
        reopened.close()


def _documented_variables() -> set[str]:
    """The variables of the configuration tables of README.md and docs/api.md."""
    names: set[str] = set()
    for doc in ("README.md", "docs/api.md"):
        for line in (ROOT / doc).read_text(encoding="utf-8").splitlines():
            if line.startswith("| `SES_LEDGER_"):
                names.update(re.findall(r"`(SES_LEDGER_[A-Z_]+)`", line.split("|")[1]))
    return names


class _Recording(dict[str, str]):
    """An environment that notes every variable looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def test_the_documented_variables_are_the_ones_the_code_reads() -> None:
    prefix = str(ApiSettings.model_config.get("env_prefix", ""))
    read = {f"{prefix}{name}".upper() for name in ApiSettings.model_fields}
    environ = _Recording()
    LedgerConfig.from_env(environ)  # the command line's reading of the environment
    assert environ.asked <= read
    assert _documented_variables() == read
