"""README.md, docs/api.md and the `--help` texts stay true of the code (the drift most
likely to creep in: a sub-command or flag renamed, a setting added or its default changed,
an endpoint moved).

- Every `ses-ledger ...` command the documents show names sub-commands that exist, with
  flags its parser takes; every sub-command is in README's command table; every `--help`
  runs (exit 0).
- Every server setting (`api.settings.ApiSettings`) and every `SES_LEDGER_*` variable the
  code reads is documented, each documented default is the code's, and every documented
  variable is read somewhere.
- Every endpoint path the documents (and api-contract.md) name is a route of the OpenAPI
  document, and every query parameter they put on it is one the route takes; every problem
  `type` slug of docs/api.md's error table is one the API sends.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.main import create_app
from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import DEFAULT_HOME, DEFAULT_ORIGIN, LedgerConfig
from ledger.keys import KeyRing
from ses_ledger import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
API_MD = (ROOT / "docs" / "api.md").read_text()
DOCUMENTS = {"README.md": README, "docs/api.md": API_MD}
SOURCES = ["ledger", "projections", "api", "ses_ledger"]


def _parser() -> argparse.ArgumentParser:
    cli._load_extensions()
    return cli.build_parser()


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser of the command line with its path (the top-level one first)."""
    yield path, parser
    for name, child in _children(parser).items():
        yield from _commands(child, (*path, name))


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def _resolve(words: list[str]) -> tuple[tuple[str, ...], argparse.ArgumentParser]:
    """The deepest sub-command `words` name, and its parser."""
    parser = _parser()
    path: tuple[str, ...] = ()
    for word in words:
        child = _children(parser).get(word)
        if child is None:
            break
        parser, path = child, (*path, word)
    return path, parser


#: `ses-ledger WORDS ...` up to the end of its code span or line.
_INVOCATION = re.compile(r"(?<![.\w-])ses-ledger((?: [^`\n|]*)?)")


def _invocations(text: str) -> list[str]:
    text = re.sub(r"\\\n\s*", " ", text)  # a shell line continued
    found = [m.group(1).strip() for m in _INVOCATION.finditer(text)]
    return [words for words in found if words and not words.startswith("-")]  # --help


def _readme_table_commands() -> list[str]:
    """The code spans of the first column of README's command table."""
    section = README.split("| command | what it does |", 1)[1].split("\n\n", 1)[0]
    first_cells = [re.split(r"(?<!\\)\|", row)[1] for row in section.splitlines()[2:]]
    return [span for cell in first_cells for span in re.findall(r"`([^`]+)`", cell)]


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
def test_every_command_shown_exists_with_its_flags(document: str) -> None:
    shown = _invocations(DOCUMENTS[document])
    if document == "README.md":
        shown += _readme_table_commands()
    assert len(shown) > 10, shown
    for invocation in shown:
        words = invocation.split()
        path, parser = _resolve(words)
        assert path, f"{document}: `ses-ledger {invocation}` names no sub-command"
        assert not _children(parser), f"{document}: `ses-ledger {invocation}` needs an action"
        flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", invocation))
        unknown = flags - _options(parser)
        assert not unknown, f"{document}: `ses-ledger {invocation}`: no {sorted(unknown)}"


def test_every_sub_command_is_in_readmes_command_table() -> None:
    listed = {_resolve(span.split())[0] for span in _readme_table_commands()}
    leaves = {path for path, parser in _commands(_parser()) if path and not _children(parser)}
    assert leaves - listed == set(), "sub-commands missing from README's command table"


