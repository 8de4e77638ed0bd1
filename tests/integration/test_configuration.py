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
from pydantic import ValidationError

from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from projections.runner import CATCH_UP_BATCH, FLUSH_EVERY
from ses_ledger import cli
from ses_ledger.cli_serve import FLAG_VARIABLES
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


@pytest.mark.parametrize("origin", ["my ledger", "ses-ledger.local/a+b", "tab\there"])
def test_an_origin_no_checkpoint_can_carry_is_refused_before_anything_is_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    origin: str,
) -> None:
    """SES_LEDGER_ORIGIN is the checkpoints' origin line and key name, which may hold no
    space or '+' (C2SP signed notes). `ses-ledger demo` wrote its whole history and then
    died in a traceback at its checkpoint; `serve` started and failed at every checkpoint."""
    home = tmp_path / "home"
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    monkeypatch.setenv("SES_LEDGER_ORIGIN", origin)
    for argv in (["demo", "--executives", "1", "--years", "1"], ["serve", "--port", "0"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "SES_LEDGER_ORIGIN" in err, err
    assert not home.exists()  # no key, no store
    with pytest.raises(ValidationError, match="origin"):
        ApiSettings(home=home, origin=origin)


def test_serve_help_states_the_defaults_its_flags_really_have(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`serve --checkpoint-every/--checkpoint-interval` default to their variables (the flag
    only overrides them); the help said "default 1000" / "default 60" whatever they held."""
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for flag, variable in FLAG_VARIABLES.items():
        option = "--" + flag.replace("_", "-")
        described = shown.split(option, 2)[2].split(" --", 1)[0]  # past the usage line
        assert f"default: {variable}, else" in described, (option, described)


def test_the_server_reads_an_empty_variable_as_the_command_line_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Empty is unset, for every variable: the command line took `SES_LEDGER_HOME=` as
    ./.ses-ledger and the server as the working directory (another home, another ledger);
    an empty number or origin stopped the server and not the other commands."""
    prefix = str(ApiSettings.model_config.get("env_prefix", ""))
    for name in ApiSettings.model_fields:
        monkeypatch.setenv(f"{prefix}{name}".upper(), "")
    settings = ApiSettings()
    assert settings == ApiSettings.model_construct()  # every default
    assert settings.ledger_config() == LedgerConfig.from_env()


def test_every_variable_the_code_names_is_in_the_docs() -> None:
    """Each SES_LEDGER_* variable the code or the tests look up (as a string) is named in
    README.md or docs/api.md: the tests' SES_LEDGER_VERIFIER was in neither."""
    docs = " ".join(
        (ROOT / doc).read_text(encoding="utf-8") for doc in ("README.md", "docs/api.md")
    )
    named: set[str] = set()
    for folder in ("ses_ledger", "api", "ledger", "projections", "tests"):
        for source in (ROOT / folder).rglob("*.py"):
            text = source.read_text(encoding="utf-8")
            named.update(re.findall(r"[\"'](SES_LEDGER_[A-Z_]*[A-Z])[\"']", text))
    assert named >= {"SES_LEDGER_HOME", "SES_LEDGER_TEST_PG_URL"}  # the search finds them
    assert sorted(name for name in named if f"`{name}" not in docs) == []


@pytest.mark.parametrize("argv", [["project"], ["projections", "rebuild"]])
def test_batch_size_help_states_the_sizes_the_runner_uses(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """`--batch-size` named a 1,000,000-event window of rebuilds, which is 2,000,000."""
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"default: {CATCH_UP_BATCH} while rows are read" in shown
    assert f"up to {FLUSH_EVERY} applied in memory" in shown
