"""The command line refuses what it cannot do well, in one line, before it writes anything:
a home or schema with no ledger for commands that only read one, a store URL it would
misread, settings out of range, a key that would start a second history."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.errors import ConfigurationError, StoreUnavailable
from ledger.keys import KeyRing
from projections.queries import ReadModels
from projections.runner import Runner
from ses_ledger import cli
from tests.ledger_helpers import events_table, point_cli_at, raw, register, write_no_ledger


def _main(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    config: LedgerConfig,
    *argv: str,
    **env: str,
) -> tuple[int, str, str]:
    point_cli_at(monkeypatch, config)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:  # argparse
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def _one_line(err: str) -> None:
    assert err.startswith("ses-ledger: ") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "argv",
    [["projections", "status"], ["projections", "digest"], ["projections", "rebuild"], ["verify"]],
    ids=" ".join,
)
def test_commands_that_read_a_ledger_do_not_create_one(
    argv: list[str],
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A mistyped SES_LEDGER_HOME (or an empty schema) is not reported on as an empty ledger,
    and is left as it was."""
    status, out, err = _main(monkeypatch, capsys, ledger_config, *argv)
    assert status == cli.EXIT_STORE
    _one_line(err)
    assert "there is no ledger at" in err and "check SES_LEDGER_HOME and SES_LEDGER_DB" in err
    assert out == ""
    if not ledger_config.is_postgres:
        assert not ledger_config.sqlite_path().exists()
    # once a ledger exists the same command runs
    register(_app(ledger_config), "E1")
    assert _main(monkeypatch, capsys, ledger_config, *argv)[0] == 0


READ_ONLY_COMMANDS = [
    ["verify"],
    ["projections", "status"],
    ["projections", "digest"],
    ["projections", "rebuild"],
    ["replay", "--executive", "E1", "--as-of-position", "1"],
    ["audit", "--actor", "R1"],
    ["bundle", "export", "--executive", "E1", "--out", "bundle.json"],
    ["checkpoint"],
]