@pytest.mark.parametrize(
    "path", [path for path, _p in _commands(_parser())], ids=lambda p: " ".join(p) or "-"
)
def test_every_help_runs(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*path, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ses-ledger {' '.join(path)}".rstrip()), out[:200]


# --- settings and variables ----------------------------------------------------------------

_ROW = re.compile(r"^\| (`SES_LEDGER_[^|]+) \| ([^|]+) \|", re.M)


def _documented_defaults() -> dict[str, str]:
    """Each variable of README's and docs/api.md's tables with its documented default."""
    found: dict[str, str] = {}
    for text in DOCUMENTS.values():
        for names, defaults in _ROW.findall(text):
            variables = re.findall(r"`(SES_LEDGER_[A-Z_]+)`", names)
            values = re.findall(r"`([^`]*)`", defaults) or [defaults.strip()]
            if len(values) != len(variables):
                values = values[:1] * len(variables)  # "see README"
            for variable, value in zip(variables, values, strict=True):
                if not value.startswith("see "):
                    found[variable] = value
    return found


#: A variable's name (not `SES_LEDGER_REPLAY_*`, which names several).
_VARIABLE = re.compile(r"SES_LEDGER_[A-Z]+(?:_[A-Z]+)*(?![A-Z_])")


def _variables_read() -> set[str]:
    read = {f"SES_LEDGER_{name.upper()}" for name in ApiSettings.model_fields}
    for package in SOURCES:
        for source in (ROOT / package).rglob("*.py"):
            read |= set(_VARIABLE.findall(source.read_text()))
    return read


def test_every_variable_read_is_documented_and_every_documented_one_read() -> None:
    documented = set(_VARIABLE.findall(README + API_MD))
    tests_only = {
        "SES_LEDGER_TEST_PG_URL",
        "SES_LEDGER_REQUIRE_POSTGRES",
        "SES_LEDGER_VERIFIER",
        "SES_LEDGER_TEST_SCHEMA_PREFIX",
    }
    assert _variables_read() - documented == set()
    assert documented - tests_only - _variables_read() == set()


def _same(documented: str, default: Any) -> bool:
    if isinstance(default, bool):
        return documented == str(default).lower()
    if isinstance(default, int | float):
        return float(documented.replace(",", "")) == float(default)
    return documented == str(default)


def test_documented_defaults_are_the_codes() -> None:
    documented = _documented_defaults()
    code: dict[str, Any] = {
        f"SES_LEDGER_{name.upper()}": field.default
        for name, field in ApiSettings.model_fields.items()
    }
    code["SES_LEDGER_HOME"] = DEFAULT_HOME
    code["SES_LEDGER_ORIGIN"] = DEFAULT_ORIGIN
    checked = 0
    for variable, value in documented.items():
        if variable == "SES_LEDGER_DB":
            continue
        assert variable in code, variable
        assert _same(value, code[variable]), (variable, value, code[variable])
        checked += 1
    assert checked >= 15


# --- endpoints and errors ------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("docs") / "home"
    KeyRing(home).init()
    ledger = LedgerApp(LedgerConfig(home, f"sqlite:///{home / 'ledger.db'}"))
    try:
        settings = ApiSettings(home=home, checkpoint_interval_seconds=0)
        spec: dict[str, Any] = create_app(ledger, settings=settings).openapi()
    finally:
        ledger.close()
    return spec


def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/?]+", re.escape(path)))


#: `/v1/...` or `/healthz`, with its query string (`?a=&b=1`) if any.
_PATH = re.compile(r"(/v1/[A-Za-z0-9_{}/.*-]*|/healthz)(\?[A-Za-z0-9_=&:.*-]*)?")


def _contract() -> str:
    """api-contract.md beside the checkout, as the outside verifier is looked for."""
    for candidate in (ROOT.parent / "shared", Path("/work/shared")):
        if (candidate / "api-contract.md").is_file():
            return (candidate / "api-contract.md").read_text()
    pytest.fail("api-contract.md not found beside the checkout (../shared)")


@pytest.mark.parametrize("document", [*sorted(DOCUMENTS), "api-contract.md"])
def test_every_path_named_is_a_route_with_those_parameters(
    document: str, openapi: dict[str, Any]
) -> None:
    text = _contract() if document == "api-contract.md" else DOCUMENTS[document]
    routes = openapi["paths"]
    seen = 0
    for match in _PATH.finditer(text):
        path, query = match.group(1).rstrip("/."), match.group(2) or ""
        if path.endswith("*"):
            prefix = path.rstrip("*")
            assert any(p.startswith(prefix) for p in routes), path
            continue
        matching = [p for p in routes if _template(p).fullmatch(path)]
        assert matching, f"{document}: {path} is not a route"
        parameters = {
            parameter["name"]
            for p in matching
            for operation in routes[p].values()
            for parameter in operation.get("parameters", [])
        }
        names = {pair.split("=")[0] for pair in query.lstrip("?").split("&") if pair}
        assert names <= parameters, f"{document}: {path} takes no {sorted(names - parameters)}"
        seen += 1
    assert seen > 10


