"""Bearer tokens: signature, expiry with at most 2 s leeway, and the claims the server needs."""

from __future__ import annotations

import argparse
import os
import stat
import time
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest

from api.auth import MAX_TTL_SECONDS as MAX_TTL
from api.auth import (
    Role,
    TokenError,
    TokenVerifier,
    decode_token,
    issue_token,
    load_or_create_token_key,
)
from ses_ledger import cli_tokens
from ses_ledger.cli import main as ses_ledger_main
from tests.api.story import Api

PATH = "/v1/ledger/verify"


def _status(api: Api, token: str | None) -> int:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    r = api.client.get(PATH, headers=headers)
    if r.status_code == 401:
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["type"] == "urn:ses-ledger:problem:unauthorized"
    status: int = r.status_code
    return status


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "aud-1",
        "roles": ["auditor"],
        "agency": "*",
        "iat": now,
        "exp": now + 60,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_a_valid_token_is_accepted(api: Api) -> None:
    assert _status(api, jwt.encode(_claims(), api.key, algorithm="HS256")) == 200


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "not-a-jwt",
        "a.b.c",
        jwt.encode(_claims(), b"another server's key" * 2, algorithm="HS256"),
        jwt.encode(_claims(), "", algorithm="none"),
    ],
    ids=["missing", "empty", "garbage", "three-parts", "wrong-key", "alg-none"],
)
def test_missing_or_bad_tokens_are_401(api: Api, token: str | None) -> None:
    assert _status(api, token) == 401


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": None},
        {"sub": None},
        {"sub": ""},
        {"sub": "has space"},
        {"roles": None},
        {"roles": []},
        {"roles": ["superuser"]},
        {"roles": "auditor"},
        {"agency": None},
        {"agency": ""},
        {"agency": 7},
    ],
    ids=str,
)
def test_tokens_without_usable_claims_are_401(api: Api, overrides: dict[str, object]) -> None:
    assert _status(api, jwt.encode(_claims(**overrides), api.key, algorithm="HS256")) == 401


def test_expiry_allows_at_most_two_seconds_of_leeway(api: Api) -> None:
    now = time.time()
    just_expired = jwt.encode(_claims(exp=now - 0.5), api.key, algorithm="HS256")
    assert _status(api, just_expired) == 200  # 0.5 s late: within the leeway
    expired = jwt.encode(_claims(exp=now - 3), api.key, algorithm="HS256")
    assert _status(api, expired) == 401


def test_other_schemes_are_401(api: Api) -> None:
    token = jwt.encode(_claims(), api.key, algorithm="HS256")
    r = api.client.get(PATH, headers={"Authorization": f"Basic {token}"})
    assert r.status_code == 401


def test_decode_reports_why(tmp_path: Path) -> None:
    key = load_or_create_token_key(tmp_path)
    token = issue_token(
        key, subject="s", roles=["admin"], agency="DOE", ttl_seconds=1, now=time.time() - 10
    )
    with pytest.raises(TokenError, match="expired"):
        decode_token(token, key)
    principal = decode_token(
        issue_token(key, subject="s", roles=["admin", "hr_app"], agency="DOE", ttl_seconds=60),
        key,
    )
    assert principal.subject == "s" and principal.agency == "DOE"
    assert {r.value for r in principal.roles} == {"admin", "hr_app"}