@pytest.mark.parametrize("argv", READ_ONLY_COMMANDS, ids=" ".join)
def test_a_mistyped_home_is_not_created(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """README, Command line: the commands that only read or check a ledger "refuse a home
    or schema that holds none (a typo) rather than create an empty one". They refused, but
    left the mistyped SES_LEDGER_HOME behind as a new empty directory (0700), which the next
    command then took for a ledger home."""
    home = tmp_path / "typo" / "home"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.setenv("SES_LEDGER_DB", "")  # empty counts as unset: the home's ledger.db
    monkeypatch.delenv("SES_LEDGER_ORIGIN", raising=False)
    try:
        status = cli.main(argv)
    except SystemExit as exc:
        status = int(exc.code or 0)
    _out, err = capsys.readouterr()
    assert status == cli.EXIT_STORE
    _one_line(err)
    assert f"there is no ledger at {home / 'ledger.db'}" in err
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("argv", [*READ_ONLY_COMMANDS, ["bundle", "reindex"]], ids=" ".join)
@pytest.mark.parametrize("content", ["another-programs-database", "empty-file"])
def test_a_file_that_holds_no_ledger_is_not_made_one(
    argv: list[str],
    content: str,
    sqlite_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """README, Command line: the commands that only read or check a ledger refuse a store
    that holds none rather than create an empty one. On PostgreSQL a schema without the
    ledger's tables was refused, but an SQLite file was taken for a ledger if it merely
    existed: SES_LEDGER_DB naming another program's database (or an empty `ledger.db`) got
    the ledger's and the read models' tables written into it, `verify` printed "ledger
    verified: 0 events" (exit 0) and `checkpoint` signed a checkpoint of it with the home's
    key. Refused now (69), the file left as it was."""
    path = sqlite_config.sqlite_path()
    write_no_ledger(path, content)
    before = path.read_bytes()
    monkeypatch.chdir(path.parent)  # bundle export's --out
    status, out, err = _main(monkeypatch, capsys, sqlite_config, *argv)
    assert status == cli.EXIT_STORE, (out, err)
    _one_line(err)
    assert f"there is no ledger at {path} (the file holds no ledger's tables)" in err
    assert path.read_bytes() == before
    assert not (path.parent / "bundle.json").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["verify"],
        ["keys", "init"],
        ["keys", "list"],
        ["token", "issue", "--subject", "a", "--role", "auditor", "--agency", "DOE"],
        ["token", "rotate-key"],
        ["serve", "--port", "0"],
        ["demo", "--executives", "1"],
    ],
    ids=" ".join,
)
@pytest.mark.parametrize("where", ["home", "home/under/it"])
def test_a_home_that_is_a_file_is_named_by_its_variable(
    argv: list[str],
    where: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SES_LEDGER_HOME naming a file (or a path under one) was met by each command at a file
    of its own: "cannot create the directory of the SQLite store .../ledger.db: Not a
    directory" (even from `verify`, which creates nothing), "cannot read .../keys/
    keyring.json: NotADirectoryError", ".../token.key: Not a directory". The variable to
    correct is named now, in one line, exit 69 as before."""
    (tmp_path / "home").write_text("notes\n")
    home = tmp_path / where
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.setenv("SES_LEDGER_DB", "")
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert status == cli.EXIT_STORE and out == "", err
    assert err == (
        f"ses-ledger: SES_LEDGER_HOME {home} cannot be used: {tmp_path / 'home'} is a file, "
        "not a directory\n"
    )
    assert (tmp_path / "home").read_text() == "notes\n"


def _app(config: LedgerConfig) -> LedgerApp:
    KeyRing(config.home).init()
    return LedgerApp(config)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?foo=bar", "unknown parameter 'foo'; only ?schema=NAME is understood"),
        ("?scheme=ledger", "unknown parameter 'scheme'"),
        ("?schema=Ledger", "schema 'Ledger' must be 1-63 lower-case letters"),
        ("?schema=a-b", "schema 'a-b' must be"),
        ("?schema=a&schema=b", "schema given twice"),
        ("?schema", "malformed query 'schema'"),
    ],
)
def test_a_postgres_url_is_taken_as_written_or_refused(
    query: str,
    reason: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ignored, `?scheme=` would have put the ledger into `public` for good (RET-1); an
    upper-case schema was created, then failed part-way with a traceback."""
    url = f"postgresql://postgres:pw@127.0.0.1:1/ledger{query}"
    with pytest.raises(StoreUnavailable, match=re.escape(reason)):
        LedgerConfig(tmp_path, url).eventsourcing_env()
    config = LedgerConfig(tmp_path / "home", url)
    status, _out, err = _main(monkeypatch, capsys, config, "demo", "--executives", "1")
    assert status == cli.EXIT_STORE and reason in err and "pw" not in err
    _one_line(err)
    assert not KeyRing(config.home).exists()


def test_a_plain_schema_is_accepted(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1/ledger?schema=ses_ledger_2"
    assert LedgerConfig(tmp_path, url).eventsourcing_env()["POSTGRES_SCHEMA"] == "ses_ledger_2"
    assert LedgerConfig(tmp_path, url.split("?")[0]).eventsourcing_env()["POSTGRES_SCHEMA"] == ""


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5"])
def test_a_checkpoint_interval_that_is_not_a_positive_count_is_refused(
    value: str,
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ConfigurationError, match="SES_LEDGER_CHECKPOINT_EVERY must be"):
        LedgerConfig.from_env({"SES_LEDGER_CHECKPOINT_EVERY": value})
    status, _out, err = _main(
        monkeypatch, capsys, ledger_config, "verify", SES_LEDGER_CHECKPOINT_EVERY=value
    )
    assert status == 2 and f"got {value!r}" in err
    _one_line(err)


@pytest.mark.parametrize("origin", ["SES Ledger", "ses-ledger.local/ledger+2", "ledger\u00a0x"])
def test_an_origin_no_c2sp_verifier_can_read_is_refused(
    origin: str,
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SES_LEDGER_ORIGIN is also the key name on the checkpoints' signature lines (contract,
    Configuration), and a C2SP signed note's key name has no space and no `+`: a checkpoint
    signed under such a name is refused by other C2SP verifiers. It was accepted."""
    with pytest.raises(ConfigurationError, match="SES_LEDGER_ORIGIN"):
        LedgerConfig.from_env({"SES_LEDGER_ORIGIN": origin})
    status, _out, err = _main(
        monkeypatch, capsys, ledger_config, "verify", SES_LEDGER_ORIGIN=origin
    )
    assert status == 2 and "SES_LEDGER_ORIGIN" in err and "C2SP" in err
    _one_line(err)


def test_keys_init_refuses_a_ledger_signed_elsewhere(
    ledger_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A home that lost its key ring (a lost volume) beside a store that holds events: a new
    key would sign a second history, and `verify` would report the old one as tampered."""
    register(_app(ledger_config), "E1")
    elsewhere = LedgerConfig(tmp_path / "new-home", ledger_config.db_url)
    status, out, err = _main(monkeypatch, capsys, elsewhere, "keys", "init")
    assert status == 2 and out == "", err
    assert "already holds 1 events" in err and "restore that directory" in err
    assert not KeyRing(elsewhere.home).exists()
    # the ledger's own home: the existing key, nothing new
    key_id = KeyRing(ledger_config.home).signer().key_id
    status, out, _err = _main(monkeypatch, capsys, ledger_config, "keys", "init")
    assert status == 0 and out.startswith(f"existing signing key {key_id}")


def test_keys_init_beside_a_key_ring_without_its_private_key_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README, Command line: `init` does nothing when the key ring exists; a ring whose
    current private key is gone (a restore without --with-secrets, which docker-compose's
    `keys` service then runs `keys init` on) is exit 2, naming the missing file and the way
    out. It said only "cannot load the private key for ...: FileNotFoundError"."""
    config = LedgerConfig(tmp_path / "home", f"sqlite:///{tmp_path / 'ledger.db'}")
    ring = KeyRing(config.home)
    key_id = ring.init()
    private = ring.dir / f"{key_id}.pem"
    private.unlink()
    index = ring.index.read_bytes()
    status, out, err = _main(monkeypatch, capsys, config, "keys", "init")
    assert status == 2 and out == ""
    _one_line(err)
    assert f"cannot load the private key for {key_id}" in err and str(private) in err
    assert "`ses-ledger keys rotate`" in err and "--with-secrets" in err
    assert ring.index.read_bytes() == index and not private.exists()
    # the way out it names
    assert _main(monkeypatch, capsys, config, "keys", "rotate")[0] == 0
    assert _main(monkeypatch, capsys, config, "keys", "init")[0] == 0


def test_keys_init_makes_no_key_for_a_store_it_cannot_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = LedgerConfig(tmp_path / "home", "garbage")
    status, _out, err = _main(monkeypatch, capsys, config, "keys", "init")
    assert status == cli.EXIT_STORE and "must start with sqlite:/// or postgresql://" in err
    assert not KeyRing(config.home).exists()


@pytest.mark.parametrize(
    "url", ["garbage", "postgresql://postgres@127.0.0.1:1/test", "sqlite:///{home}/damaged.db"]
)
def test_keys_rotate_closes_no_key_for_a_store_it_cannot_use(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README, Command line: a store that cannot be used is reported, exit 69, "before
    anything is written (a key included)". `keys rotate` reads the ledger's last
    `recorded_at` to close the current key no earlier than it, but took a store it could not
    use for one with no ledger yet: it closed the key at the clock's time, regardless of the
    entries it signed (after a clock stepped back, `verify` then fails them), exit 0. Only a
    store that holds no ledger yet rotates without it now."""
    home = tmp_path / "home"
    ring = KeyRing(home)
    first = ring.init()
    (home / "damaged.db").write_bytes(b"not an SQLite file" * 100)
    config = LedgerConfig(home, url.format(home=home))
    index = ring.index.read_bytes()
    status, out, err = _main(monkeypatch, capsys, config, "keys", "rotate")
    assert status == cli.EXIT_STORE and out == "", err
    _one_line(err)
    assert ring.index.read_bytes() == index and ring.signer().key_id == first
    # no ledger there yet: rotated at the clock's time, as before
    fresh = LedgerConfig(home, f"sqlite:///{tmp_path / 'none-yet.db'}")
    assert _main(monkeypatch, capsys, fresh, "keys", "rotate")[0] == 0
    assert ring.signer().key_id != first
    assert not (tmp_path / "none-yet.db").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["projections", "rebuild", "--batch-size", "-1"],
        ["projections", "rebuild", "--batch-size", "0"],
        ["project", "--batch-size", "0"],
        ["project", "--follow", "--interval", "0"],
        ["project", "--follow", "--interval", "-1"],
        ["projections", "status", "--max-lag", "-1"],
        ["demo", "--executives", "0"],
        ["demo", "--years", "-1"],
    ],
    ids=" ".join,
)
def test_sizes_and_intervals_out_of_range_are_usage_errors(
    argv: list[str],
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--batch-size -1` used to empty every read model and report a rebuild "up to
    position 0"; the read models are left as they were."""
    register(_app(ledger_config), "E1")
    models = ReadModels(_app(ledger_config))
    models.catch_up()
    before = models.digest()
    status, _out, err = _main(monkeypatch, capsys, ledger_config, *argv)
    assert status == 2 and "must be" in err
    assert models.digest() == before
    assert models.runner.positions()["current_ratings"] > 0


@pytest.mark.parametrize(("workers", "said"), [("65", "at most 64"), ("0", "1 or more")])
def test_serve_refuses_a_worker_count_out_of_range_before_anything_starts(
    workers: str,
    said: str,
    sqlite_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/api.md "Flags and settings are checked before anything starts": `--workers` had
    no upper bound, and a mistyped `serve --workers 1000` started process after process
    until the machine stalled for minutes. It is a usage error now (2), before serving."""
    status, out, err = _main(monkeypatch, capsys, sqlite_config, "serve", "--workers", workers)
    assert status == 2 and out == ""
    assert "--workers" in err and said in err


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--workers", "1_0"],
        ["serve", "--port", "+8000"],
        ["serve", "--port", " 80"],
        ["projections", "rebuild", "--batch-size", "1_000"],
        ["demo", "--executives", "\u0662"],  # ARABIC-INDIC DIGIT TWO: int() reads 2
    ],
    ids=" ".join,
)
def test_whole_number_flags_take_ascii_digits_only(
    argv: list[str],
    sqlite_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`int()` read `--workers 1_0` as 10 workers and `--port +8000` as 8000, while the
    ledger positions and the API take digits 0-9 only; every whole-number flag does now, a
    usage error (2) before anything starts or is written."""
    status, out, err = _main(monkeypatch, capsys, sqlite_config, *argv)
    assert status == 2 and out == ""
    assert argv[1] in err and "digits 0-9" in err
    assert not Path(sqlite_config.db_url.removeprefix("sqlite:///")).exists()


def test_the_runner_refuses_empty_pages(ledger_config: LedgerConfig) -> None:
    runner: Runner = ReadModels(_app(ledger_config)).runner
    with pytest.raises(ValueError, match="must be 1 or more"):
        runner.rebuild(batch_size=-1)
    with pytest.raises(ValueError, match="must be 1 or more"):
        runner.catch_up(flush_every=0)


def test_digest_of_an_unknown_projection_is_one_line(
    ledger_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    register(_app(ledger_config), "E1")
    status, out, err = _main(monkeypatch, capsys, ledger_config, "projections", "digest", "nosuch")
    assert status == 2 and out == "" and "nosuch" in err
    _one_line(err)


def test_status_max_lag_is_a_health_check(
    ledger_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _app(ledger_config)
    for n in range(3):
        register(app, f"E{n}")
    status, out, err = _main(
        monkeypatch, capsys, ledger_config, "projections", "status", "--max-lag", "2"
    )
    assert status == 1 and "behind" in out
    assert "more than 2 events behind" in err and "current_ratings" in err
    assert _main(monkeypatch, capsys, ledger_config, "projections", "status")[0] == 0
    ReadModels(app).catch_up()
    status, out, _err = _main(
        monkeypatch, capsys, ledger_config, "projections", "status", "--max-lag", "0"
    )
    assert status == 0 and "behind" not in out


def test_digest_refuses_a_stale_projection_and_leaves_its_rows(
    ledger_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`projections digest` of a ledger where an older build left a projection at an older
    version changes nothing and refuses that one (exit 1, one line): it opened the read
    models for work, which drops such a projection's tables and resets it to position 0, so
    it printed the digest of emptied tables, and the API's reads lost those rows until the
    projector built them again. `status` names it stale (12a8ca7) and changes nothing
    either; the projector then rebuilds it (README, Read models)."""
    app = _app(ledger_config)
    for n in range(3):
        register(app, f"E{n}")
    models = ReadModels(app)
    head = models.catch_up()
    store = models.store
    compliance = models.runner.projections["compliance"]
    version = compliance.version

    def stored() -> tuple[dict[str, tuple[int, int]], list[int]]:
        with store.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT name, position, version FROM {store.name('proj_tracking')}")
            tracking = {
                str(r["name"]): (int(r["position"]), int(r["version"])) for r in cursor.fetchall()
            }
            counts = []
            for table in compliance.tables:
                cursor.execute(f"SELECT COUNT(*) AS n FROM {store.name(table.name)}")
                counts.append(int(cursor.fetchone()["n"]))
        return tracking, counts

    with store.transaction(commit=True) as cursor:  # stored by the release before
        cursor.execute(
            f"UPDATE {store.name('proj_tracking')} SET version = {store.p} WHERE name = {store.p}",
            (version - 1, "compliance"),
        )
    before = stored()
    assert before[0]["compliance"] == (head, version - 1) and sum(before[1]) > 0

    status, out, err = _main(
        monkeypatch, capsys, ledger_config, "projections", "status", "--max-lag", "0"
    )
    assert status == 1 and "compliance stale" in err, (out, err)
    row = next(line for line in out.splitlines() if line.startswith("compliance "))
    assert row.split()[1:4] == [str(head), str(head), "0"]
    assert row.endswith(f"stale (version {version - 1} -> {version})")
    assert stored() == before
    status, out, err = _main(monkeypatch, capsys, ledger_config, "projections", "digest")
    assert status == 1 and out == "", out
    _one_line(err)
    assert f"compliance (version {version - 1} -> {version})" in err
    assert stored() == before
    status, out, err = _main(monkeypatch, capsys, ledger_config, "projections", "digest", "audit")
    assert status == 0 and out.startswith("audit  ") and stored() == before

    assert _main(monkeypatch, capsys, ledger_config, "project")[0] == 0
    assert stored()[0]["compliance"] == (head, version)
    assert (
        _main(monkeypatch, capsys, ledger_config, "projections", "status", "--max-lag", "0")[0] == 0
    )


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_projection_named_twice_is_rebuilt_once(
    jobs: str,
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`projections rebuild audit current_ratings audit` rebuilds each once. A name given
    twice was a projection chosen twice: the replacing write emptied its tables again for
    the second mention, after its rows were written, and left it at the head with no rows
    ("rebuilt audit, current_ratings, audit", status "ok", the API answering 404 for every
    executive and an empty audit trail)."""
    app = _app(ledger_config)
    for n in range(3):
        register(app, f"E{n}")
    models = ReadModels(app)
    head = models.catch_up()
    digests = models.runner.digest()
    argv = ["projections", "rebuild", "--quiet", "--jobs", jobs]
    status, out, err = _main(
        monkeypatch, capsys, ledger_config, *argv, "audit", "current_ratings", "audit"
    )
    assert status == 0, err
    assert models.runner.digest() == digests
    assert models.executive("E1") is not None
    assert out.startswith(f"rebuilt audit, current_ratings up to position {head} in "), out
    models.rebuild(["current_ratings", "current_ratings"], jobs=int(jobs))
    assert models.runner.digest() == digests


def test_output_closed_early_is_no_traceback(ledger_config: LedgerConfig) -> None:
    """`ses-ledger projections status | head -1` and the like: the reader has gone."""
    register(_app(ledger_config), "E1")
    env = {
        **os.environ,
        "SES_LEDGER_HOME": str(ledger_config.home),
        "SES_LEDGER_DB": ledger_config.db_url,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "ses_ledger.cli", "projections", "status"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # before the child can have written: its write meets a closed pipe
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == cli.EXIT_PIPE, err
    assert err == ""


def _cli_env(config: LedgerConfig) -> dict[str, str]:
    return {
        **os.environ,
        "SES_LEDGER_HOME": str(config.home),
        "SES_LEDGER_DB": config.db_url,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }


def test_an_output_that_cannot_be_written_is_not_blamed_on_the_store(
    sqlite_config: LedgerConfig,
) -> None:
    """`ses-ledger checkpoint > /full/disk/note` (here /dev/full, which answers every write
    with ENOSPC) said "ses-ledger: No space left on device", exit 69: the status and words of
    a store or home that cannot be used (the ledger's own disk full), while the ledger was
    fine and the checkpoint issued. The output is named now, with its own status (74,
    `ses-ledger --help`), and what the command did stands."""
    register(_app(sqlite_config), "E1")
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "ses_ledger.cli", "checkpoint"],
            env=_cli_env(sqlite_config),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == cli.EXIT_OUTPUT == 74, done.stderr
    assert done.stderr == "ses-ledger: cannot write the output: No space left on device\n"
    assert LedgerApp(sqlite_config).merkle_log.latest_checkpoint() is not None


def test_a_closed_standard_output_is_no_traceback(sqlite_config: LedgerConfig) -> None:
    """Started with stdout closed (`ses-ledger verify >&-`), Python gives `sys.stdout =
    None`: what is printed is dropped, and the final flush raised AttributeError in a
    traceback. The command's status is its own now (0: the ledger verifies)."""
    register(_app(sqlite_config), "E1")
    done = subprocess.run(
        ["sh", "-c", f'exec "{sys.executable}" -m ses_ledger.cli verify >&-'],
        env=_cli_env(sqlite_config),
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_verify_with_another_origin_says_which_setting_to_check(
    ledger_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint signed for the ledger's origin, verified under another SES_LEDGER_ORIGIN:
    reported at its position (it does not verify here), with the likelier cause named."""
    register(_app(ledger_config), "E1")
    assert _main(monkeypatch, capsys, ledger_config, "checkpoint")[0] == 0
    assert _main(monkeypatch, capsys, ledger_config, "verify", "--quiet")[0] == 0
    status, out, _err = _main(
        monkeypatch, capsys, ledger_config, "verify", "--quiet", SES_LEDGER_ORIGIN="other/log"
    )
    assert status == 1 and "first bad position: 1" in out
    assert "it names the origin 'ses-ledger.local/ledger': if that is the ledger's, check " in out
    assert "SES_LEDGER_ORIGIN here" in out


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://postgres:S3cret@127.0.0.1:notaport/test", "Port could not be cast"),
        ("postgresql://postgres:S3cret@[::1/test", "Invalid IPv6 URL"),
    ],
)
def test_an_unparseable_postgres_url_is_one_line_without_its_password(
    url: str,
    reason: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, _out, err = _main(monkeypatch, capsys, LedgerConfig(tmp_path / "home", url), "verify")
    assert status == cli.EXIT_STORE and reason in err and "S3cret" not in err
    _one_line(err)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # libpq takes the password as a parameter too; refused, the URL was echoed whole
        ("postgresql://postgres@127.0.0.1:1/test?password=S3cret", "test?password=***"),
        (
            "postgresql://postgres@127.0.0.1:1/test?schema=s&password=S3cret",
            "schema=s&password=***",
        ),
        (
            "postgresql://postgres@127.0.0.1:1/test?password=S3cret&",
            "malformed query 'password=***&'",
        ),
        ("postgresql://u:pw@127.0.0.1:1/test?sslmode=require&sslpassword=S3cret", "u:***@"),
        # a password not percent-encoded: urlsplit found no password in it and showed it
        ("postgresql://postgres:ab/S3cret@127.0.0.1:1/test", "postgres:***@127.0.0.1:1/test"),
        ("postgresql://postgres:ab#S3cret@127.0.0.1:1/test", "postgres:***@127.0.0.1:1/test"),
        ("postgresql://postgres:ab?S3cret@127.0.0.1:1/test", "postgres:***@127.0.0.1:1/test"),
        ("mysql://root:S3cret@127.0.0.1/test", "mysql://root:***@127.0.0.1/test"),
    ],
)
def test_no_secret_of_a_store_url_is_echoed(
    url: str,
    shown: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Secrets never reach outputs: a password in the URL's query (libpq's `?password=`), or
    one with a `/`, `?` or `#` not percent-encoded, was printed in the store's refusal."""
    config = LedgerConfig(tmp_path / "home", url)
    assert "S3cret" not in config.redacted_db_url()
    for argv in (["verify"], ["demo", "--executives", "1"], ["keys", "init"]):
        status, out, err = _main(monkeypatch, capsys, config, *argv)
        assert status == cli.EXIT_STORE, (argv, err)
        assert "S3cret" not in err + out and shown in err
        _one_line(err)
    assert not KeyRing(config.home).exists()


def test_a_url_with_nothing_secret_is_shown_as_written(tmp_path: Path) -> None:
    for url in (
        "postgresql://postgres@127.0.0.1:5432/test?schema=ledger_1",
        "sqlite:///tmp/a:b@c/ledger.db",
    ):
        assert LedgerConfig(tmp_path, url).redacted_db_url() == url


def test_the_home_is_private_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under umask 000 a home made world-writable would let anyone swap `token.key` (a
    running server reloads it) or rewrite the public key ring."""
    home = tmp_path / "deep" / "home"
    config = LedgerConfig(home, f"sqlite:///{home / 'ledger.db'}")
    previous = os.umask(0)
    try:
        assert _main(monkeypatch, capsys, config, "keys", "init")[0] == 0
        assert _main(monkeypatch, capsys, config, "token", "issue", "--subject", "a",
                     "--role", "admin", "--agency", "*")[0] == 0  # fmt: skip
        register(LedgerApp(config), "E1")
        out = tmp_path / "backup"
        argv = ("backup", "--out", str(out), "--with-secrets")
        assert _main(monkeypatch, capsys, config, *argv)[0] == 0
    finally:
        os.umask(previous)
    for directory in (tmp_path / "deep", home, home / "keys", out, out / "keys"):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    for where in (home, out):
        assert (where / "keys" / "keyring.json").stat().st_mode & 0o777 == 0o644, where
        assert (where / "token.key").stat().st_mode & 0o777 == 0o600, where
        (pem,) = (where / "keys").glob("*.pem")
        assert pem.stat().st_mode & 0o777 == 0o600, where


def test_a_stored_event_that_cannot_be_read_is_one_line_not_a_traceback(
    sqlite_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A stored state cut short by hand: `audit` and `bundle export`, which read it, ended
    in a Python traceback (a ValueError); it is stored data that does not verify
    (`ledger.errors.UnreadableEntry`), said in one line, and `verify` names its position.
    `bundle export` checks what it exports: a failed check, status 1 (`bundle export
    --help`), naming the position and writing nothing; `audit` fails its check with status 1
    too (it exited 2, as for a refused command)."""
    app = _app(sqlite_config)
    register(app, "E1")
    app.close()
    raw(
        sqlite_config,
        f"UPDATE {events_table(sqlite_config)} SET state = substr(state, 1, 40) "
        "WHERE originator_id = 'E1'",
    )
    for argv in (["audit", "--executive", "E1"], ["bundle", "export", "--executive", "E1"]):
        if argv[0] == "bundle":
            argv += ["--out", str(sqlite_config.home / "bundle.json")]
        status, out, err = _main(monkeypatch, capsys, sqlite_config, *argv)
        assert status == 1 and out == "", (argv, out)
        assert "truncated" in err or "no hash field" in err, err
        if argv[0] == "bundle":
            assert err.startswith("ses-ledger bundle export: nothing written to ") and (
                err.count("\n") == 1 and "position 1: " in err
            ), err
            assert not (sqlite_config.home / "bundle.json").exists()
        else:
            _one_line(err)
    status, out, _ = _main(monkeypatch, capsys, sqlite_config, "verify", "--quiet")
    assert status == 1 and "first bad position: 1" in out, out


@pytest.mark.parametrize(
    "argv",
    [
        ["witness", "--url", "http://hr-1:S3cret@127.0.0.1:9/", "--state", "w.json"],
        ["bundle", "verify", "b.json", "--url", "https://hr-1:S3cret@ledger.example"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_ledger_url_with_credentials_is_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sqlite_config: LedgerConfig,
    argv: list[str],
) -> None:
    """`--url` was taken with user:password@ in it and printed in every finding (and saved in
    the witness's state file), though the public endpoints it is asked take no credentials."""
    monkeypatch.chdir(sqlite_config.home.parent)  # the state and bundle paths are relative
    status, out, err = _main(monkeypatch, capsys, sqlite_config, *argv)
    assert status == 2
    assert "must not hold a user name or password" in err
    assert "S3cret" not in out + err


def test_project_says_when_it_made_the_ledger_it_follows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ledger_config: LedgerConfig
) -> None:
    """`project` waits on an empty store (it may start before the API makes it), but in a
    mistyped home or schema it said nothing and sat at position 0 for good; it now says
    that there was no ledger there. A ledger that is there: no note."""
    status, _out, err = _main(monkeypatch, capsys, ledger_config, "project")
    assert status == 0
    assert "note: there was no ledger at" in err
    status, _out, err = _main(monkeypatch, capsys, ledger_config, "project")
    assert status == 0 and "no ledger" not in err, err