def test_every_error_type_documented_is_sent() -> None:
    table = API_MD.split("\n## Errors", 1)[1].split("\n## ", 1)[0]
    slugs = re.findall(r"^\| \d{3} \| `([a-z-]+)` \|", table, re.M)
    assert len(slugs) >= 15, slugs
    api_source = "".join(p.read_text() for p in (ROOT / "api").rglob("*.py"))
    for slug in slugs:
        assert f'"{slug}"' in api_source, slug


def test_readme_names_the_compliance_projections_version() -> None:
    """README, Read models: a store made before a new version is rebuilt on upgrade, so the
    version README names must be the code's (it said 4 after version 5 shipped)."""
    from projections.compliance import Compliance

    (named,) = re.findall(r"Compliance is at\s+version (\d+)", README)
    assert int(named) == Compliance.version


def test_if_match_is_described_as_the_routes_use_it(openapi: dict[str, Any]) -> None:
    """A create (no record in the path) ignores `If-Match` and cannot answer 412, yet
    OpenAPI described the header there as "(412 if stale)" (docs/api.md, Writes)."""
    writes = 0
    for path, operations in openapi["paths"].items():
        post = operations.get("post")
        if post is None:
            continue
        (header,) = [p for p in post["parameters"] if p["name"] == "If-Match"]
        creates = "{" not in path
        assert ("412" in post["responses"]) is not creates, path
        assert "412 if stale" in header["description"], path
        assert "a create ignores it" in header["description"], path
        writes += 1
    assert writes >= 15


def _schemas(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object inside `value` (the schemas nested in an OpenAPI document)."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _schemas(item)
    elif isinstance(value, list):
        for item in value:
            yield from _schemas(item)


def test_parameter_bounds_are_stated_in_json_schema_words(openapi: dict[str, Any]) -> None:
    """A position's bounds were `minimum` and `maximum` in the OpenAPI document. Validating
    its digits first (`api.schemas.common.Digits`, a pydantic BeforeValidator) placed before
    the bounds made pydantic write them as its own `ge` and `le`, which no JSON Schema
    reader knows: `as_of_position`, `after`, `position`, `tree_size`, `first`, `second`
    and `limit` lost their stated range."""
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                for schema in _schemas(parameter["schema"]):
                    assert not {"ge", "le", "gt", "lt"} & schema.keys(), (path, method, parameter)
    positions = [
        p
        for operations in openapi["paths"].values()
        for operation in operations.values()
        for p in operation.get("parameters", [])
        if p["name"] in ("as_of_position", "after", "position", "tree_size", "first", "second")
    ]
    assert len(positions) >= 10
    for parameter in positions:
        bounds = [s for s in _schemas(parameter["schema"]) if "maximum" in s]
        assert bounds and bounds[0]["minimum"] == 0 and bounds[0]["maximum"] == 2**53 - 1, parameter


def test_every_flag_named_is_one_a_command_takes() -> None:
    """A `--flag` the documents name anywhere (not only after `ses-ledger ...`) is an option
    of some sub-command, or of the standalone `ledger/offline_verify.py` (README named
    `--keys` as if `bundle verify` took it)."""
    import contextlib
    import io

    from ledger import offline_verify

    options = {flag for _path, parser in _commands(_parser()) for flag in _options(parser)}
    with contextlib.redirect_stdout(io.StringIO()) as usage:
        assert offline_verify.main(["--help"]) == 0
    standalone = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", usage.getvalue()))
    assert "--keys" in standalone and "--keys" not in options
    for document, text in DOCUMENTS.items():
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))
        assert named - options - standalone == set(), document
    assert "`--keys FILE` (`python ledger/offline_verify.py` only" in README


def test_every_argument_says_what_it_is() -> None:
    """Each `--help` explains every argument it lists (`bundle verify FILE`, `--out`,
    `--executive` and `serve --log-level` were listed bare)."""
    bare = [
        (" ".join(path), action.option_strings or action.dest)
        for path, parser in _commands(_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction)
        and action.dest != "help"
        and not action.help
    ]
    assert bare == []