def test_a_remembered_token_still_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TokenVerifier skips the HMAC for a token it has verified, never the expiry."""
    key = load_or_create_token_key(tmp_path)
    verify = TokenVerifier(key, leeway=2.0)
    token = issue_token(key, subject="s", roles=["admin"], agency="DOE", ttl_seconds=60)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert verify(token).subject == "s"
    assert verify(token) is verify(token)  # remembered
    real = time.time
    monkeypatch.setattr(time, "time", lambda: exp + 1.9)  # within the leeway
    assert verify(token).subject == "s"
    monkeypatch.setattr(time, "time", lambda: exp + 2.0)  # PyJWT: exp <= now - leeway
    with pytest.raises(TokenError, match="expired"):
        verify(token)
    monkeypatch.setattr(time, "time", real)
    with pytest.raises(TokenError, match="signature"):
        verify(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
    with pytest.raises(TokenError):
        TokenVerifier(b"another key" * 3)(token)


def test_token_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    key = load_or_create_token_key(tmp_path / "home")
    assert len(key) == 32
    path = tmp_path / "home" / "token.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_token_key(tmp_path / "home") == key


def cli(argv: list[str]) -> int:
    """`ses-ledger token ...` through this module's own sub-command registration."""
    parser = argparse.ArgumentParser(prog="ses-ledger")
    cli_tokens.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def test_cli_prints_only_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SES_LEDGER_HOME", str(tmp_path))
    argv = [
        "token",
        "issue",
        "--subject",
        "hr-1",
        "--role",
        "hr_app",
        "--role",
        "admin",
        "--agency",
        "DOE",
        "--ttl-seconds",
        "120",
    ]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    principal = decode_token(out.strip(), load_or_create_token_key(tmp_path))
    assert principal.subject == "hr-1"
    assert {r.value for r in principal.roles} == {"hr_app", "admin"}
    claims = jwt.decode(out.strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120


def test_cli_refuses_unknown_roles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SES_LEDGER_HOME", str(tmp_path))
    argv = ["token", "issue", "--subject", "x", "--role", "root", "--agency", "DOE"]
    assert cli(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "root" in captured.err
    assert f"(roles: {', '.join(r.value for r in Role)})" in captured.err


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--subject", "a b", "subject 'a b' is not a valid id"),
        ("--agency", "D O E", "agency 'D O E' is not a valid agency code or '*'"),
        ("--ttl-seconds", "0", "the time to live must be 1 to 31622400 seconds (a year), got 0"),
        (
            "--ttl-seconds",
            "31622401",
            "the time to live must be 1 to 31622400 seconds (a year), got 31622401",
        ),
    ],
)
def test_cli_names_a_bad_claim_alone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    problem: str,
) -> None:
    monkeypatch.setenv("SES_LEDGER_HOME", str(tmp_path))
    claims = {"--subject": "x", "--agency": "DOE", "--ttl-seconds": "60", option: value}
    argv = ["token", "issue", "--role", "auditor", *(a for kv in claims.items() for a in kv)]
    assert cli(argv) == 2
    assert capsys.readouterr().err == f"ses-ledger token: {problem}\n"


@pytest.mark.parametrize("problem", ["home-is-a-file", "key-is-a-directory", "key-not-hex"])
def test_a_token_key_that_cannot_be_used_is_named_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    problem: str,
) -> None:
    """`ses-ledger token issue` and `rotate-key` ended in a traceback (status 1) when the
    key could not be read or written: a home that is a file, a directory in the key's place,
    a key file that is not hex. Status 2 now, one line naming the key file; nothing left
    behind."""
    home = tmp_path / "home"
    if problem == "home-is-a-file":
        home.write_text("")
    else:
        home.mkdir(mode=0o700)
        if problem == "key-is-a-directory":
            (home / "token.key").mkdir()
        else:
            (home / "token.key").write_text("not hex\n")
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    argv = ["token", "issue", "--subject", "x", "--role", "auditor", "--agency", "DOE"]
    commands = [argv] + ([["token", "rotate-key"]] if problem != "key-not-hex" else [])
    for command in commands:
        # a file in the way is the home's file system (69, as in tests/integration/
        # test_home_faults.py); a key that is not hex is a refused key (2)
        # through the command line's own handler, which reports the home's file faults
        assert ses_ledger_main(command) == (2 if problem == "key-not-hex" else 69)
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1, captured.err
        if problem == "key-not-hex":
            assert captured.err == (
                f"ses-ledger token: the token key {home / 'token.key'} is not hex text\n"
            )
        elif problem == "home-is-a-file":  # named by its variable (test_cli_checks.py)
            assert captured.err.startswith(f"ses-ledger: SES_LEDGER_HOME {home} "), captured.err
        else:
            assert captured.err.startswith(f"ses-ledger: {home}"), captured.err
    if home.is_dir():
        assert sorted(p.name for p in home.iterdir()) == ["token.key"]


