"""A witness watches the ledger's checkpoints over HTTP and notices any rewrite of history.

The server is the real API (`api.main.create_app` under uvicorn, in a thread, on a free
port) when `api/` provides it, else a minimal `http.server` with the three public endpoints
(kept below). Each server is started afresh after the database is tampered with, as an
intruder would restart it.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import offline_verify
from ledger.application import LedgerApp
from ledger.bundle import build_bundle, write_bundle
from ledger.checkpoint import Checkpoint, parse_note, sign_checkpoint
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from ledger.log import MerkleLog, ProofUnavailable
from ledger.merkle import EMPTY_ROOT
from ledger.offline_verify import position_seal_message
from ledger.witness import NOT_FOUND, Fetch, WitnessUnavailable, http_fetch, witness
from ses_ledger import cli
from tests.integration.test_tamper_suite import (
    EXECUTIVE,
    history,
    lower_final_rating,
    rewrite_with_stolen_key,
    truncate,
    verify,
)
from tests.ledger_helpers import point_cli_at, register

# --- servers ------------------------------------------------------------------------------------


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def real_api(config: LedgerConfig) -> Iterator[str]:
    import uvicorn

    from api.main import create_app
    from api.settings import ApiSettings

    settings = ApiSettings(
        home=config.home,
        db=config.db_url,
        origin=config.origin,
        checkpoint_interval_seconds=0,
        checkpoint_max_age_seconds=0,  # a witness right after growth sees it (no delay)
    )
    app = create_app(LedgerApp(config), settings=settings)
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def minimal_server(config: LedgerConfig) -> Iterator[str]:
    """The public endpoints a witness and `bundle verify --url` read, straight from MerkleLog
    (no api/ needed)."""
    ledger = LedgerApp(config)
    log = MerkleLog(ledger.recorder)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: str, kind: str = "application/json") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self, detail: str) -> None:
            """The ledger's 404 (api-contract.md: problem+json, `urn:ses-ledger:problem:`)."""
            problem = {"type": NOT_FOUND, "title": "Not found", "status": 404, "detail": detail}
            self._send(404, json.dumps(problem), "application/problem+json")

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urllib.parse.urlsplit(self.path)
            query = {k: int(v[0]) for k, v in urllib.parse.parse_qs(url.query).items()}
            if url.path == "/v1/ledger/checkpoint":
                stored = log.issue_checkpoint(ledger.signer, config.origin)
                assert stored is not None
                self._send(200, stored.note, "text/plain; charset=utf-8")
            elif url.path == "/v1/ledger/keys":
                keys = [k.as_json() for k in ledger.keyring.public_keys()]
                self._send(200, json.dumps({"keys": keys}))
            elif url.path == "/v1/ledger/proofs/consistency":
                try:
                    self._send(200, json.dumps(log.consistency(query["first"], query["second"])))
                except ProofUnavailable as exc:
                    self._not_found(str(exc))
            elif url.path == "/v1/ledger/proofs/inclusion":
                try:
                    size = query["tree_size"]
                    self._send(200, json.dumps(log.inclusion(query["position"], size)))
                except ProofUnavailable as exc:
                    self._not_found(str(exc))
            else:
                self._send(404, "{}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _has_api() -> bool:
    try:
        from api.main import create_app  # noqa: F401
    except ImportError:
        return False
    return True


serve = real_api if _has_api() else minimal_server


# --- helpers ------------------------------------------------------------------------------------


def ses(argv: list[str]) -> int:
    """`ses-ledger ARGV`, in-process."""
    return cli.main(argv)


def grow(config: LedgerConfig, n: int, prefix: str = "E-LATER") -> None:
    app = LedgerApp(config)
    for i in range(n):
        register(app, f"{prefix}-{i}")


def saved(state: Path) -> dict[str, Any]:
    return dict(json.loads(state.read_text()))


# --- the story ------------------------------------------------------------------------------------


def test_first_use_then_growth_then_a_stolen_key_rewrite(
    ledger_config: LedgerConfig, tmp_path: Path
) -> None:
    history(ledger_config)
    state = tmp_path / "witness" / "state.json"
    with serve(ledger_config) as url:
        first = witness(url, state)
        assert first.verdict == "first-use" and first.ok
        assert "trusted on first use" in first.lines[0]
        size = first.tree_size
        assert saved(state)["tree_size"] == size and saved(state)["origin"] == ledger_config.origin

        again = witness(url, state)
        assert again.verdict == "unchanged"

    grow(ledger_config, 3)
    with serve(ledger_config) as url:
        grown = witness(url, state)
        assert grown.verdict == "extended" and grown.tree_size == size + 3
        assert f"grew from {size} to {size + 3}" in grown.lines[-1]
    before = state.read_bytes()

    # An intruder with the signing key rewrites one rating and rebuilds everything.
    rewrite_with_stolen_key(ledger_config, lower_final_rating(EXECUTIVE, 1))
    assert verify(ledger_config).ok
    with serve(ledger_config) as url:
        forked = witness(url, state)
        assert not forked.ok and "fork" in forked.lines[-1]
        assert state.read_bytes() == before, "an inconsistent checkpoint is never saved"

    # ...and lets the log grow, so the sizes differ: the consistency proof fails.
    grow(ledger_config, 2, "E-AFTER")
    with serve(ledger_config) as url:
        rewritten = witness(url, state)
        assert not rewritten.ok
        assert "does not extend" in rewritten.lines[-1] and "rewritten" in rewritten.lines[-1]
        assert state.read_bytes() == before


@pytest.mark.parametrize("serve", [serve, minimal_server], ids=["server", "minimal-server"])
def test_a_consistent_truncation_is_caught(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    serve: Callable[[LedgerConfig], Any],
) -> None:
    history(sqlite_config)
    state = tmp_path / "state.json"
    with serve(sqlite_config) as url:
        assert witness(url, state).ok
    size = saved(state)["tree_size"]
    truncate(sqlite_config, 3, merkle=True, checkpoints=True)
    assert verify(sqlite_config).ok
    with serve(sqlite_config) as url:
        cut = witness(url, state)
        assert not cut.ok and f"shrank from {size} to {size - 3}" in cut.lines[-1]
    grow(sqlite_config, 5)  # regrown past the old size: the proof cannot be made to fit
    with serve(sqlite_config) as url:
        regrown = witness(url, state)
        assert not regrown.ok and "does not extend" in regrown.lines[-1]


# --- what the server says, altered in transit ---------------------------------------------------


def _altered(base: Fetch, path: str, change: Callable[[str], str]) -> Fetch:
    def fetch(url: str) -> tuple[int, str]:
        status, body = base(url)
        return (status, change(body)) if urllib.parse.urlsplit(url).path == path else (status, body)

    return fetch


def test_a_bad_signature_and_a_replaced_key_are_inconsistent(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    history(sqlite_config)
    state = tmp_path / "state.json"
    outsider = Ed25519PrivateKey.generate()

    def resigned(note: str) -> str:
        cp, _ = parse_note(note)
        return sign_checkpoint(cp, sqlite_config.origin, outsider)

    def other_root(note: str) -> str:
        lines = note.split("\n")
        lines[2] = base64.b64encode(b"\x07" * 32).decode()
        return "\n".join(lines)

    def replaced_key(body: str) -> str:
        keys = json.loads(body)
        keys["keys"][0]["public_key"] = base64.b64encode(
            outsider.public_key().public_bytes_raw()
        ).decode()
        return json.dumps(keys)

    def no_keys(body: str) -> str:
        return json.dumps({**json.loads(body), "keys": []})

    def other_key(body: str) -> str:
        """The pinned key withdrawn, an outsider's listed instead."""
        keys = json.loads(body)
        keys["keys"] = [
            {
                **keys["keys"][0],
                "key_id": "outsider",
                "public_key": base64.b64encode(outsider.public_key().public_bytes_raw()).decode(),
            }
        ]
        return json.dumps(keys)

    with serve(sqlite_config) as url:
        # Even on first use, a checkpoint no listed key signed is refused (nothing saved).
        unsigned = witness(
            url, state, fetch=_altered(http_fetch(), "/v1/ledger/checkpoint", resigned)
        )
        assert not unsigned.ok and "does not verify" in unsigned.lines[-1]
        assert not state.exists()
        assert witness(url, state).ok
        altered = witness(
            url, state, fetch=_altered(http_fetch(), "/v1/ledger/checkpoint", other_root)
        )
        assert not altered.ok and "does not verify" in altered.lines[-1]
        swapped = witness(url, state, fetch=_altered(http_fetch(), "/v1/ledger/keys", replaced_key))
        assert not swapped.ok and "different public key" in swapped.lines[-1]
        key_id = next(iter(saved(state)["keys"]))
        dropped = witness(url, state, fetch=_altered(http_fetch(), "/v1/ledger/keys", no_keys))
        assert not dropped.ok and "the server lists no Ed25519 key" in dropped.lines[-1]
        hidden = witness(url, state, fetch=_altered(http_fetch(), "/v1/ledger/keys", other_key))
        assert not hidden.ok
        assert f"key {key_id}, pinned earlier, is no longer listed" in hidden.lines[-1]
        garbled = witness(
            url, state, fetch=_altered(http_fetch(), "/v1/ledger/keys", lambda b: "<")
        )
        assert not garbled.ok and "/v1/ledger/keys did not answer JSON" in garbled.lines[-1]
        assert witness(url, state).ok  # none of that was saved
        assert (
            witness(url, state, origin="another.example/log")
            .lines[-1]
            .startswith("INCONSISTENT: origin")
        )


def test_a_rotated_key_is_pinned_and_the_log_still_checks(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    history(sqlite_config)
    state = tmp_path / "state.json"
    with serve(sqlite_config) as url:
        assert witness(url, state).ok
    new_key = KeyRing(sqlite_config.home).rotate()
    grow(sqlite_config, 2)
    with serve(sqlite_config) as url:
        rotated = witness(url, state)
    assert rotated.verdict == "extended"
    assert any(f"new key {new_key}" in line for line in rotated.lines)
    assert new_key in saved(state)["keys"] and len(saved(state)["keys"]) == 2


def test_an_unreachable_server_is_not_evidence_of_tampering(tmp_path: Path) -> None:
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(WitnessUnavailable, match="cannot reach"):
        witness(f"http://127.0.0.1:{port}", tmp_path / "state.json")
    assert (
        ses(
            [
                "witness",
                "--url",
                f"http://127.0.0.1:{port}",
                "--state",
                str(tmp_path / "s.json"),
                "--timeout",
                "2",
            ]
        )
        == 2
    )
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(WitnessUnavailable, match="cannot read the witness state"):
        witness(f"http://127.0.0.1:{port}", tmp_path / "bad.json")


def test_the_witness_lock_file_is_owner_only(tmp_path: Path) -> None:
    """The state's `.lock` was made 0644 under the usual umask: an `flock` needs only an open
    file, so any local user could hold every later witness run of that state up. It is made
    0600, as the ledger's own lock files (`ledger.files.open_lock_file`)."""
    state = tmp_path / "witness" / "state.json"
    old = os.umask(0o022)
    try:
        with pytest.raises(WitnessUnavailable):
            witness(_closed_url(), state, fetch=http_fetch(timeout=2))
    finally:
        os.umask(old)
    assert stat.S_IMODE(Path(f"{state}.lock").stat().st_mode) == 0o600


# --- the command line: witness, and an old bundle checked against the server --------------------


def test_the_cli_witness_and_an_old_bundle_catch_a_rewrite(
    sqlite_config: LedgerConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = history(sqlite_config)
    state = tmp_path / "state.json"
    old = tmp_path / "old-bundle.json"
    write_bundle(build_bundle(app, EXECUTIVE), str(old))
    with serve(sqlite_config) as url:
        assert ses(["witness", "--url", url, "--state", str(state)]) == 0
        assert "trusted on first use" in capsys.readouterr().out
    grow(sqlite_config, 2)
    with serve(sqlite_config) as url:
        assert ses(["witness", "--url", url, "--state", str(state)]) == 0
        # The old bundle, its checkpoint tied to the server's current one by a fetched proof.
        assert ses(["bundle", "verify", str(old), "--url", url]) == 0
        assert "trusted checkpoint: consistent" in capsys.readouterr().out
        # ...or to the witness's saved checkpoint, given as the trusted one.
        assert ses(["bundle", "verify", str(old), "--checkpoint", str(state), "--url", url]) == 0
        capsys.readouterr()

    rewrite_with_stolen_key(sqlite_config, lower_final_rating(EXECUTIVE, 1))
    grow(sqlite_config, 1, "E-AFTER")
    with serve(sqlite_config) as url:
        assert ses(["witness", "--url", url, "--state", str(state)]) == 1
        assert "INCONSISTENT" in capsys.readouterr().out
        assert ses(["bundle", "verify", str(old), "--url", url]) == 1
        out = capsys.readouterr().out
        assert "NOT VERIFIED" in out and "does not verify" in out
        # The witness's pre-rewrite checkpoint as the trusted one: the server cannot prove
        # its old tree is the bundle's either.
        assert ses(["bundle", "verify", str(old), "--checkpoint", str(state), "--url", url]) == 1
        capsys.readouterr()

    truncate(sqlite_config, 6, merkle=True, checkpoints=True)
    with serve(sqlite_config) as url:
        assert ses(["bundle", "verify", str(old), "--url", url]) == 1
        assert "cannot prove" in capsys.readouterr().out


def test_an_old_bundle_checks_against_the_server_after_a_key_rotation(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """api-contract.md `/v1/ledger/keys` (old public keys stay listed) and evidence-bundle:
    the server's checkpoint is signed with the key current now, which an old bundle cannot
    hold; `bundle verify --url` checks it with the keys the server lists, instead of calling
    a genuine old bundle NOT VERIFIED."""
    point_cli_at(monkeypatch, sqlite_config)
    app = history(sqlite_config)
    old = tmp_path / "old-bundle.json"
    write_bundle(build_bundle(app, EXECUTIVE), str(old))
    KeyRing(sqlite_config.home).rotate()
    grow(sqlite_config, 2)
    with serve(sqlite_config) as url:
        assert ses(["bundle", "verify", str(old), "--url", url]) == 0, capsys.readouterr().out
        assert "trusted checkpoint: consistent" in capsys.readouterr().out


def test_a_bundle_key_swapped_under_its_key_id_is_caught_with_url(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """api-contract.md "Ledger entry" (signed by the key `key_id` listed at /v1/ledger/keys):
    a bundle whose key is replaced under the same key id, every entry and its checkpoint
    re-signed with the replacement, verifies on its own; checked against the server it must
    not, as the server lists another public key under that id."""
    point_cli_at(monkeypatch, sqlite_config)
    app = history(sqlite_config)
    bundle = build_bundle(app, EXECUTIVE)
    forger = Ed25519PrivateKey.generate()
    for key in bundle["keys"]:
        key["public_key"] = base64.b64encode(forger.public_key().public_bytes_raw()).decode()
    for entry in bundle["entries"]:
        signature = forger.sign(bytes.fromhex(entry["hash"]))
        entry["signature"] = base64.b64encode(signature).decode()
    head = parse_note(bundle["checkpoint"])[0]
    bundle["checkpoint"] = sign_checkpoint(head, sqlite_config.origin, forger)
    seal = bundle["position_seal"]  # the positions the ledger signed: re-signed too
    message = position_seal_message((head.origin, head.size, head.root_hash), seal["positions"])
    seal["signature"] = base64.b64encode(forger.sign(message)).decode()
    forged = tmp_path / "forged.json"
    write_bundle(bundle, str(forged))
    assert ses(["bundle", "verify", str(forged)]) == 0  # alone, only the printed keys tell
    capsys.readouterr()
    with serve(sqlite_config) as url:
        assert ses(["bundle", "verify", str(forged), "--url", url]) == 1
        out = capsys.readouterr().out
        assert "differs from the key the ledger lists" in out and "NOT VERIFIED" in out


def test_url_holds_entries_to_the_validity_the_ledger_lists_for_their_key(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """api-contract.md `GET /v1/ledger/keys` (valid_from, valid_until), README "Evidence":
    each entry's `recorded_at` is held to its key's window in the ledger's key list with
    `--url`. `bundle verify --url` passed the verifier the ledger's keys without their
    windows, so every key's window was open: entries signed after the ledger retired their
    key verified with `--url`, although the ledger's own list says the key was closed."""
    from datetime import UTC, datetime

    point_cli_at(monkeypatch, sqlite_config)
    app = LedgerApp(sqlite_config, clock=lambda: datetime(2027, 3, 1, 12, tzinfo=UTC))
    register(app, "E1")
    exported = tmp_path / "b.json"
    write_bundle(build_bundle(app, "E1"), str(exported))
    assert ses(["bundle", "verify", str(exported)]) == 0  # the bundle's own list: still open
    capsys.readouterr()
    # the ledger lists the key as retired before the entries it signed were recorded
    KeyRing(sqlite_config.home).rotate(close_at=datetime(2027, 1, 1, tzinfo=UTC))
    with serve(sqlite_config) as url:
        assert ses(["bundle", "verify", str(exported), "--url", url]) == 1
    out = capsys.readouterr().out
    assert "outside the validity of its signing key" in out and "2027-01-01T00:00:00Z" in out
    assert "NOT VERIFIED" in out


def test_the_checkpoint_note_of_an_empty_ledger_is_the_empty_tree(
    sqlite_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_cli_at(monkeypatch, sqlite_config)
    assert ses(["checkpoint"]) == 69  # no ledger there yet: none is created to sign for
    assert "there is no ledger at" in capsys.readouterr().err
    KeyRing(sqlite_config.home).init()
    LedgerApp(sqlite_config)  # a ledger, empty
    assert ses(["checkpoint"]) == 0
    cp, _ = parse_note(capsys.readouterr().out)
    assert cp == Checkpoint(sqlite_config.origin, 0, EMPTY_ROOT)


# --- the command line: could not check (2) is not inconsistent (1) -------------------------------


def _closed_url() -> str:
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def _exported(config: LedgerConfig, tmp_path: Path) -> Path:
    app = LedgerApp(config)
    register(app, "E1")
    out = tmp_path / "b.json"
    write_bundle(build_bundle(app, "E1"), str(out))
    return out


@pytest.mark.parametrize(
    "url", ["notaurl", "ftp://example.org", "http://127.0.0.1:port", "http://"]
)
def test_a_url_that_is_not_one_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    for argv in (
        ["witness", "--url", url, "--state", str(tmp_path / "s.json")],
        ["bundle", "verify", str(tmp_path / "b.json"), "--url", url],
    ):
        with pytest.raises(SystemExit) as exit_:
            ses(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "must be the ledger API's base URL" in err and "Traceback" not in err
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "soon"])
def test_a_witness_timeout_that_is_not_one_is_refused_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], timeout: str
) -> None:
    """It was taken, and every request then failed: `cannot reach ...: Timeout value out of
    range`, status 2 as for a ledger that is down, which it need not be."""
    state = tmp_path / "s.json"
    with pytest.raises(SystemExit) as exit_:
        ses(["witness", "--url", _closed_url(), "--state", str(state), "--timeout", timeout])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --timeout" in err and "cannot reach" not in err
    assert not state.exists()


def test_a_url_urllib_cannot_use_or_a_server_that_is_not_http_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import http.client
    import urllib.request

    with pytest.raises(OSError, match="unknown url type"):
        http_fetch()("notaurl/v1/ledger/keys")

    def not_http(*args: Any, **kwargs: Any) -> Any:
        raise http.client.BadStatusLine("garbage")

    monkeypatch.setattr(urllib.request, "urlopen", not_http)
    with pytest.raises(OSError, match="BadStatusLine"):
        http_fetch()("http://127.0.0.1:1/v1/ledger/keys")


@contextmanager
def _hostile_server(status: str, body: Callable[[socket.socket], None]) -> Iterator[str]:
    """A server that answers every request with `status` and a body `body` sends (for as
    long as it likes: it stops once the client has gone)."""
    listener = _free_socket()
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65_536)
                head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                conn.sendall((head + "Content-Length: 100000000\r\n\r\n").encode())
                body(conn)
            except OSError:
                pass  # the client hung up

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


def _trickle(conn: socket.socket) -> None:
    for _ in range(200):  # a byte every 50 ms, each well within the timeout
        conn.sendall(b" ")
        time.sleep(0.05)


def _flood(conn: socket.socket) -> None:
    for _ in range(200):  # 12.8 MB as fast as the client takes it
        conn.sendall(b" " * 65_536)


@pytest.mark.parametrize("status", ["200 OK", "404 Not Found"])
@pytest.mark.parametrize(
    ("body", "said"),
    [(_trickle, "took longer than 1 s"), (_flood, "larger than")],
    ids=["trickle", "flood"],
)
def test_an_endless_answer_is_cut_off_not_waited_for(
    status: str, body: Callable[[socket.socket], None], said: str
) -> None:
    """A server trickling its body a byte at a time (each within the per-read timeout) held
    a witness run for ever, with the state's lock, so every later run queued behind it; one
    sending a body without end filled the memory. The timeout now bounds each answer and
    its size is limited: the check could not be made (exit 2), soon."""
    with _hostile_server(status, body) as url:
        started = time.monotonic()
        with pytest.raises(OSError, match=said):
            http_fetch(timeout=1.0)(f"{url}/v1/ledger/keys")
        assert time.monotonic() - started < 5


def test_bundle_verify_against_an_unreachable_ledger_is_not_checked_rather_than_failed(
    env: LedgerConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = _exported(env, tmp_path)
    assert ses(["bundle", "verify", str(bundle), "--url", _closed_url()]) == 2
    printed = capsys.readouterr()
    assert "NOT VERIFIED" not in printed.out and "PROBLEM" not in printed.out
    assert printed.err.startswith("the bundle could NOT be checked (this is no verdict on it): ")
    assert "cannot reach" in printed.err and printed.err.count("\n") == 1


def test_bundle_verify_url_reads_a_bundle_saved_with_a_byte_order_mark(
    env: LedgerConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RFC 8259 8.1: a leading byte order mark (Windows editors save UTF-8 with one) may be
    ignored; with --url the bundle is read by `ses-ledger` itself, which refused it (exit 2)."""
    bundle = _exported(env, tmp_path)
    bundle.write_text("\ufeff" + bundle.read_text(encoding="utf-8"), encoding="utf-8")
    with serve(env) as url:
        assert ses(["bundle", "verify", str(bundle), "--url", url]) == 0
    assert capsys.readouterr().out.endswith("BUNDLE VERIFIED\n")


def test_bundle_verify_of_a_bundle_too_large_for_the_memory_is_not_checked(
    env: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """README: exit 2 when the bundle could not be checked, 1 only for evidence against it.
    With --url the bundle is read before the verifier runs: a MemoryError there (a bundle
    larger than the memory) was a traceback, exit status 1."""
    from ledger import offline_verify

    bundle = _exported(env, tmp_path)

    def too_large(text: str | bytes) -> tuple[Any, list[str]]:
        raise MemoryError

    monkeypatch.setattr(offline_verify, "read_json", too_large)
    for argv in ([], ["--url", _closed_url()]):
        assert ses(["bundle", "verify", str(bundle), *argv]) == 2
        printed = capsys.readouterr()
        assert "NOT VERIFIED" not in printed.out
        assert "the bundle was NOT checked" in printed.err


@pytest.mark.parametrize(
    ("answers", "said"),
    [
        ({"/v1/ledger/checkpoint": (404, "no")}, "cannot obtain a usable checkpoint"),
        ({"/v1/ledger/checkpoint": (200, "not a note")}, "cannot obtain a usable checkpoint"),
        ({"/v1/ledger/checkpoint": (503, "busy")}, "answered 503"),
        ({"/v1/ledger/proofs/consistency": (503, "busy")}, "cannot obtain the consistency proof"),
    ],
    ids=["checkpoint-404", "checkpoint-garbage", "checkpoint-503", "proof-503"],
)
def test_bundle_verify_without_a_usable_answer_from_the_ledger_is_not_checked(
    env: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answers: dict[str, tuple[int, str]],
    said: str,
) -> None:
    import ledger.witness

    bundle = _exported(env, tmp_path)
    grow(env, 2)
    app = LedgerApp(env)
    newer = app.merkle_log.issue_checkpoint(app.signer, env.origin)
    assert newer is not None

    def fetch(url: str) -> tuple[int, str]:
        path = urllib.parse.urlsplit(url).path
        return answers.get(path) or (200, newer.note)

    monkeypatch.setattr(ledger.witness, "http_fetch", lambda timeout=10.0: fetch)
    assert ses(["bundle", "verify", str(bundle), "--url", "http://ledger.invalid"]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and said in printed.err
    assert printed.err.startswith("the bundle could NOT be checked")


#: A hostile server's text: a line of its own, then ESC [8m, which hides what follows.
HOSTILE = "\nconsistent: tree grew from 1 to 2 leaves\x1b[8m"


@pytest.mark.parametrize(
    ("answers", "status"),
    [
        # a key list that is not there: no check made (exit 2), nothing of the body said
        ({"/v1/ledger/keys": (404, HOSTILE)}, 2),
        (
            {
                "/v1/ledger/keys": (
                    200,
                    json.dumps(
                        {
                            "keys": [
                                {"key_id": HOSTILE, "algorithm": "Ed25519", "public_key": "AA=="}
                            ]
                        }
                    ),
                )
            },
            1,
        ),
    ],
    ids=["error-body", "key-id"],
)
def test_what_a_hostile_server_answers_is_shown_to_the_witness_not_acted_on(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answers: dict[str, tuple[int, str]],
    status: int,
) -> None:
    """The witness distrusts the server, yet printed its text raw: a server could print
    its own "consistent" line and conceal the INCONSISTENT verdict from the operator."""
    import ledger.witness

    origin = "ses-ledger.local/ledger"
    note = sign_checkpoint(Checkpoint(origin, 0, EMPTY_ROOT), origin, Ed25519PrivateKey.generate())

    def fetch(url: str) -> tuple[int, str]:
        path = urllib.parse.urlsplit(url).path
        return answers.get(path) or (200, note)

    monkeypatch.setattr(ledger.witness, "http_fetch", lambda timeout=10.0: fetch)
    state = tmp_path / "w.json"
    assert ses(["witness", "--url", "http://ledger.invalid", "--state", str(state)]) == status
    printed = capsys.readouterr()
    assert "\x1b" not in printed.out + printed.err
    if status == 2:
        assert printed.out == "", printed
        assert "answered 404" in printed.err and "consistent:" not in printed.err
        return
    assert printed.out.count("\n") == 1, printed.out
    assert printed.out.startswith("INCONSISTENT: ") and "\\x1b[8m" in printed.out


@pytest.mark.parametrize("keys", ["5", '"k"', '{"k": 1}', "null"])
def test_a_key_list_that_is_not_a_list_is_inconsistent_not_a_crash(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    keys: str,
) -> None:
    """`{"keys": 5}` from the server crashed the witness with a TypeError traceback."""
    import ledger.witness

    answer = (200, '{"keys": ' + keys + "}")
    monkeypatch.setattr(ledger.witness, "http_fetch", lambda timeout=10.0: lambda url: answer)
    state = tmp_path / "w.json"
    assert ses(["witness", "--url", "http://ledger.invalid", "--state", str(state)]) == 1
    out = capsys.readouterr().out
    assert out == "INCONSISTENT: /v1/ledger/keys did not answer a list of keys\n"
    assert not state.exists()


def test_an_answer_nested_too_deeply_is_no_crash(
    env: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server answering JSON nested deeper than the parser goes crashed the witness and
    `bundle verify --url` with a RecursionError traceback; and so did a --checkpoint state
    file like it. The witness now finds the answer is not JSON; bundle verify says it could
    not check."""
    import ledger.witness

    deep = '{"a": ' * 100_000 + "1" + "}" * 100_000
    monkeypatch.setattr(ledger.witness, "http_fetch", lambda timeout=10.0: lambda url: (200, deep))
    state = tmp_path / "w.json"
    assert ses(["witness", "--url", "http://ledger.invalid", "--state", str(state)]) == 1
    assert capsys.readouterr().out == "INCONSISTENT: /v1/ledger/keys did not answer JSON\n"
    bundle = _exported(env, tmp_path)
    assert ses(["bundle", "verify", str(bundle), "--url", "http://ledger.invalid"]) == 2
    assert capsys.readouterr().err.startswith("the bundle could NOT be checked")
    (tmp_path / "deep-state.json").write_text(deep)
    checkpoint = str(tmp_path / "deep-state.json")
    assert ses(["bundle", "verify", str(bundle), "--checkpoint", checkpoint]) == 2
    assert "nested too deeply" in capsys.readouterr().err


def test_checkpoint_to_a_path_it_cannot_write_refuses_before_signing(
    env: LedgerConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = LedgerApp(env)
    register(app, "E1")
    assert app.merkle_log.latest_checkpoint() is None
    (tmp_path / "a-file").write_text("")
    for out in (tmp_path / "a-file" / "cp.note", tmp_path):
        assert ses(["checkpoint", "--out", str(out)]) == 2
        printed = capsys.readouterr()
        assert printed.out == "" and printed.err.count("\n") == 1
        assert printed.err.startswith(f"ses-ledger checkpoint: cannot write {out}: ")
    assert app.merkle_log.latest_checkpoint() is None, "nothing signed or stored"
    # Missing directories are still made.
    assert ses(["checkpoint", "--out", str(tmp_path / "new" / "dir" / "cp.note")]) == 0
    assert capsys.readouterr().out == (tmp_path / "new" / "dir" / "cp.note").read_text()


def test_witness_with_a_state_it_cannot_keep_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    state = tmp_path / "a-file" / "w.json"
    assert ses(["witness", "--url", _closed_url(), "--state", str(state), "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ses-ledger witness: cannot keep the state in {state}: ")
    assert err.count("\n") == 1


def test_a_bundle_signed_after_a_key_rotation_extends_a_checkpoint_saved_before_it(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """api-contract.md `/v1/ledger/keys` (old public keys stay listed) and evidence-bundle;
    `bundle verify --help`: 1 is evidence against the bundle, 2 a check that could not be
    made. A relying party saved a checkpoint signed by key K1; the operator ran `keys
    rotate`; a bundle exported later has its checkpoint signed by K2, its tree proven to
    extend the saved one. With `--checkpoint` alone only the bundle vouches for K2: NOT
    CHECKED (2), saying so, never a PROBLEM (1) for a legitimate rotation. With `--url` the
    ledger's key list authenticates K2: verified (0)."""
    point_cli_at(monkeypatch, sqlite_config)
    history(sqlite_config)
    saved = tmp_path / "k1.note"
    assert ses(["checkpoint", "--out", str(saved)]) == 0
    k1 = parse_note(saved.read_text())[0]
    assert ses(["keys", "rotate"]) == 0
    grow(sqlite_config, 2)
    after = tmp_path / "after.json"
    export = ["bundle", "export", "--executive", "E-LATER-1", "--out", str(after)]
    assert ses([*export, "--consistency-from", str(k1.size)]) == 0  # a checkpoint issued now
    note = json.loads(after.read_text())["checkpoint"]
    assert parse_note(note)[0].size == k1.size + 2
    signer = [line.rsplit(" ", 1)[1][:8] for line in (saved.read_text(), note)]
    assert signer[0] != signer[1]  # the two notes' signatures name different keys
    capsys.readouterr()

    assert ses(["bundle", "verify", str(after), "--checkpoint", str(saved)]) == 2
    out = capsys.readouterr().out
    assert "PROBLEM" not in out, out
    assert f"NOT CHECKED: the bundle's checkpoint extends the trusted one ({k1.size} -> " in out
    assert "--url URL" in out and "--keys" in out  # the remedy
    assert out.rstrip().endswith("it is not tied to the trusted checkpoint")

    with serve(sqlite_config) as url:
        for trusted in (["--checkpoint", str(saved)], []):
            assert ses(["bundle", "verify", str(after), *trusted, "--url", url]) == 0
            out = capsys.readouterr().out
            assert "trusted checkpoint: consistent" in out and "BUNDLE VERIFIED" in out
        # The offline remedy it names: the ledger's key list, saved, given with --keys.
        listed = tmp_path / "keys.json"
        listed.write_text(http_fetch(10)(f"{url}/v1/ledger/keys")[1], encoding="utf-8")
    argv = [str(after), "--checkpoint", str(saved), "--keys", str(listed)]
    assert offline_verify.main(argv) == 0
    out = capsys.readouterr().out
    assert "trusted checkpoint: consistent" in out and "BUNDLE VERIFIED" in out


# --- a bundle without a position_seal: its positions proven by the ledger at --url ---------------


def _unsealed(config: LedgerConfig, tmp_path: Path, shift: int = 0) -> Path:
    """E00001's bundle with its `position_seal` deleted, its checkpoint covering two later
    registrations; `shift`: its last entry's position moved up by that much, its proof moved
    along (an unhashed edit the leaf-index rules of `_check_proofs` let through)."""
    history(config)
    grow(config, 2)
    app = LedgerApp(config)
    app.merkle_log.issue_checkpoint(app.signer, config.origin)
    bundle = build_bundle(app, EXECUTIVE)
    bundle["position_seal"] = None
    last = bundle["entries"][-1]
    bundle["proofs"][str(last["position"] + shift)] = bundle["proofs"].pop(str(last["position"]))
    last["position"] += shift
    out = tmp_path / ("unsealed.json" if not shift else f"moved-{shift}.json")
    write_bundle(bundle, str(out))
    return out


def _counting(
    monkeypatch: pytest.MonkeyPatch,
    seen: list[str],
    fail: str | None = None,
    answer: tuple[int, str] = (503, "down"),
) -> None:
    """Every path `bundle verify` asks the ledger for, in `seen`; `fail`: a path answered
    with `answer` instead of the ledger's."""
    import ledger.witness

    real = ledger.witness.http_fetch

    def counted(timeout: float = 10.0) -> Fetch:
        fetch = real(timeout)

        def once(url: str) -> tuple[int, str]:
            path = urllib.parse.urlsplit(url).path
            seen.append(path)
            return answer if path == fail else fetch(url)

        return once

    monkeypatch.setattr(ledger.witness, "http_fetch", counted)


@pytest.mark.parametrize(
    ("shift", "said"),
    [
        (1, "the ledger proves another entry at that position"),
        (10_000, "the ledger holds no event at that position"),
    ],
    ids=["onto-another-entry", "past-every-entry"],
)
def test_url_proves_the_positions_of_a_bundle_without_a_position_seal(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    shift: int,
    said: str,
) -> None:
    """api-contract.md `GET /v1/ledger/proofs/inclusion?position=&tree_size=`: a position is
    not hashed, and a bundle whose `position_seal` was deleted verified an edited position
    with only a warning, `--url` too (exit 0). With `--url` the ledger is asked which leaf
    lies at each entry's position in the bundle's tree: another entry's leaf, or none, is a
    PROBLEM (exit 1)."""
    point_cli_at(monkeypatch, sqlite_config)
    moved = _unsealed(sqlite_config, tmp_path, shift)
    assert ses(["bundle", "verify", str(moved)]) == 0  # alone: only the warning tells
    assert "WARNING: the bundle has no position_seal" in capsys.readouterr().out
    with serve(sqlite_config) as url:
        assert ses(["bundle", "verify", str(moved), "--url", url]) == 1
    out = capsys.readouterr().out
    assert said in out and "the entry's position was changed" in out
    assert "NOT VERIFIED: 1 problem(s)" in out


def test_url_proves_a_genuine_unsealed_bundles_positions_and_asks_nothing_of_a_sealed_one(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A genuine bundle without a seal verifies with `--url`, its positions proven by the
    ledger (one inclusion proof per entry), with no warning that they are unproven; a sealed
    one asks for none: its seal, by a key `--url` holds to the ledger's key list, proves the
    same pairs."""
    point_cli_at(monkeypatch, sqlite_config)
    unsealed = _unsealed(sqlite_config, tmp_path)
    entries = len(json.loads(unsealed.read_text())["entries"])
    sealed = tmp_path / "sealed.json"
    write_bundle(build_bundle(LedgerApp(sqlite_config), EXECUTIVE), str(sealed))
    seen: list[str] = []
    _counting(monkeypatch, seen)
    with serve(sqlite_config) as url:
        assert ses(["bundle", "verify", str(unsealed), "--url", url]) == 0
        out = capsys.readouterr().out
        assert seen.count("/v1/ledger/proofs/inclusion") == entries
        seen.clear()
        assert ses(["bundle", "verify", str(sealed), "--url", url]) == 0
        assert "positions: sealed by the ledger" in capsys.readouterr().out
        assert "/v1/ledger/proofs/inclusion" not in seen
    assert "BUNDLE VERIFIED" in out and "WARNING: the bundle has no position_seal" not in out
    assert "positions: each proven by the ledger" in out


def test_a_ledger_that_cannot_prove_an_unsealed_bundles_positions_is_not_checked(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`ses-ledger bundle verify --help`: 2 when a check could not be made. The ledger
    answering its inclusion proofs with 503 is no evidence against the bundle."""
    point_cli_at(monkeypatch, sqlite_config)
    unsealed = _unsealed(sqlite_config, tmp_path)
    _counting(monkeypatch, [], fail="/v1/ledger/proofs/inclusion")
    with serve(sqlite_config) as url:
        assert ses(["bundle", "verify", str(unsealed), "--url", url]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith("the bundle could NOT be checked")
    assert "inclusion proof of position" in printed.err and "503" in printed.err


def test_a_404_that_is_not_the_ledgers_not_found_is_not_checked_not_a_problem(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """api-contract.md: the ledger's errors are problem+json of type
    `urn:ses-ledger:problem:<slug>`. A 404 page from something between the verifier and the
    ledger (a proxy, a base URL with a wrong prefix) says nothing of what the ledger holds:
    it was read as "no event at that position" and a genuine bundle was NOT VERIFIED, its
    positions said to be changed (exit 1). It is now NOT CHECKED (exit 2)."""
    point_cli_at(monkeypatch, sqlite_config)
    unsealed = _unsealed(sqlite_config, tmp_path)
    page = "<html><body><h1>404 Not Found</h1>nginx</body></html>"
    _counting(monkeypatch, [], fail="/v1/ledger/proofs/inclusion", answer=(404, page))
    with serve(sqlite_config) as url:
        assert ses(["bundle", "verify", str(unsealed), "--url", url]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith("the bundle could NOT be checked")
    assert "answered 404 but not the ledger's not-found problem" in printed.err
    assert "position was changed" not in printed.err


def test_unusable_position_proofs_from_the_ledger_are_not_checked_not_a_problem(
    sqlite_config: LedgerConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`offline_verify --positions` with an answer that is no proof: NOT CHECKED (exit 2)."""
    unsealed = _unsealed(sqlite_config, tmp_path)
    first = json.loads(unsealed.read_text())["entries"][0]["position"]
    answers = tmp_path / "positions.json"
    answers.write_text(json.dumps({"proofs": {str(first): {"leaf_index": 0}}}))
    assert offline_verify.main([str(unsealed), "--positions", str(answers)]) == 2
    out = capsys.readouterr().out
    assert "NOT CHECKED: the ledger's inclusion proofs of the positions are unusable" in out
    assert out.rstrip().endswith("its positions are not proven")


@pytest.mark.parametrize("status", [404, 401])
@pytest.mark.parametrize("first_contact", [True, False])
def test_a_url_that_is_not_the_ledgers_is_not_checked_not_inconsistent(
    sqlite_config: LedgerConfig, tmp_path: Path, status: int, first_contact: bool
) -> None:
    """A mistyped `--url` (its checkpoint or key list a 404 page, a proxy's 401) was reported
    INCONSISTENT, exit 1, the verdict of a fork or rewrite, even on a first contact with
    nothing to be inconsistent with. It is a check not made (WitnessUnavailable, exit 2),
    and the saved state is left as it was."""
    state = tmp_path / "witness.json"
    app = LedgerApp(sqlite_config)
    register(app, "E1")
    with serve(sqlite_config) as url:
        if not first_contact:
            assert witness(url, state, fetch=http_fetch(timeout=5)).ok
        saved = state.read_bytes() if state.exists() else None
        for broken in ("/v1/ledger/checkpoint", "/v1/ledger/keys"):

            def fetch(asked: str, broken: str = broken) -> tuple[int, str]:
                if urllib.parse.urlsplit(asked).path.endswith(broken):
                    return status, "<html><body><h1>Not Found</h1></body></html>"
                return http_fetch(timeout=5)(asked)

            with pytest.raises(WitnessUnavailable, match="is .* the ledger API's base URL"):
                witness(url, state, fetch=fetch)
            assert (state.read_bytes() if state.exists() else None) == saved
    app.close()