def _range(field: Any) -> str | None:
    """A setting's bounds (pydantic's `ge`, `gt`, `le`), in the words the table uses."""
    import annotated_types

    bounds: dict[str, float] = {}
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            bounds["ge"] = float(item.ge)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Gt):
            bounds["gt"] = float(item.gt)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Le):
            bounds["le"] = float(item.le)  # type: ignore[arg-type]
    assert not {type(i).__name__ for i in field.metadata} & {"Lt", "Interval"}, field
    low = (
        f"{bounds['ge']:g}"
        if "ge" in bounds
        else f"more than {bounds['gt']:g}"
        if "gt" in bounds
        else None
    )
    if low is None and "le" not in bounds:
        return None
    if "le" not in bounds:
        return f"{low} or more" if "ge" in bounds else low
    if "ge" in bounds:
        return f"{low} to {bounds['le']:g}"
    return f"{low}, at most {bounds['le']:g}"


def test_documented_ranges_are_the_codes() -> None:
    """docs/api.md's settings table gives each bounded setting's range as the code checks
    it (`api.settings.ApiSettings`; `ledger.config.LedgerConfig.from_env` for the ones the
    command line reads too). The table named two ranges only (`TOKEN_LEEWAY_SECONDS`,
    `STORE_WAIT_SECONDS`): `SES_LEDGER_THREADS=100`, `SES_LEDGER_REPLAY_WAIT_SECONDS=120` or
    `SES_LEDGER_RECORD_REPLAY_BUILDS=0` were refused at start-up by bounds no document gave."""
    rows: dict[str, str] = {}
    for names, cell in re.findall(r"^\| (`SES_LEDGER_[^|]+) \| [^|]+ \| ([^|]+) \|", API_MD, re.M):
        variables = re.findall(r"`(SES_LEDGER_[A-Z_]+)`", names)
        ranges = cell.strip().split(", ") if len(variables) > 1 else [cell.strip()]
        rows |= dict(
            zip(variables, ranges * len(variables) if len(ranges) == 1 else ranges, strict=True)
        )
    checked = 0
    for name, field in ApiSettings.model_fields.items():
        expected = _range(field)
        if expected is None:
            continue
        variable = f"SES_LEDGER_{name.upper()}"
        assert variable in rows, f"docs/api.md's settings table gives no range of {variable}"
        assert rows[variable] == expected, (variable, rows[variable], expected)
        checked += 1
    assert checked >= 12
    # The command line reads three of them itself: the same bounds.
    for variable, outside, edge in (
        ("SES_LEDGER_CHECKPOINT_EVERY", "0", "1"),
        ("SES_LEDGER_AGGREGATE_CACHE_EVENTS", "-1", "0"),
        ("SES_LEDGER_STORE_WAIT_SECONDS", "300.5", "300"),
        ("SES_LEDGER_STORE_WAIT_SECONDS", "0", "0.001"),
    ):
        from ledger.errors import ConfigurationError

        env = {"SES_LEDGER_HOME": str(ROOT / ".no-such-home")}
        with pytest.raises(ConfigurationError):
            LedgerConfig.from_env({**env, variable: outside})
        LedgerConfig.from_env({**env, variable: edge})
        setting = variable.removeprefix("SES_LEDGER_").lower()
        with pytest.raises(ValueError):
            ApiSettings(**{setting: outside})
        ApiSettings(**{setting: edge})