def test_the_help_lists_every_role(capsys: pytest.CaptureFixture[str]) -> None:
    """The roles are written out in `token issue --help` (the command line does not import
    the API to build its parser); they must stay those the server knows."""
    with pytest.raises(SystemExit):
        cli(["token", "issue", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"Roles: {', '.join(r.value for r in Role)}." in shown


def test_a_rotated_key_refuses_old_tokens_in_a_running_server(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ses-ledger token rotate-key`, for a leaked token: the server needs no restart."""
    services = api.client.app.state.services  # type: ignore[attr-defined]
    home = services.ledger.config.home
    old = jwt.encode(_claims(), api.key, algorithm="HS256")
    assert _status(api, old) == 200  # now remembered by the verifier
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    assert cli(["token", "rotate-key"]) == 0
    assert "every token issued before is refused" in capsys.readouterr().out
    path = home / "token.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    new_key = load_or_create_token_key(home)
    assert new_key != api.key and len(new_key) == 32
    assert not list(home.glob("token.key.*"))  # written aside, then moved into place
    services.verify_token.reload_every = 0  # instead of waiting for the next look (1 s)
    assert _status(api, old) == 401
    assert _status(api, jwt.encode(_claims(), new_key, algorithm="HS256")) == 200


def test_a_verifier_keeps_its_key_while_the_file_cannot_be_read(tmp_path: Path) -> None:
    key = load_or_create_token_key(tmp_path)
    verify = TokenVerifier(key, path=tmp_path / "token.key", reload_every=0)
    token = issue_token(key, subject="s", roles=["admin"], agency="DOE", ttl_seconds=60)
    (tmp_path / "token.key").write_text("")  # half-written by hand: not a key
    assert verify(token).subject == "s"
    (tmp_path / "token.key").unlink()
    assert verify(token).subject == "s"


def _post_body_as(api: Api, who: str | None, body: Any, status: int, slug: str) -> Any:
    """POST a raw registration body as `who` (None: no token; "auditor", "hr_app", or an
    Authorization value) and check the problem's status, type and headers."""
    headers = {"Content-Type": "application/json"}
    if who in ("auditor", "hr_app"):
        headers |= api.auditor if who == "auditor" else api.hr
    elif who is not None:
        headers["Authorization"] = who
    r = api.client.post("/v1/executives", content=body, headers=headers)
    assert (r.status_code, r.json()["type"]) == (status, f"urn:ses-ledger:problem:{slug}")
    assert r.headers["content-type"] == "application/problem+json"
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    return r


@pytest.mark.parametrize(
    ("who", "status", "slug"),
    [
        (None, 401, "unauthorized"),
        ("Bearer not-a-jwt", 401, "unauthorized"),
        ("Basic abc", 401, "unauthorized"),
        ("auditor", 403, "forbidden"),
        ("hr_app", 422, "invalid-request"),
    ],
)
@pytest.mark.parametrize("body", [b"{bad", b'{"executive_id": '])
def test_a_body_that_is_not_json_meets_the_token_check_first(
    api: Api, who: str | None, status: int, slug: str, body: bytes
) -> None:
    """FastAPI parses JSON before the dependencies that authenticate: a caller with no token,
    or an auditor, still hears 401 / 403 first (api-contract.md: "401 no/bad token, 403 role
    or scope"; "`auditor` never writes"), as it does for a body that parses."""
    r = _post_body_as(api, who, body, status, slug)
    if status == 422:
        assert r.json()["errors"][0]["loc"][0] == "body"


@pytest.mark.parametrize(
    ("who", "status", "slug"),
    [
        (None, 401, "unauthorized"),
        ("Bearer not-a-jwt", 401, "unauthorized"),
        ("auditor", 403, "forbidden"),
        ("hr_app", 400, "bad-request"),
    ],
)
@pytest.mark.parametrize(
    "body",
    [b'{"name": "\xff"}', '{"name": "Zo\u00eb"}'.encode("utf-16")],
    ids=["bad-utf8", "utf16"],
)
def test_a_body_that_is_not_utf8_meets_the_token_check_first(
    api: Api, who: str | None, status: int, slug: str, body: bytes
) -> None:
    """As for a body that is not JSON (docs/api.md: 401 and 403 "come before any complaint
    about the body"): a caller with no token, or an auditor, was told 400 "error parsing the
    body" instead, and so learnt nothing of what it lacked."""
    _post_body_as(api, who, body, status, slug)


BIG = 2_000_000  # over the default SES_LEDGER_MAX_BODY_BYTES (1,000,000)


@pytest.mark.parametrize(
    ("who", "status", "slug"),
    [
        (None, 401, "unauthorized"),
        ("Bearer not-a-jwt", 401, "unauthorized"),
        ("auditor", 403, "forbidden"),
        ("hr_app", 413, "payload-too-large"),
    ],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_too_large_meets_the_token_check_first(
    api: Api, who: str | None, status: int, slug: str, chunked: bool
) -> None:
    """As for a body that is not JSON or not UTF-8 (docs/api.md: 401 and 403 "come before
    any complaint about the body"): a caller with no token was told 413 first, the server's
    limit, and an auditor too. The connection is closed after the answer, so that the
    server does not go on reading the rest of the body."""
    size = api.ledger_size()
    body = b'{"name": "' + b"x" * BIG + b'"}'
    content: Any = (body[i : i + 65_536] for i in range(0, len(body), 65_536)) if chunked else body
    r = _post_body_as(api, who, content, status, slug)
    assert r.headers["connection"] == "close"
    assert ("content-length" in r.request.headers) is not chunked
    assert api.ledger_size() == size


def test_a_body_declared_too_large_is_not_read_at_all(api: Api) -> None:
    """`Content-Length` over the limit: the answer (401 here) comes without one byte of
    the body read (the app's `receive` is never called)."""
    app: Any = api.client.app  # type: ignore[attr-defined]
    reads: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        reads.append({})
        return {"type": "http.request", "body": b"x" * 65_536, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/executives",
        "raw_path": b"/v1/executives",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"10" * 9)],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    anyio.run(app, scope, receive, send)
    assert sent[0]["status"] == 401 and reads == []
    assert (b"connection", b"close") in sent[0]["headers"]


def test_a_token_lives_at_most_a_year() -> None:
    key = b"k" * 32
    token = issue_token(key, subject="s", roles=["admin"], agency="DOE", ttl_seconds=MAX_TTL)
    claims = jwt.decode(token, key, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == MAX_TTL == 366 * 24 * 3600
    with pytest.raises(ValueError, match="a year"):
        issue_token(key, subject="s", roles=["admin"], agency="DOE", ttl_seconds=MAX_TTL + 1)


@pytest.mark.parametrize("claim", ["sub", "agency"])
def test_an_id_claim_with_a_trailing_newline_is_refused(api: Api, claim: str) -> None:
    """Contract "Authentication": subjects and agencies are ids, without control characters.
    `$` also matched before a final newline, so a subject `hr-1\\n` was accepted by the server
    and `token issue`, and recorded as an event's `actor` and `submitted_by` for good."""
    token = jwt.encode(_claims(**{claim: "DOE\n"}), api.key, algorithm="HS256")
    assert _status(api, token) == 401
    for bad in ({"subject": "hr-1\n", "agency": "DOE"}, {"subject": "hr-1", "agency": "DOE\n"}):
        with pytest.raises(ValueError, match="not a valid"):
            issue_token(api.key, roles=["hr_app"], ttl_seconds=60, **bad)


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_token_not_valid_yet_is_401_and_says_so(api: Api, claim: str) -> None:
    """Contract "Authentication" (401 bad token): a token whose `nbf` or `iat` lies ahead
    is refused as not valid yet, not called malformed or foreign (its holder's clock, or
    the issuer's, is wrong: a different fix from a token of another server)."""
    token = jwt.encode(_claims(**{claim: int(time.time()) + 3600}), api.key, algorithm="HS256")
    assert _status(api, token) == 401
    with pytest.raises(TokenError, match="not valid yet"):
        decode_token(token, api.key)


def test_rotating_a_token_key_that_is_not_there_is_refused_not_announced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/api.md: "If a token leaks, `ses-ledger token rotate-key` replaces the secret".
    Run with a mistyped or unset SES_LEDGER_HOME (the default `./.ses-ledger` of another
    directory), it made a new key there and printed "every token issued before is refused
    from now on" (exit 0), while the server's key, and the leaked token, stayed as they
    were. A home without a token key is refused now (2), and nothing is made in it."""
    server_home = tmp_path / "server-home"
    server_key = load_or_create_token_key(server_home)
    leaked = issue_token(server_key, subject="x", roles=["auditor"], agency="DOE", ttl_seconds=60)
    typo = tmp_path / "server_home"
    monkeypatch.setenv("SES_LEDGER_HOME", str(typo))
    assert cli(["token", "rotate-key"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"ses-ledger token: there is no token key at {typo}/token.key")
    assert "nothing was changed" in captured.err
    assert not typo.exists()
    assert decode_token(leaked, load_or_create_token_key(server_home)).subject == "x"
    # The server's home: rotated, and the leaked token is refused.
    monkeypatch.setenv("SES_LEDGER_HOME", str(server_home))
    assert cli(["token", "rotate-key"]) == 0
    with pytest.raises(TokenError):
        decode_token(leaked, load_or_create_token_key(server_home))


def test_a_token_signed_with_a_key_just_made_says_so_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`token issue` in a home without a token key makes one (docs/api.md: created on first
    use) and signs with it: no server running with another home takes that token. With a
    mistyped SES_LEDGER_HOME the first sign of it was a 401. The new key is named on
    stderr; stdout is still the token alone, and a second token says nothing more."""
    home = tmp_path / "home"
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    argv = ["token", "issue", "--subject", "x", "--role", "auditor", "--agency", "DOE"]
    assert cli(argv) == 0
    first = capsys.readouterr()
    assert first.out.count("\n") == 1 and first.out.count(".") == 2  # a JWT, alone
    assert first.err == (
        f"ses-ledger token: made a new token key {home / 'token.key'}: only a server run "
        "with this SES_LEDGER_HOME takes the token\n"
    )
    assert cli(argv) == 0
    second = capsys.readouterr()
    assert second.err == "" and second.out.count("\n") == 1


def test_a_token_key_saved_by_an_editor_is_read_and_garbage_named(tmp_path: Path) -> None:
    """A token key opened and saved in an editor that adds a byte order mark and CR LF (a
    Windows editor's 'UTF-8 with BOM'): `serve` failed to start with 'ValueError:
    non-hexadecimal number found in fromhex() arg at position 0', naming neither the file
    nor what was wrong, and a running server kept the old key after such a rotation. The
    mark is no part of the key: it is read. A key that is not hex is a TokenError naming
    its file. Found editing a demo home's token.key (qa-encoding)."""
    key = bytes(range(32))
    (tmp_path / "token.key").write_bytes(b"\xef\xbb\xbf" + key.hex().encode() + b"\r\n")
    assert load_or_create_token_key(tmp_path) == key
    verifier = TokenVerifier(b"old", path=tmp_path / "token.key", reload_every=0)
    verifier._reload()
    assert verifier.key == key
    (tmp_path / "token.key").write_text("not hex\n")
    with pytest.raises(TokenError, match=f"token key {tmp_path / 'token.key'} is not hex"):
        load_or_create_token_key(tmp_path)