def _problem_classes(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _problem_classes(sub)


def test_every_error_status_documented_is_the_one_sent() -> None:
    """Each (status, slug) row of docs/api.md's error table is one the code answers with
    (`api.errors`: its problem classes, the ledger errors' table and the HTTP errors';
    `api.http_head.refusal` for the HTTP server's own), and every pair the API and ledger
    errors map to is in the table: the slug alone was checked, so a row giving a slug
    another status would have passed."""
    import json

    from api import errors, http_head

    table = API_MD.split("\n## Errors", 1)[1].split("\n## ", 1)[0]
    documented = {
        (int(s), slug) for s, slug in re.findall(r"^\| (\d{3}) \| `([a-z-]+)` \|", table, re.M)
    }
    mapped = {
        (cls.status, cls.slug) for cls in [errors.ApiProblem, *_problem_classes(errors.ApiProblem)]
    }
    mapped |= {(status, slug) for _cls, status, slug, _title in errors._LEDGER}
    mapped |= {(500, "internal-error")}
    sent = set(mapped) | {(status, slug) for status, (slug, _t) in errors._HTTP_SLUGS.items()}
    for status in (400, 408, 414, 431, 501):
        answer = http_head.refusal(status)
        head, body = answer.split(b"\r\n\r\n", 1)
        problem = json.loads(body)
        assert head.split()[1] == str(status).encode(), head
        sent.add((problem["status"], problem["type"].rsplit(":", 1)[1]))
    assert documented - sent == set(), "documented, never sent so"
    assert mapped - documented == set(), "sent, not documented"


def test_every_command_s_help_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    """A sub-command's own `--help` says what it does, as the parent's list of commands
    does: `keys rotate --help` (whose key-ring lock, exit 69 and close-time rules changed on
    2026-12-01), `keys init`, `keys list`, `projections rebuild|status|digest` and
    `checkpoint` printed a usage line and `-h` alone."""
    missing = []
    for path, _p in _commands(_parser()):
        if not path:
            continue
        summary = next(
            choice.help
            for action in _resolve(list(path[:-1]))[1]._actions
            if isinstance(action, argparse._SubParsersAction)
            for choice in action._choices_actions
            if choice.dest == path[-1]
        )
        with pytest.raises(SystemExit):
            cli.main([*path, "--help"])
        out = " ".join(capsys.readouterr().out.split()).lower()
        if " ".join(str(summary).split()).lower() not in out:
            missing.append(" ".join(path))
    assert missing == []


def test_defaults_named_in_the_text_are_the_codes() -> None:
    """A default the prose gives beside a variable (`SES_LEDGER_CHECKPOINT_EVERY`, default
    1000; `SES_LEDGER_STORE_WAIT_SECONDS` (default 5)) is the code's, as the tables' are."""
    code = {
        f"SES_LEDGER_{name.upper()}": field.default
        for name, field in ApiSettings.model_fields.items()
    }
    named = [
        (document, variable, value)
        for document, text in DOCUMENTS.items()
        for variable, value in re.findall(
            r"`(SES_LEDGER_[A-Z_]+)`,? \(?default (\d[\d,.]*\d|\d)", text.replace("\n", " ")
        )
    ]
    assert len(named) >= 3, named
    for document, variable, value in named:
        assert _same(value, code[variable]), (document, variable, value, code[variable])


def test_the_date_and_cycle_ranges_stated_are_the_codes() -> None:
    """docs/api.md's "dates are YYYY-MM-DD between 1900 and 2199, so a cycle is FY1900 to
    FY2200" (the cycle range of 2026-12-01) is what the body and query types check."""
    from api.schemas.writes import FIRST_CYCLE, LAST_CYCLE, MAX_DAY, MIN_DAY

    text = " ".join(API_MD.split())
    ((first_year, last_year),) = re.findall(
        r"dates are `YYYY-MM-DD` between (\d{4}) and (\d{4})", text
    )
    ((first, last),) = re.findall(r"is `FY(\d{4})` to `FY(\d{4})`", text)
    assert (int(first_year), int(last_year)) == (MIN_DAY.year, MAX_DAY.year)
    assert (MIN_DAY.month, MIN_DAY.day, MAX_DAY.month, MAX_DAY.day) == (1, 1, 12, 31)
    assert (int(first), int(last)) == (FIRST_CYCLE, LAST_CYCLE)


def test_defaults_the_help_names_are_the_parsers() -> None:
    """An option's `--help` naming a default (`--port ... (default 8000`, `--workers ...
    (default 1)`) names the one its parser holds."""
    named = 0
    for path, parser in _commands(_parser()):
        for action in parser._actions:
            found = re.search(r"\(default:? ([^;,)]*)", action.help or "")
            if found is None or action.default is None:
                continue
            if isinstance(action.default, bool):
                shown = "on" if action.default else "off"
            elif isinstance(action.default, float):
                shown = f"{action.default:g}"
            else:
                shown = str(action.default)
            assert found.group(1) == shown, (path, action.option_strings, found.group(1), shown)
            named += 1
    assert named >= 10


def test_the_cycle_range_is_in_the_openapi_schema(openapi: dict[str, Any]) -> None:
    """The cycle's range (FY1900-FY2200) was stated only in docs/api.md: a client generated
    from the OpenAPI document saw only the pattern FY[0-9]{4}."""
    waiver = openapi["components"]["schemas"]["RatingCapWaiverIn"]["properties"]["cycle"]
    assert "FY1900 to FY2200" in waiver.get("description", ""), waiver
    query = [
        p
        for p in openapi["paths"]["/v1/reports/rating-distribution"]["get"]["parameters"]
        if p["name"] == "cycle"
    ]
    assert query and "FY1900 to FY2200" in str(query[0]), query
